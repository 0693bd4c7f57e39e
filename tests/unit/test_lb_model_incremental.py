"""apply_app/remove_app give exactly what a full build_model would, over random event sequences."""

from __future__ import annotations

import copy
import random

from deploykit.lb.changes import diff
from deploykit.lb.model import apply_app, build_model, remove_app
from deploykit.lb.settings import LbSettings

SETTINGS = LbSettings(http_port=18080, min_slots=4)


def _task(rng: random.Random, n: int) -> dict:
    return {"id": f"t{n}", "host": f"10.0.{rng.randrange(3)}.{rng.randrange(1, 5)}", "ports": [31000 + n],
            "state": rng.choice(["TASK_RUNNING"] * 6 + ["TASK_STAGING", "TASK_KILLING"]),
            "healthCheckResults": rng.choice([[{"alive": True}]] * 4 + [[{"alive": False}], []])}


def _app(rng: random.Random, i: int, counter: list[int]) -> dict:
    labels = {"HAPROXY_GROUP": "external"}
    kind = rng.randrange(4)
    if kind == 0:
        labels["HAPROXY_0_VHOST"] = f"a{rng.randrange(6)}.example.com"  # vhost collisions happen
    elif kind == 1:
        labels["HAPROXY_0_VHOST"] = "shared.example.com"
        labels["HAPROXY_0_PATH"] = f"/p{rng.randrange(4)}"
    elif kind == 2:
        labels["HAPROXY_0_BALANCE"] = rng.choice(["leastconn", "roundrobin", "bogus"])  # some are rejected
    tasks = []
    for _ in range(rng.randrange(0, 7)):
        counter[0] += 1
        tasks.append(_task(rng, counter[0]))
    return {"id": f"/app{i}", "labels": labels, "portDefinitions": [{"port": 10000 + rng.randrange(12)}],
            "healthChecks": [{"path": "/"}], "tasks": tasks}


def _mutate(rng: random.Random, app: dict, counter: list[int]) -> dict:
    app = copy.deepcopy(app)
    roll = rng.random()
    if roll < 0.5 and app["tasks"]:  # a task changes state or health, or is replaced
        t = rng.choice(app["tasks"])
        t["state"] = rng.choice(["TASK_RUNNING", "TASK_KILLING", "TASK_FINISHED"])
        t["healthCheckResults"] = rng.choice([[{"alive": True}], [{"alive": False}], []])
        if rng.random() < 0.3:
            counter[0] += 1
            app["tasks"].append(_task(rng, counter[0]))
    elif roll < 0.8:  # scale
        for _ in range(rng.randrange(1, 8)):
            counter[0] += 1
            app["tasks"].append(_task(rng, counter[0]))
        rng.shuffle(app["tasks"])
        del app["tasks"][rng.randrange(len(app["tasks"]) + 1):]
    else:  # routing change
        app["labels"]["HAPROXY_0_VHOST"] = f"a{rng.randrange(6)}.example.com"
    return app


def test_incremental_updates_equal_full_builds() -> None:
    for seed in range(12):
        rng = random.Random(seed)
        counter = [0]
        apps = {f"/app{i}": _app(rng, i, counter) for i in range(15)}
        model = build_model(list(apps.values()), SETTINGS)
        for step in range(60):
            app_id = f"/app{rng.randrange(18)}"
            if rng.random() < 0.1 and app_id in apps:
                del apps[app_id]
                new, changed = remove_app(model, app_id)
            else:
                known = app_id in apps
                app = _mutate(rng, apps[app_id], counter) if known else _app(rng, int(app_id[4:]), counter)
                apps[app_id] = app
                new, changed = apply_app(model, app)
            full = build_model(list(apps.values()), SETTINGS, prev=model)
            where = f"seed {seed} step {step} {app_id}"
            assert new.backends == full.backends, where
            assert new.http_routes == full.http_routes and new.port_frontends == full.port_frontends, where
            assert new.rejected == full.rejected and new.ignored == full.ignored, where
            assert new.health == full.health, where
            assert set(changed) == {n for n in set(model.backends) | set(new.backends)
                                    if model.backends.get(n) != new.backends.get(n)}, where
            # the hint-limited diff says the same as the full diff
            hinted, whole = diff(model, new, only=changed), diff(model, new)
            assert hinted.server_ops == whole.server_ops and hinted.reload_needed == whole.reload_needed, where
            model = new
