"""Deploy-to-healthy time of a 10-instance app on the devcluster, and a rolling restart of it.

Run: .venv/bin/python bench/devcluster_deploy.py [--instances 10] [--rounds 5]
Each round: POST the app (busybox httpd tasks, HTTP health check every 1 s) and time until
`deployment_success` and tasksHealthy == instances; then restart it (minimumHealthCapacity
0.5) and time that deployment; then delete it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import requests
from benchkit import pct
from devcluster_common import Events, Server


def app(instances: int) -> dict:
    return {"id": "/bench/web", "instances": instances, "cpus": 0.01, "mem": 16,
            "cmd": "echo ok > health && exec busybox httpd -f -p 127.0.0.1:$PORT0 -h .",
            "healthChecks": [{"path": "/health", "intervalSeconds": 1, "timeoutSeconds": 0,
                              "gracePeriodSeconds": 30}],
            "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.5}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    deploy, restart = [], []
    with Server() as srv:
        ev = Events(srv.url)
        s = requests.Session()
        for _ in range(args.rounds):
            mark = len(ev.items)
            t0 = time.perf_counter()
            dep = s.post(f"{srv.url}/v2/apps", json=app(args.instances), timeout=10).headers["Marathon-Deployment-Id"]
            t1, _ = ev.wait(lambda e, d=dep: e["eventType"] == "deployment_success" and e["id"] == d, mark)
            assert s.get(f"{srv.url}/v2/apps/bench/web", timeout=10).json()["app"]["tasksHealthy"] == args.instances
            deploy.append(t1 - t0)
            mark = len(ev.items)
            t0 = time.perf_counter()
            dep = s.post(f"{srv.url}/v2/apps/bench/web/restart", timeout=10).json()["deploymentId"]
            t1, _ = ev.wait(lambda e, d=dep: e["eventType"] == "deployment_success" and e["id"] == d, mark)
            restart.append(t1 - t0)
            mark = len(ev.items)
            s.delete(f"{srv.url}/v2/apps/bench/web", timeout=10)
            ev.wait(lambda e: e["eventType"] == "app_terminated_event", mark)
        ev.close()
    for name, vals in (("deploy-to-healthy", deploy), ("rolling restart", restart)):
        print(f"{name} ({args.instances} instances, {args.rounds} rounds): median {statistics.median(vals):.2f}s, "
              f"min {min(vals):.2f}s, max {max(vals):.2f}s, p90 {pct(vals, 90):.2f}s")


if __name__ == "__main__":
    main()
