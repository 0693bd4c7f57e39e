"""CLI start-up: `deploykit --help` against `python -c pass` (recorded, no target since issue 15).

Runs both commands alternately N times (alternating spreads machine noise evenly) and
reports min and median wall time of each, and the ratio of medians.

    .venv/bin/python bench/cli_startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from benchkit import timed_run

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    python = str(Path(sys.executable))
    deploykit = str(Path(sys.executable).parent / "deploykit")
    commands = {
        "python -c pass": [python, "-c", "pass"],
        "deploykit --help": [deploykit, "--help"],
        "deploykit render --help": [deploykit, "render", "--help"],
    }
    for cmd in commands.values():  # warm the page cache
        timed_run(cmd)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            samples[name].append(timed_run(cmd))
    base = statistics.median(samples["python -c pass"])
    result = {}
    for name, values in samples.items():
        med = statistics.median(values)
        result[name] = {
            "min_ms": round(min(values) * 1000, 1),
            "median_ms": round(med * 1000, 1),
            "ratio_vs_python": round(med / base, 2),
        }
        print(f"{name:26s} min {min(values) * 1000:7.1f} ms  median {med * 1000:7.1f} ms  {med / base:5.2f}x")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
