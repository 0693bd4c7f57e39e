"""Event-stream latency: a task's state change -> its status_update_event on the wire.

Run: .venv/bin/python bench/devcluster_events.py [--samples 200] [--subscribers 1,10,50]
A `sleep` task is SIGKILLed from outside (t0); t1 is when an SSE client reads the
TASK_FAILED status_update_event for it. With backoffSeconds 0 the task is relaunched at
once for the next sample. Also measures API call -> `deployment_info` for a scale change.
Extra idle subscribers show the cost of fan-out.
"""

from __future__ import annotations

import argparse
import os
import signal
import time

import requests
from benchkit import pct
from devcluster_common import Events, Server


def run(samples: int, subscribers: int) -> tuple[list[float], list[float]]:
    with Server() as srv:
        listeners = [Events(srv.url) for _ in range(subscribers)]
        ev = listeners[0]
        s = requests.Session()
        s.post(f"{srv.url}/v2/apps", json={"id": "/lat", "cmd": "exec sleep 600", "backoffSeconds": 0,
                                           "backoffFactor": 1.0, "instances": 1}, timeout=10)
        run_dir = srv.state_dir / "marathon" / "run" / str(srv.port)
        kill_lat, api_lat = [], []
        mark = 0
        for _ in range(samples):
            _, running = ev.wait(lambda e: e["eventType"] == "status_update_event"
                                 and e["taskStatus"] == "TASK_RUNNING", mark)
            task_id = running["taskId"]
            pgid = int((run_dir / f"{task_id}.pgid").read_text())
            mark = len(ev.items)
            t0 = time.perf_counter()
            os.killpg(pgid, signal.SIGKILL)
            t1, _ = ev.wait(lambda e, t=task_id: e["eventType"] == "status_update_event" and e["taskId"] == t
                            and e["taskStatus"] == "TASK_FAILED", mark)
            kill_lat.append(t1 - t0)
        for i in range(samples // 4):
            mark = len(ev.items)
            t0 = time.perf_counter()
            s.put(f"{srv.url}/v2/apps/lat?force=true", json={"instances": 2 - (i % 2)}, timeout=10)
            t1, _ = ev.wait(lambda e: e["eventType"] == "deployment_info", mark)
            api_lat.append(t1 - t0)
        for ln in listeners:
            ln.close()
    return kill_lat, api_lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--subscribers", default="1,10,50")
    args = ap.parse_args()
    for n in (int(x) for x in args.subscribers.split(",")):
        kill_lat, api_lat = run(args.samples, n)
        ms = [x * 1000 for x in kill_lat]
        api_ms = [x * 1000 for x in api_lat]
        print(f"{n:3d} subscribers: task exit -> status_update_event p50 {pct(ms, 50):.2f} ms, "
              f"p95 {pct(ms, 95):.2f} ms, p99 {pct(ms, 99):.2f} ms (n={len(ms)}); "
              f"PUT -> deployment_info p50 {pct(api_ms, 50):.2f} ms, "
              f"p95 {pct(api_ms, 95):.2f} ms (n={len(api_ms)})")


if __name__ == "__main__":
    main()
