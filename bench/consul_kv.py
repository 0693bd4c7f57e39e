"""Benchmark the devcluster's Consul stand-in (issue 5); results go in docs/benchmarks.md.

    .venv/bin/python bench/consul_kv.py [--keys 10000] [--samples 200] [--idle 1000] [--idle-seconds 10]

Starts the real server (`python -m deploykit.devcluster.consul`, fsync on) on a free
127.0.0.1 port with a temp state dir and measures, in one run:
  1. writing N keys with py-consul: /v1/txn in 64-op chunks vs one PUT per key;
  2. blocking-query wake-up latency: time from starting a PUT to the blocked GET on that
     key returning (so it includes the PUT, its fsync and the wake-up), with `--idle`
     other watchers parked on other keys the whole time;
  3. the server's CPU while `--idle` blocking queries wait and nothing changes, and how
     many waiters one PUT wakes.
Everything is bounded (counts and timeouts) and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import consul
import requests
from benchkit import free_port, pct, stop_group, wait_http


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_writes(c: consul.Consul, n: int, pid: int) -> tuple[float, float, float, float]:
    cpu0 = _cpu_seconds(pid)
    t0 = time.perf_counter()
    for start in range(0, n, 64):
        ops = [{"KV": {"Verb": "set", "Key": f"txn/{i:06d}", "Value": base64.b64encode(b"v%d" % i).decode()}}
               for i in range(start, min(n, start + 64))]
        assert c.txn.put(ops)["Errors"] is None
    txn_s = time.perf_counter() - t0
    cpu1 = _cpu_seconds(pid)
    t0 = time.perf_counter()
    for i in range(n):
        assert c.kv.put(f"put/{i:06d}", b"v%d" % i) is True
    put_s = time.perf_counter() - t0
    cpu2 = _cpu_seconds(pid)
    assert len(c.kv.get("txn/", keys=True)[1]) == n and len(c.kv.get("put/", keys=True)[1]) == n
    return txn_s, put_s, cpu1 - cpu0, cpu2 - cpu1


def _watch_loop(url: str, samples: int, conn: Any) -> None:
    """In its own process (like consul-template would be): block on the key, report when each answer lands."""
    session = requests.Session()
    index = session.get(f"{url}/v1/kv/wake/key", timeout=10).headers["X-Consul-Index"]
    for _ in range(samples):
        conn.send("parking")
        r = session.get(f"{url}/v1/kv/wake/key?index={index}&wait=30s", timeout=40)
        landed = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes on Linux
        index = r.headers["X-Consul-Index"]
        conn.send(landed)


def bench_wakeup(c: consul.Consul, samples: int) -> tuple[list[float], list[float]]:
    """PUT with py-consul in this process; a watcher process holds a blocking GET on the same key."""
    url = f"http://{c.http.host}:{c.http.port}"
    c.kv.put("wake/key", b"0")
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    watcher = ctx.Process(target=_watch_loop, args=(url, samples, theirs), daemon=True)
    watcher.start()
    latencies: list[float] = []
    put_rtts: list[float] = []
    try:
        for i in range(samples):
            if not ours.poll(30):
                raise RuntimeError("watcher process did not report")
            assert ours.recv() == "parking"
            time.sleep(0.02)  # let the request reach the server and park
            t0 = time.perf_counter()
            c.kv.put("wake/key", b"%d" % (i + 1))
            put_rtts.append(time.perf_counter() - t0)
            if not ours.poll(30):
                raise RuntimeError("blocked GET was not woken")
            latencies.append(ours.recv() - t0)
    finally:
        watcher.join(10)
        if watcher.is_alive():
            watcher.kill()
    return latencies, put_rtts


async def _park(url: str, n: int, ready: asyncio.Event, stop: asyncio.Event) -> int:
    """Hold n blocking queries on distinct keys until stop; returns how many came back early."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        for i in range(n):
            await session.put(f"{url}/v1/kv/idle/{i:05d}", data=b"x")
        async with session.get(f"{url}/v1/kv/idle/{n - 1:05d}") as r:  # newest: every key's index is <= it
            index = r.headers["X-Consul-Index"]
        early = 0

        async def one(i: int) -> None:
            nonlocal early
            try:
                async with session.get(f"{url}/v1/kv/idle/{i:05d}?index={index}&wait=5m") as r:
                    await r.read()
                    early += 1
            except asyncio.CancelledError:
                pass

        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        await asyncio.sleep(2.0)
        ready.set()
        await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return early


def bench_idle(url: str, pid: int, n: int, seconds: float, during: Any) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    ready, stop = asyncio.Event(), asyncio.Event()
    result: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        result["early"] = loop.run_until_complete(_park(url, n, ready, stop))

    t = threading.Thread(target=run)
    t.start()
    while not ready.is_set():
        time.sleep(0.05)
    waiting = int(requests.get(f"{url}/v1/agent/self", timeout=5).json()["Stats"]["blocking"]["waiting"])
    cpu0, t0 = _cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = _cpu_seconds(pid), time.monotonic()
    before = requests.get(f"{url}/v1/agent/self", timeout=5).json()["Stats"]["blocking"]
    requests.put(f"{url}/v1/kv/idle/00007", data=b"changed", timeout=5)
    time.sleep(0.5)
    after = requests.get(f"{url}/v1/agent/self", timeout=5).json()["Stats"]["blocking"]
    result["during"] = during()  # e.g. the wake-up latency, with all those waiters still parked
    loop.call_soon_threadsafe(stop.set)
    t.join(60)
    result.update(
        waiting=waiting, cpu_pct=100 * (cpu1 - cpu0) / (t1 - t0), cpu_s=cpu1 - cpu0, seconds=t1 - t0,
        woken_by_one_put=int(after["wakeups"]) - int(before["wakeups"]), still_waiting=int(after["waiting"]),
    )
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--server-arg", action="append", default=[],
                    help="extra server flag, e.g. --server-arg=--journal-inline-budget=0")
    args = ap.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="dk-consul-bench-") as tmp:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploykit.devcluster.consul", "--port", str(port), "--state-dir", tmp,
             *args.server_arg],
            stdout=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            wait_http(f"{url}/v1/status/leader", 20, proc, interval=0.05)
            c = consul.Consul(host="127.0.0.1", port=port)
            c.token = None
            txn_s, put_s, txn_cpu, put_cpu = bench_writes(c, args.keys, proc.pid)
            print(f"writes: {args.keys} keys  txn(64-op chunks) {txn_s:.2f} s ({args.keys / txn_s:,.0f} keys/s)  "
                  f"one PUT per key {put_s:.2f} s ({args.keys / put_s:,.0f} keys/s)  speed-up {put_s / txn_s:.1f}x; "
                  f"server CPU {txn_cpu:.2f} s vs {put_cpu:.2f} s ({put_cpu / args.keys * 1e6:.0f} us per PUT)")
            idle = bench_idle(url, proc.pid, args.idle, args.idle_seconds, lambda: bench_wakeup(c, args.samples))
            print(f"idle: {idle['waiting']:.0f} blocking queries parked; server CPU {idle['cpu_s']:.3f} s in "
                  f"{idle['seconds']:.1f} s ({idle['cpu_pct']:.2f}%); one PUT woke {idle['woken_by_one_put']:.0f} "
                  f"waiter(s), {idle['still_waiting']:.0f} still waiting; {idle['early']:.0f} returned early")
            ms = [x * 1000 for x in idle["during"][0]]
            rtt = [x * 1000 for x in idle["during"][1]]
            print(f"wake-up latency (PUT start -> blocked GET returns; {idle['waiting']:.0f} other waiters parked), "
                  f"{len(ms)} samples: p50 "
                  f"{statistics.median(ms):.2f} ms  p95 {pct(ms, 95):.2f} ms  p99 {pct(ms, 99):.2f} ms  "
                  f"max {max(ms):.2f} ms")
            print(f"for scale, the PUT round trip (py-consul, fsync included): p50 {statistics.median(rtt):.2f} ms"
                  f"  p95 {pct(rtt, 95):.2f} ms; load average {os.getloadavg()[0]:.2f}")
        finally:
            stop_group(proc, 20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
