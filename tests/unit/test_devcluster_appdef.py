"""App definition parsing: play-json type errors, Accord checks, defaults, partial updates."""

from __future__ import annotations

import pytest

from deploykit.devcluster import appdef
from deploykit.devcluster.errors import ApiError


def errors_of(doc, **kw) -> tuple[str, dict[str, list[str]]]:
    with pytest.raises(ApiError) as exc:
        appdef.parse_app(doc, **kw)
    assert exc.value.status == 422
    return exc.value.body["message"], {d["path"]: d["errors"] for d in exc.value.body["details"]}


def test_defaults_follow_the_raml():
    app = appdef.parse_app({"id": "web", "cmd": "serve"})
    assert app["id"] == "/web"
    assert (app["instances"], app["cpus"], app["mem"], app["disk"], app["gpus"]) == (1, 1.0, 128.0, 0.0, 0)
    assert app["upgradeStrategy"] == {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0}
    assert app["portDefinitions"] == [{"protocol": "tcp", "port": 0, "name": "default"}]
    assert (app["backoffSeconds"], app["backoffFactor"], app["maxLaunchDelaySeconds"]) == (1, 1.15, 300)
    assert app["networks"] == [{"mode": "host"}] and app["killSelection"] == "YOUNGEST_FIRST"


def test_health_and_readiness_defaults():
    app = appdef.parse_app({"id": "/a", "cmd": "x", "portDefinitions": [{"name": "http"}],
                            "healthChecks": [{}, {"protocol": "COMMAND", "command": {"value": "true"}}],
                            "readinessChecks": [{}]})
    http, cmd = app["healthChecks"]
    assert http == {"protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 300,
                    "intervalSeconds": 60, "timeoutSeconds": 20, "maxConsecutiveFailures": 3, "delaySeconds": 15,
                    "ipProtocol": "IPv4"}
    assert "portIndex" not in cmd and "path" not in cmd
    assert app["readinessChecks"][0]["httpStatusCodesForReady"] == [200]


def test_wrong_types_are_invalid_json_with_play_codes():
    msg, paths = errors_of({"id": "/a", "cmd": 1, "instances": 1.5, "env": {"A": 3}, "args": "x",
                            "healthChecks": [{"portIndex": "0"}], "labels": []})
    assert msg == "Invalid JSON"
    assert paths == {"/cmd": ["error.expected.jsstring"], "/instances": ["error.expected.int"],
                     "/env/A": ["error.expected.jsstring"], "/args": ["error.expected.jsarray"],
                     "/healthChecks(0)/portIndex": ["error.expected.jsnumber"], "/labels": ["error.expected.jsobject"]}


def test_missing_id_and_non_object_body():
    assert errors_of({"cmd": "x"})[1] == {"/id": ["error.path.missing"]}
    assert errors_of([1, 2])[1] == {"/": ["error.expected.jsobject"]}


def test_semantic_errors_grouped_by_path():
    msg, paths = errors_of({"id": "/Bad/i_d", "cmd": "a", "args": ["b"], "cpus": -1, "instances": -2,
                            "upgradeStrategy": {"minimumHealthCapacity": 1.5},
                            "healthChecks": [{"portIndex": 4}, {"protocol": "UDP"}],
                            "readinessChecks": [{"portName": "nope"}]})
    assert msg == "Object is not valid"
    assert paths["/id"] == [appdef.PATH_ERROR]
    assert paths["/"] == [appdef.CMD_ERROR]
    assert paths["/instances"] == ["got -2, expected 0 or more"]
    assert paths["/cpus"] == ["got -1, expected 0.0 or more"]
    assert paths["/upgradeStrategy/minimumHealthCapacity"] == ["is greater than 1"]
    assert "/healthChecks(0)" in paths and "/healthChecks(1)/protocol" in paths
    assert paths["/readinessChecks(0)/portName"] == ["No port definition reference for portName nope"]


def test_needs_cmd_args_or_container():
    assert errors_of({"id": "/a"})[1] == {"/": [appdef.CMD_ERROR]}
    app = appdef.parse_app({"id": "/a", "container": {"type": "DOCKER", "docker": {"image": "x"},
                                                     "portMappings": [{"containerPort": 80}]}})
    assert app["portDefinitions"] == [] and app["networks"] == [{"mode": "container/bridge"}]
    assert app["container"]["portMappings"][0] == {"containerPort": 80, "hostPort": 0, "servicePort": 0,
                                                   "protocol": "tcp"}


def test_partial_update_keeps_fields_and_path_id_wins():
    base = appdef.parse_app({"id": "/a", "cmd": "x", "instances": 3, "env": {"A": "1"}})
    upd = appdef.parse_app({"id": "/other", "args": ["y"], "version": "ignored"}, path_id="/a", base=base)
    assert upd["id"] == "/a" and upd["args"] == ["y"] and "cmd" not in upd
    assert upd["instances"] == 3 and upd["env"] == {"A": "1"}


def test_response_fields_are_ignored_so_a_get_body_can_be_put_back():
    app = appdef.parse_app({"id": "/a", "cmd": "x", "tasks": [], "tasksRunning": 2, "deployments": [],
                            "version": "2020-01-01T00:00:00.000Z", "unknownField": 1})
    assert "tasks" not in app and "version" not in app


def test_config_equal_and_capacity():
    a = appdef.parse_app({"id": "/a", "cmd": "x", "instances": 4,
                          "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.5}})
    assert appdef.config_equal(a, {**a, "instances": 9})
    assert not appdef.config_equal(a, {**a, "cmd": "y"})
    assert appdef.capacity(a) == (2, 6)
    b = appdef.parse_app({"id": "/b", "cmd": "x", "instances": 3,
                          "upgradeStrategy": {"minimumHealthCapacity": 0.7, "maximumOverCapacity": 0}})
    assert appdef.capacity(b) == (3, 3)


@pytest.mark.parametrize("raw,norm", [("a", "/a"), ("/a/b/", "/a/b"), ("//a//b", "/a/b")])
def test_normalize_id(raw, norm):
    assert appdef.normalize_id(raw) == norm


def test_marathon_bounds_int32_and_ports():
    """Issue 18 items 8 and 9: Marathon's RAML integers are int32 and ports 0-65535 (422, nothing stored)."""
    msg, errs = errors_of({"id": "/big", "cmd": "x", "instances": 9223372036854775808})
    assert msg == "Invalid JSON" and errs == {"/instances": ["error.expected.int"]}
    assert appdef.parse_app({"id": "/big", "cmd": "x", "instances": 2**31 - 1})["instances"] == 2**31 - 1
    _, errs = errors_of({"id": "/p", "cmd": "x", "portDefinitions": [{"port": 70000}, {"port": -1}]})
    assert errs == {"/portDefinitions(0)/port": ["error.max"], "/portDefinitions(1)/port": ["error.min"]}
    _, errs = errors_of({"id": "/p", "cmd": "x", "container": {"type": "DOCKER", "docker": {"image": "i"},
                                                                "portMappings": [{"servicePort": 65536}]}})
    assert errs == {"/container/portMappings(0)/servicePort": ["error.max"]}
    _, errs = errors_of({"id": "/t", "cmd": "x", "taskKillGracePeriodSeconds": 2**31})
    assert errs == {"/taskKillGracePeriodSeconds": ["error.expected.int"]}


def test_ids_too_long_to_store_and_relative_elements():
    msg, errs = errors_of({"id": "/" + "a" * 300, "cmd": "x"})
    assert msg == "Object is not valid" and "too long" in errs["/id"][0]
    nested = "/" + "/".join(["abcdefghij"] * 20)  # 200 characters, but each slash is stored as %2F
    assert "too long" in errors_of({"id": nested, "cmd": "x"})[1]["/id"][0]
    assert appdef.parse_app({"id": "/" + "a" * 240, "cmd": "x"})
    _, errs = errors_of({"id": "/shop/../cart", "cmd": "x"})
    assert any("relative path elements" in e and "not names" in e for e in errs["/id"])
