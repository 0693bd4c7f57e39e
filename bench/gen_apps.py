"""Write a synthetic Marathon `/v2/apps?embed=apps.tasks` response for benchmarks.

Shaped like Marathon 1.10's answer (Docker apps in the 1.5+ networking shape, health and
readiness checks, labels as deploykit renders them, five tasks each with health results),
so parsing and routing cost what they cost on a real cluster. 3,000 apps x 5 tasks is
about 14 MB, like the issue's reference response. `--style marathon-lb` labels the apps the way
apps deployed by other tools are (HAPROXY_GROUP, HAPROXY_0_VHOST, no DEPLOYKIT_* labels, so the
HAProxy-side check must come from Marathon's health check), as issue 14's comparison uses.

    .venv/bin/python bench/gen_apps.py --apps 3000 --tasks 5 -o /tmp/apps-3000.json
    .venv/bin/python bench/gen_apps.py --apps 1000 --style marathon-lb -o /tmp/mlb-1000.json
"""

from __future__ import annotations

import argparse
import json
import random


def make_app(i: int, tasks: int, rng: random.Random, style: str = "deploykit") -> dict:
    team = f"team{i % 40:02d}"
    name = f"svc{i:05d}"
    app_id = f"/{team}/{name}"
    service_port = 10000 + i
    tcp = i % 10 == 9  # a tenth are plain tcp services on their service port
    labels = {
        "HAPROXY_GROUP": "external",
        "DEPLOYKIT_CONFIG_HASH": f"{rng.getrandbits(64):016x}",
        "DEPLOYKIT_GIT_SHA": f"{rng.getrandbits(160):040x}",
        "DEPLOYKIT_DEPLOYED_BY": "jenkins@ci.example.com",
        "DEPLOYKIT_IMAGE": f"registry.example.com/{team}/{name}:{i % 97}.{i % 13}.0",
        "DEPLOYKIT_0_CHECK_INTERVAL_MS": "2000",
        "DEPLOYKIT_0_CHECK_RISE": "2",
        "DEPLOYKIT_0_CHECK_FALL": "3",
    }
    if tcp:
        labels["HAPROXY_0_MODE"] = "tcp"
    else:
        labels["HAPROXY_0_VHOST"] = f"{name}.{team}.example.com"
        labels["DEPLOYKIT_0_CHECK_PATH"] = "/health"
        if i % 7 == 0:
            labels["HAPROXY_0_PATH"] = "/api"
    image = labels["DEPLOYKIT_IMAGE"]
    if style == "marathon-lb":
        labels = {k: v for k, v in labels.items() if not k.startswith("DEPLOYKIT_")}
    version = f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:17.{i % 1000:03d}Z"
    task_list = []
    for k in range(tasks):
        host = f"10.{(i * 7 + k) % 200}.{(i + k * 13) % 250}.{(i * 3 + k) % 250 + 1}"
        tid = f"{team}_{name}.instance-{rng.getrandbits(128):032x}._app.1"
        task_list.append({
            "appId": app_id,
            "healthCheckResults": [{
                "alive": True, "consecutiveFailures": 0, "firstSuccess": version, "lastFailure": None,
                "lastSuccess": version, "lastFailureCause": None, "instanceId": tid.rsplit(".", 2)[0],
            }],
            "host": host,
            "id": tid,
            "ipAddresses": [{"ipAddress": f"172.17.0.{k + 2}", "protocol": "IPv4"}],
            "ports": [31000 + (i * 5 + k) % 1000],
            "servicePorts": [service_port],
            "slaveId": f"{rng.getrandbits(64):016x}-S{k}",
            "state": "TASK_RUNNING",
            "stagedAt": version,
            "startedAt": version,
            "version": version,
            "localVolumes": [],
            "role": "*",
        })
    return {
        "id": app_id,
        "backoffFactor": 1.15,
        "backoffSeconds": 1,
        "cmd": None,
        "constraints": [["hostname", "UNIQUE"]],
        "container": {
            "type": "DOCKER",
            "docker": {"forcePullImage": False, "image": image, "parameters": [],
                       "privileged": False},
            "volumes": [],
            "portMappings": [{"containerPort": 8080, "hostPort": 0, "labels": {}, "name": "http",
                              "protocol": "tcp", "servicePort": service_port}],
        },
        "cpus": 0.5,
        "disk": 0,
        "env": {"LOG_LEVEL": "info", "DEPLOYKIT_CONFIG_PREFIX": f"config{app_id}/{i:08x}"},
        "executor": "",
        "healthChecks": [{"gracePeriodSeconds": 30, "intervalSeconds": 10, "maxConsecutiveFailures": 3,
                          "portIndex": 0, "timeoutSeconds": 5, "delaySeconds": 15, "protocol": "MESOS_HTTP",
                          "path": "/health", "ipProtocol": "IPv4"}],
        "instances": tasks,
        "labels": labels,
        "maxLaunchDelaySeconds": 300,
        "mem": 256,
        "gpus": 0,
        "networks": [{"mode": "container/bridge"}],
        "requirePorts": False,
        "upgradeStrategy": {"maximumOverCapacity": 0.2, "minimumHealthCapacity": 0.5},
        "version": version,
        "versionInfo": {"lastScalingAt": version, "lastConfigChangeAt": version},
        "killSelection": "YOUNGEST_FIRST",
        "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0},
        "tasksStaged": 0,
        "tasksRunning": tasks,
        "tasksHealthy": tasks,
        "tasksUnhealthy": 0,
        "deployments": [],
        "tasks": task_list,
    }


def make_apps(n_apps: int, tasks: int, seed: int = 8, style: str = "deploykit") -> dict:
    rng = random.Random(seed)
    return {"apps": [make_app(i, tasks, rng, style) for i in range(n_apps)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=3000)
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--style", choices=["deploykit", "marathon-lb"], default="deploykit")
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args()
    with open(args.out, "w") as f:
        json.dump(make_apps(args.apps, args.tasks, args.seed, args.style), f, separators=(",", ":"))


if __name__ == "__main__":
    main()
