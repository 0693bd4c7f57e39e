"""plan.py: the diff shown by `deploykit diff` / --dry-run and the no-change decision."""

from __future__ import annotations

import copy

from deploykit.plan import ConfigPlan, diff, make_plan, redact

DESIRED = {
    "id": "/shop/cart",
    "cmd": "python3 server.py",
    "instances": 2,
    "cpus": 0.1,
    "mem": 64,
    "env": {"LOG_LEVEL": "info", "DB_PASSWORD": "s3cret-canary"},
    "healthChecks": [{"path": "/health", "protocol": "HTTP", "portIndex": 0, "gracePeriodSeconds": 5}],
    "portDefinitions": [{"port": 10001, "name": "http", "protocol": "tcp"}],
    "labels": {"HAPROXY_GROUP": "external"},
}


def live(app: dict) -> dict:
    """What Marathon answers for `app`: server fields and defaults added, numbers as floats."""
    out = copy.deepcopy(app)
    out.update(
        {
            "version": "2026-01-01T00:00:00.000Z",
            "versionInfo": {"lastScalingAt": "x", "lastConfigChangeAt": "x"},
            "tasksRunning": 2,
            "tasksHealthy": 2,
            "tasksStaged": 0,
            "tasksUnhealthy": 0,
            "deployments": [],
            "tasks": [{"id": "t1"}],
            "backoffFactor": 1.15,
            "backoffSeconds": 1,
            "maxLaunchDelaySeconds": 300,
            "disk": 0,
            "gpus": 0,
            "executor": "",
            "requirePorts": False,
            "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
            "killSelection": "YOUNGEST_FIRST",
            "constraints": [],
            "uris": [],
            "fetch": [],
            "args": None,
        }
    )
    out["mem"] = float(app["mem"])
    out["healthChecks"][0].update({"ipProtocol": "IPv4", "delaySeconds": 15, "intervalSeconds": 60})
    out["portDefinitions"][0]["labels"] = {}
    return out


def test_same_app_with_server_noise_is_unchanged():
    current = live(DESIRED)
    # intervalSeconds present only on the server with a non-default value we did not ask for: a real change
    current["healthChecks"][0].pop("intervalSeconds")
    plan = make_plan(DESIRED, current)
    assert plan.changes == []
    assert plan.unchanged
    assert plan.kind == "unchanged"
    assert "no change" in plan.lines()


def test_server_only_non_default_value_is_a_removal():
    current = live(DESIRED)
    current["healthChecks"][0]["intervalSeconds"] = 7  # 60 would be Marathon's default: no change
    plan = make_plan(DESIRED, current)
    assert [(c.path, c.op) for c in plan.changes] == [("healthChecks[0].intervalSeconds", "remove")]


def test_changes_are_leaf_paths():
    current = live(DESIRED)
    current["healthChecks"][0].pop("intervalSeconds")
    want = copy.deepcopy(DESIRED)
    want["env"]["LOG_LEVEL"] = "debug"
    want["env"]["NEW"] = "1"
    want["healthChecks"][0]["path"] = "/ready"
    want["constraints"] = [["hostname", "UNIQUE"]]
    plan = make_plan(want, current)
    got = {(c.path, c.op, str(c.old), str(c.new)) for c in plan.changes}
    assert got == {
        ("env.LOG_LEVEL", "change", "info", "debug"),
        ("env.NEW", "add", "None", "1"),
        ("healthChecks[0].path", "change", "/health", "/ready"),
        ("constraints[0]", "add", "None", "['hostname', 'UNIQUE']"),
    }
    assert plan.kind == "update"


def test_scale_only():
    current = live(DESIRED)
    current["healthChecks"][0].pop("intervalSeconds")
    want = {**DESIRED, "instances": 5}
    plan = make_plan(want, current)
    assert plan.kind == "scale"
    assert plan.lines() == ["~ instances: 2 -> 5"]


def test_new_app():
    plan = make_plan(DESIRED, None)
    assert plan.kind == "create"
    assert not plan.unchanged
    assert plan.lines()[0] == "+ app /shop/cart (new)"


def test_numbers_compare_by_value_but_bools_do_not():
    assert diff({"a": 1}, {"a": 1.0}) == []
    assert diff({"a": True}, {"a": 1}) != []


def test_secret_values_are_redacted_in_every_output():
    current = live(DESIRED)
    current["healthChecks"][0].pop("intervalSeconds")
    want = copy.deepcopy(DESIRED)
    want["env"]["DB_PASSWORD"] = "n3w-canary"
    plan = make_plan(want, current, secret_env={"DB_PASSWORD"})
    text = "\n".join(plan.lines()) + repr(plan.to_dict())
    assert "canary" not in text
    assert redact("n3w-canary") in text and redact("s3cret-canary") in text
    # a new app shows no env at all in lines; a removed secret var is redacted too
    want2 = copy.deepcopy(DESIRED)
    del want2["env"]["DB_PASSWORD"]
    plan2 = make_plan(want2, current, secret_env={"DB_PASSWORD"})
    assert "canary" not in "\n".join(plan2.lines())


def test_config_plan_lines_and_dict():
    cfg = ConfigPlan(prefix="config/shop/cart/abc", hash="abc", keys=["a", "b"], exists=False)
    current = live(DESIRED)
    current["healthChecks"][0].pop("intervalSeconds")
    plan = make_plan(DESIRED, current, config=cfg)
    assert plan.unchanged  # the app JSON did not change; the tree is (re)written on its own
    assert "+ config config/shop/cart/abc (new, 2 key(s))" in plan.lines()
    assert plan.to_dict()["config"]["keys"] == ["a", "b"]


def test_fetch_and_readiness_defaults_are_not_changes():
    want = {**copy.deepcopy(DESIRED), "fetch": [{"uri": "file:///x/server.py"}],
            "readinessChecks": [{"path": "/ready", "portName": "http"}]}
    current = live(want)
    current["fetch"] = [{"uri": "file:///x/server.py", "executable": False, "extract": True, "cache": False}]
    current["readinessChecks"][0].update({"name": "readinessCheck", "protocol": "HTTP", "intervalSeconds": 30,
                                          "timeoutSeconds": 10, "httpStatusCodesForReady": [200]})
    assert make_plan(want, current).changes == []
    current["readinessChecks"][0]["intervalSeconds"] = 60  # health's default, not readiness's
    assert [c.path for c in make_plan(want, current).changes] == ["readinessChecks[0].intervalSeconds"]


def test_provenance_labels_alone_are_no_change():
    current = live(DESIRED)
    current["healthChecks"][0].pop("intervalSeconds")
    current["labels"] = {**current["labels"], "DEPLOYKIT_DEPLOYED_BY": "alice@h", "DEPLOYKIT_GIT_SHA": "aaa"}
    want = copy.deepcopy(DESIRED)
    want["labels"] = {**want["labels"], "DEPLOYKIT_DEPLOYED_BY": "bob@h", "DEPLOYKIT_GIT_SHA": "bbb"}
    assert make_plan(want, current).unchanged


def test_docker_container_defaults_are_not_changes():
    want = {"id": "/d", "instances": 1, "container": {"type": "DOCKER", "docker": {"image": "r/d:1"},
            "portMappings": [{"containerPort": 8080, "hostPort": 0, "name": "http"}]},
            "networks": [{"mode": "container/bridge"}]}
    current = copy.deepcopy(want)
    current["container"]["docker"].update({"forcePullImage": False, "privileged": False, "parameters": []})
    current["container"]["portMappings"][0].update({"protocol": "tcp", "servicePort": 10000, "labels": {}})
    current["container"]["volumes"] = []
    # servicePort 10000 was assigned by Marathon because we left it out (or said 0): no change
    assert make_plan(want, current).changes == []
    want["container"]["portMappings"][0]["servicePort"] = 0
    assert make_plan(want, current).changes == []
    want["container"]["portMappings"][0]["servicePort"] = 10005  # asking for a specific one is a change
    assert [c.path for c in make_plan(want, current).changes] == ["container.portMappings[0].servicePort"]
