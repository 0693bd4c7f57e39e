"""Docker tasks vs process tasks on the devcluster, same app, same run.

Run: .venv/bin/python bench/devcluster_docker.py [--instances 5] [--rounds 3]
Needs a Docker engine that answers (e.g. after `deploykit local up` or the test suite) and makes the
offline base image `deploykit/python:3.11` first if the engine does not have it (so the image is
cached for every timed round). Each round, alternating: POST the app (`python3 -m http.server` on
its port, HTTP health check every 1 s) as Docker tasks (BRIDGE, container port 8080 published on
127.0.0.1) or as process tasks (the host's python3 on $PORT0), time POST -> `deployment_success`
with every instance healthy, then delete it and wait until it is gone. Per task it also takes
TASK_STAGING -> TASK_RUNNING from the event stream: for a container that is `docker run -d` (image
cached), for a process the spawn, so the difference is the docker run overhead per task.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import requests
from benchkit import pct
from devcluster_common import Events, Server

from deploykit.devcluster.docker_engine import docker_cli, engine_version
from deploykit.image.base_image import ensure_local_base

HEALTH = [{"protocol": "HTTP", "path": "/", "portIndex": 0, "intervalSeconds": 1, "timeoutSeconds": 0,
           "gracePeriodSeconds": 30}]


def docker_app(instances: int, image: str) -> dict:
    return {"id": "/bench/docker", "instances": instances, "cpus": 0.05, "mem": 64,
            "container": {"type": "DOCKER",
                          "docker": {"image": image, "parameters": [{"key": "init", "value": "true"}]},
                          "portMappings": [{"containerPort": 8080, "hostPort": 0}]},
            "args": ["python3", "-m", "http.server", "8080"], "healthChecks": HEALTH,
            "taskKillGracePeriodSeconds": 1}


def process_app(instances: int) -> dict:
    return {"id": "/bench/process", "instances": instances, "cpus": 0.05, "mem": 64,
            "cmd": "exec python3 -m http.server $PORT0 --bind 127.0.0.1", "healthChecks": HEALTH,
            "taskKillGracePeriodSeconds": 1}


def one_round(srv: Server, ev: Events, s: requests.Session, app: dict) -> tuple[float, list[float]]:
    mark = len(ev.items)
    t0 = time.perf_counter()
    dep = s.post(f"{srv.url}/v2/apps", json=app, timeout=10).headers["Marathon-Deployment-Id"]
    t1, _ = ev.wait(lambda e, d=dep: e["eventType"] == "deployment_success" and e["id"] == d, mark, timeout=120)
    assert s.get(f"{srv.url}/v2/apps{app['id']}", timeout=10).json()["app"]["tasksHealthy"] == app["instances"]
    staged, running = {}, {}
    for at, e in ev.items[mark:]:
        if e["eventType"] == "status_update_event":
            {"TASK_STAGING": staged, "TASK_RUNNING": running}.get(e["taskStatus"], {})[e["taskId"]] = at
    launch = [running[t] - staged[t] for t in running if t in staged]
    mark = len(ev.items)
    s.delete(f"{srv.url}/v2/apps{app['id']}", timeout=10)
    ev.wait(lambda e: e["eventType"] == "app_terminated_event", mark, timeout=60)
    return t1 - t0, launch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    cli = docker_cli()
    if cli is None or engine_version() is None:
        raise SystemExit("no Docker engine answers: start one (deploykit local up, or dockerd as root)")
    image = ensure_local_base(cli, log=lambda m: print(m, flush=True))
    results: dict[str, dict[str, list[float]]] = {k: {"deploy": [], "launch": []} for k in ("docker", "process")}
    with Server() as srv:
        ev = Events(srv.url)
        s = requests.Session()
        for _ in range(args.rounds):
            for kind, app in (("docker", docker_app(args.instances, image)), ("process", process_app(args.instances))):
                deploy, launch = one_round(srv, ev, s, app)
                results[kind]["deploy"].append(deploy)
                results[kind]["launch"].extend(launch)
        ev.close()
    load = os.getloadavg()[0]
    print(f"{args.instances} instances, {args.rounds} rounds each, alternating; load average {load:.1f}")
    for kind, r in results.items():
        d, la = r["deploy"], r["launch"]
        print(f"{kind:8s} deploy-to-healthy median {statistics.median(d):.2f}s (min {min(d):.2f}, max {max(d):.2f}); "
              f"STAGING->RUNNING per task median {statistics.median(la) * 1000:.0f} ms, "
              f"p90 {pct(la, 90) * 1000:.0f} ms")
    ratio = statistics.median(results["docker"]["deploy"]) / statistics.median(results["process"]["deploy"])
    overhead = statistics.median(results["docker"]["launch"]) - statistics.median(results["process"]["launch"])
    print(f"docker / process deploy-to-healthy: {ratio:.2f}x; docker run overhead per task: {overhead * 1000:.0f} ms")


if __name__ == "__main__":
    main()
