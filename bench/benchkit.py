"""Helpers the bench scripts share: free ports, percentiles, starting and stopping a server process.

Scripts run as `.venv/bin/python bench/<name>.py`, so `from benchkit import ...` finds this sibling module.
Ports and process groups are handled by the test harness's pytest-free helpers (tests/harness/procs.py).
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.harness

from tests.harness.procs import free_port, kill_group, stop_group

__all__ = ["free_port", "kill_group", "pct", "stop_group", "timed_run", "wait_http"]


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed_run(argv: list[str], **run_kw) -> float:
    """Seconds one command takes to finish (output discarded; a failure raises CalledProcessError)."""
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, **run_kw)
    return time.perf_counter() - start


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, interval: float = 0.02) -> float:
    """Poll `url` until it answers at all (any HTTP status); seconds waited. RuntimeError if `proc` dies first."""
    t0 = time.monotonic()
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return time.monotonic() - t0
        except urllib.error.HTTPError:
            return time.monotonic() - t0
        except OSError:
            if time.monotonic() - t0 > timeout or (proc is not None and proc.poll() is not None):
                raise RuntimeError(f"{url} did not answer within {timeout}s") from None
            time.sleep(interval)


