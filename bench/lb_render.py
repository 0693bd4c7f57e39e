"""Benchmark `deploykit lb render` against the floor: json.load of the same /v2/apps response.

In ONE run, for 1,000 and 3,000 apps x 5 tasks (synthetic responses from bench/gen_apps.py):
  * json.load of the file, timed inside a fresh interpreter (the issue's floor; also with the GC paused,
    and the wall time of that whole `python -c` process),
  * the whole command in a subprocess, file to haproxy.cfg (interpreter start, imports, parse,
    model, render, write),
interleaved and repeated, reporting medians and the ratio command / json.load (goal: <= 2).
Also the incremental path the daemon uses: one task's status change among all apps ->
apply_app + diff -> Runtime API commands (goal: well under 20 ms), and `haproxy -c` on the output.

    .venv/bin/python bench/lb_render.py [--runs 7] [--sizes 1000,3000] [--dir /tmp/dk-bench]
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from gen_apps import make_apps  # noqa: E402

_LOAD = """
import gc, json, sys, time
if sys.argv[2] == "paused":
    gc.disable()
t = time.perf_counter()
with open(sys.argv[1]) as f:
    json.load(f)
print(time.perf_counter() - t)
"""


def _json_load(path: Path, paused_gc: bool) -> tuple[float, float]:
    """(json.load time measured inside a fresh interpreter, wall time of that whole process)."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _LOAD, str(path), "paused" if paused_gc else "default"],
                         check=True, capture_output=True, text=True).stdout
    return float(out), time.perf_counter() - start


def _command(path: Path, out: Path) -> float:
    deploykit = Path(sys.executable).parent / "deploykit"
    start = time.perf_counter()
    subprocess.run([str(deploykit), "lb", "render", "--apps-json", str(path), "-o", str(out), "-q"], check=True)
    return time.perf_counter() - start


def _incremental(path: Path, samples: int = 200) -> tuple[float, float, int]:
    """p50/p99 ms of apply_app + diff for one task replaced in one app, and the op count."""
    from deploykit.lb.changes import diff
    from deploykit.lb.model import LbSettings, apply_app, build_model

    with open(path) as f:
        apps = json.load(f)["apps"]
    model = build_model(apps, LbSettings())
    times = []
    ops = 0
    for i in range(samples):
        app = copy.deepcopy(apps[(i * 37) % len(apps)])
        app["tasks"][0] = {**app["tasks"][0], "id": f"replacement-{i}", "ports": [32000 + i]}
        start = time.perf_counter()
        new, changed = apply_app(model, app)
        changes = diff(model, new, only=changed)
        commands = [op.command() for op in changes.server_ops]
        times.append(time.perf_counter() - start)
        assert not changes.reload_needed and commands, (changes.reasons, commands)
        ops = len(commands)
        model = new
    times.sort()
    return times[len(times) // 2] * 1000, times[int(len(times) * 0.99) - 1] * 1000, ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sizes", default="1000,3000")
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--dir", default="/tmp/dk-bench")
    args = parser.parse_args()
    workdir = Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    empty = workdir / "apps-empty.json"
    empty.write_text('{"apps": []}')
    for size in (int(s) for s in args.sizes.split(",")):
        path = workdir / f"apps-{size}x{args.tasks}.json"
        if not path.exists():
            path.write_text(json.dumps(make_apps(size, args.tasks), separators=(",", ":")))
        out = workdir / f"haproxy-{size}.cfg"
        _command(path, out)  # warm the page cache and .pyc files
        loads, loads_nogc, load_procs, cmds, empties = [], [], [], [], []
        for _ in range(args.runs):  # interleaved, so machine load hits all alike
            load, proc = _json_load(path, paused_gc=False)
            loads.append(load)
            load_procs.append(proc)
            loads_nogc.append(_json_load(path, paused_gc=True)[0])
            cmds.append(_command(path, out))
            empties.append(_command(empty, workdir / "empty.cfg"))
        valid = "n/a (no haproxy)"
        haproxy = shutil.which("haproxy")
        if haproxy:
            check = subprocess.run([haproxy, "-c", "-q", "-f", str(out)], capture_output=True, text=True)
            valid = "valid" if check.returncode == 0 else f"INVALID: {check.stdout}{check.stderr}"
        p50, p99, ops = _incremental(path)
        load, load_nogc, proc, cmd, fixed = (statistics.median(x) for x in (loads, loads_nogc, load_procs, cmds,
                                                                           empties))
        rows.append((size, path.stat().st_size / 1e6, load, load_nogc, proc, cmd, fixed, p50, p99, ops, valid))
    print(f"python {sys.version.split()[0]}, {args.runs} interleaved runs, medians; json.load timed inside a fresh "
          "interpreter")
    print("| apps x tasks | file MB | json.load | json.load, GC paused | python -c json.load (whole process) "
          "| lb render (whole command) | lb render of an empty list (fixed cost) | **ratio** command / json.load "
          "| (command - fixed) / json.load | command / GC-paused json.load | one task event: apply_app + diff "
          "p50 / p99 | haproxy -c |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size, mb, load, load_nogc, proc, cmd, fixed, p50, p99, ops, valid in rows:
        print(f"| {size} x {args.tasks} | {mb:.1f} | {load * 1000:.0f} ms | {load_nogc * 1000:.0f} ms "
              f"| {proc * 1000:.0f} ms | {cmd * 1000:.0f} ms | {fixed * 1000:.0f} ms | **{cmd / load:.2f}x** "
              f"| {(cmd - fixed) / load:.2f}x | {cmd / load_nogc:.2f}x "
              f"| {p50:.2f} / {p99:.2f} ms ({ops} commands) | {valid} |")

if __name__ == "__main__":
    main()
