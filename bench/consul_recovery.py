"""How long the Consul stand-in takes to come back after kill -9 with a large store (issue 5).

    .venv/bin/python bench/consul_recovery.py [--keys 100000] [--value-bytes 100]

Writes N keys through /v1/txn (64-op chunks) into a fresh server (fsync on), kills it with
SIGKILL, starts it again on the same state dir and reports the time until it answers and
whether every key is back; once with the log only (compaction off) and once with the
default 16 MiB compaction (snapshot + short log). Bounded; stops by itself.
"""

from __future__ import annotations

import argparse
import base64
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from benchkit import free_port, kill_group, stop_group, wait_http


def _start(port: int, state: str, extra: list[str]) -> tuple[subprocess.Popen, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploykit.devcluster.consul", "--port", str(port), "--state-dir", state, *extra],
        stdout=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/status/leader", 120, proc)
    except RuntimeError:
        kill_group(proc)
        raise
    return proc, time.perf_counter() - t0


def run(keys: int, value_bytes: int, extra: list[str], label: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    value = base64.b64encode(b"v" * value_bytes).decode()
    with tempfile.TemporaryDirectory(prefix="dk-consul-recovery-") as state:
        proc, cold = _start(port, state, extra)
        s = requests.Session()
        t0 = time.perf_counter()
        for start in range(0, keys, 64):
            ops = [{"KV": {"Verb": "set", "Key": f"r/{i:07d}", "Value": value}}
                   for i in range(start, min(keys, start + 64))]
            r = s.put(f"{url}/v1/txn", json=ops, timeout=30)
            r.raise_for_status()
        write_s = time.perf_counter() - t0
        kill_group(proc)
        files = {p.name: p.stat().st_size for p in Path(state).iterdir()}
        proc, warm = _start(port, state, extra)
        try:
            got = len(requests.get(f"{url}/v1/kv/r/?keys", timeout=60).json())
        finally:
            stop_group(proc, 30)
        sizes = ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(files.items()))
        print(f"{label}: wrote {keys} keys in {write_s:.1f} s; after kill -9: ready in {warm:.2f} s "
              f"(empty start {cold:.2f} s), {got}/{keys} keys back; files: {sizes}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--value-bytes", type=int, default=100)
    args = ap.parse_args()
    run(args.keys, args.value_bytes, ["--compact-bytes", str(2**62)], "log only")
    run(args.keys, args.value_bytes, [], "log + snapshots (16 MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
