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
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(port: int, state: str, extra: list[str]) -> tuple[subprocess.Popen, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploykit.devcluster.consul", "--port", str(port), "--state-dir", state, *extra],
        stdout=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/v1/status/leader", timeout=1)
            return proc, time.perf_counter() - t0
        except requests.RequestException:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("server did not start") from None
            time.sleep(0.02)


def run(keys: int, value_bytes: int, extra: list[str], label: str) -> None:
    port = _free_port()
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
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        files = {p.name: p.stat().st_size for p in Path(state).iterdir()}
        proc, warm = _start(port, state, extra)
        try:
            got = len(requests.get(f"{url}/v1/kv/r/?keys", timeout=60).json())
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
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
