"""App definitions: type checks, semantic checks and Marathon's defaults.

Marathon 1.10 reads bodies with RAML-generated play-json readers (wrong types give
"Invalid JSON" with `error.expected.*` codes) and then validates with Accord rules
("Object is not valid"). We reproduce both stages, in that order, with Marathon's paths
(`/healthChecks(0)/portIndex`). Unknown fields are ignored, as the generated readers do.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

from deploykit.devcluster.errors import invalid_json, not_valid
from deploykit.devcluster.util import NAME_MAX, app_state_name

# Type specs: "string" | "number" | "integer" | "boolean" | "any" | "env" |
# ("array", spec) | ("object", {field: spec}) | ("map", spec)
_PORT_DEF = ("object", {"port": "port", "name": "string", "protocol": "string", "labels": ("map", "string")})
_PORT_MAPPING = ("object", {
    "containerPort": "port", "hostPort": "port", "servicePort": "port", "name": "string",
    "protocol": "string", "labels": ("map", "string"), "networkNames": ("array", "string"),
})
_HEALTH = ("object", {
    "protocol": "string", "path": "string", "portIndex": "integer", "port": "integer",
    "gracePeriodSeconds": "integer", "intervalSeconds": "integer", "timeoutSeconds": "integer",
    "maxConsecutiveFailures": "integer", "delaySeconds": "integer", "ipProtocol": "string",
    "ignoreHttp1xx": "boolean", "command": ("object", {"value": "string"}),
})
_READINESS = ("object", {
    "name": "string", "protocol": "string", "path": "string", "portName": "string",
    "intervalSeconds": "integer", "timeoutSeconds": "integer",
    "httpStatusCodesForReady": ("array", "integer"), "preserveLastResponse": "boolean",
})
_FETCH = ("object", {
    "uri": "string", "executable": "boolean", "extract": "boolean", "cache": "boolean", "destPath": "string",
})
_CONTAINER = ("object", {
    "type": "string",
    "docker": ("object", {
        "image": "string", "network": "string", "privileged": "boolean", "forcePullImage": "boolean",
        "parameters": ("array", ("object", {"key": "string", "value": "string"})),
        "portMappings": ("array", _PORT_MAPPING),
    }),
    "portMappings": ("array", _PORT_MAPPING),
    "volumes": ("array", ("object", {"containerPath": "string", "hostPath": "string", "mode": "string"})),
})
APP_SPEC = ("object", {
    "id": "string", "cmd": "string", "args": ("array", "string"), "user": "string",
    "instances": "integer", "cpus": "number", "mem": "number", "disk": "number", "gpus": "integer",
    "env": ("map", "env"), "labels": ("map", "string"), "constraints": ("array", ("array", "string")),
    "uris": ("array", "string"), "fetch": ("array", _FETCH), "storeUrls": ("array", "string"),
    "portDefinitions": ("array", _PORT_DEF), "ports": ("array", "port"), "requirePorts": "boolean",
    "backoffSeconds": "integer", "backoffFactor": "number", "maxLaunchDelaySeconds": "integer",
    "healthChecks": ("array", _HEALTH), "readinessChecks": ("array", _READINESS),
    "dependencies": ("array", "string"), "executor": "string",
    "upgradeStrategy": ("object", {"minimumHealthCapacity": "number", "maximumOverCapacity": "number"}),
    "container": _CONTAINER, "networks": ("array", ("object", {"mode": "string", "name": "string"})),
    "killSelection": "string", "acceptedResourceRoles": ("array", "string"), "role": "string",
    "unreachableStrategy": "any", "secrets": ("map", "any"), "taskKillGracePeriodSeconds": "integer",
    "ipAddress": "any", "residency": "any", "executorResources": "any", "tty": "boolean",
})
KNOWN_FIELDS = set(APP_SPEC[1])

_JS_NAMES = {"string": "jsstring", "number": "jsnumber", "integer": "jsnumber", "port": "jsnumber",
             "boolean": "jsboolean"}
# Marathon's RAML integers are int32 (play-json's IntReads: "error.expected.int" outside it); ports are
# numbers.AnyPort, 0-65535 ("error.min" / "error.max" from the generated readers).
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
PORT_MAX = 65535


# Fields that only appear in responses; a client that PUTs back a GET body must not fail on them.
RESPONSE_ONLY = {
    "version", "versionInfo", "tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy",
    "deployments", "tasks", "lastTaskFailure", "readinessCheckResults", "taskStats", "counts",
}

HEALTH_PROTOCOLS = {"HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP"}
_SEGMENT = re.compile(r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$")
PATH_ERROR = 'path contains invalid characters (allowed: lowercase letters, digits, hyphens, ".", "..")'
CMD_ERROR = "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."


def _type_errors(value: Any, spec: Any, path: str, out: list[dict]) -> None:
    def err(code: str) -> None:
        out.append({"path": path or "/", "errors": [code]})

    if spec == "any":
        return
    if spec == "env":
        if isinstance(value, str):
            return
        if isinstance(value, dict) and isinstance(value.get("secret"), str):
            return
        err("error.expected.jsstring")
        return
    if isinstance(spec, str):
        integer = isinstance(value, int) and not isinstance(value, bool)
        ok = {
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "integer": integer,
            "port": integer,
        }[spec]
        if not ok:
            if spec in ("integer", "port") and isinstance(value, float) and not isinstance(value, bool):
                err("error.expected.int")
            else:
                err(f"error.expected.{_JS_NAMES[spec]}")
        elif integer and not INT32_MIN <= value <= INT32_MAX:
            err("error.expected.int")
        elif spec == "port" and value < 0:
            err("error.min")
        elif spec == "port" and value > PORT_MAX:
            err("error.max")
        return
    kind, inner = spec
    if kind == "array":
        if not isinstance(value, list):
            err("error.expected.jsarray")
            return
        for i, item in enumerate(value):
            _type_errors(item, inner, f"{path}({i})", out)
    elif kind == "map":
        if not isinstance(value, dict):
            err("error.expected.jsobject")
            return
        for k, v in value.items():
            _type_errors(v, inner, f"{path}/{k}", out)
    elif kind == "object":
        if not isinstance(value, dict):
            err("error.expected.jsobject")
            return
        for k, sub in inner.items():
            if k in value and value[k] is not None:
                _type_errors(value[k], sub, f"{path}/{k}", out)


def check_types(doc: Any) -> None:
    """Raise 422 "Invalid JSON" with play-json style details when a field has the wrong type."""
    out: list[dict] = []
    _type_errors(doc, APP_SPEC, "", out)
    if out:
        raise invalid_json(out)


def normalize_id(raw: str) -> str:
    """Relative ids become absolute; duplicate and trailing slashes go."""
    parts = [p for p in raw.split("/") if p]
    return "/" + "/".join(parts)


def id_problems(app_id: str) -> list[str]:
    parts = [p for p in app_id.split("/") if p]
    if not parts:
        return ["Path must contain at least one path element"]
    if any(p in (".", "..") for p in parts):
        # Marathon's own wording lists "." and ".." as allowed: they are relative path elements, not names
        return [PATH_ERROR, '"." and ".." are relative path elements (resolved against the parent group), not '
                'names: give the absolute id, e.g. /shop/cart']
    if any(not _SEGMENT.match(p) for p in parts):
        return [PATH_ERROR]
    stored = len(app_state_name(app_id))
    if stored > NAME_MAX:
        return [f"is too long to be stored: {stored} bytes as a file name (a slash counts 3), at most {NAME_MAX}"]
    return []


def host_port_specs(app: dict) -> list[dict]:
    """The ports a task gets, in order: portDefinitions, or container portMappings (bridge)."""
    mappings = _port_mappings(app)
    if mappings:
        return mappings
    return list(app.get("portDefinitions") or [])


def _port_mappings(app: dict) -> list[dict]:
    container = app.get("container") or {}
    return list(container.get("portMappings") or (container.get("docker") or {}).get("portMappings") or [])


def semantic_problems(app: dict) -> dict[str, list[str]]:
    """Accord-style checks on a defaulted app; returns {path: [messages]}."""
    problems: dict[str, list[str]] = {}

    def add(path: str, msg: str) -> None:
        problems.setdefault(path, []).append(msg)

    for msg in id_problems(app["id"]):
        add("/id", msg)
    has_container = bool(app.get("container"))
    if ("cmd" in app and "args" in app) or ("cmd" not in app and "args" not in app and not has_container):
        add("/", CMD_ERROR)
    if app["instances"] < 0:
        add("/instances", f"got {app['instances']}, expected 0 or more")
    for key, low in (("cpus", 0.0), ("mem", 0.0), ("disk", 0.0), ("gpus", 0)):
        if app[key] < low:
            add(f"/{key}", f"got {app[key]}, expected {low} or more")
    if app["backoffFactor"] < 1.0:
        add("/backoffFactor", f"got {app['backoffFactor']}, expected 1.0 or more")
    if app["backoffSeconds"] < 0:
        add("/backoffSeconds", f"got {app['backoffSeconds']}, expected 0 or more")
    for key in ("minimumHealthCapacity", "maximumOverCapacity"):
        v = app["upgradeStrategy"][key]
        if v > 1:
            add(f"/upgradeStrategy/{key}", "is greater than 1")
        elif v < 0:
            add(f"/upgradeStrategy/{key}", "is less than 0")
    ports = host_port_specs(app)
    names = [p.get("name") for p in ports if p.get("name")]
    if len(names) != len(set(names)):
        add("/portDefinitions", "Port names must be unique.")
    for i, hc in enumerate(app["healthChecks"]):
        base = f"/healthChecks({i})"
        if hc["protocol"] not in HEALTH_PROTOCOLS:
            add(f"{base}/protocol", f"is not one of ({', '.join(sorted(HEALTH_PROTOCOLS))})")
        if hc["protocol"] == "COMMAND":
            if not (hc.get("command") or {}).get("value"):
                add(f"{base}/command", "is required for COMMAND health checks")
        elif "port" not in hc and hc.get("portIndex", 0) >= len(ports):
            add(base, "Health check port indices must address an element of the ports array or container port "
                "mappings.")
        for key in ("gracePeriodSeconds", "intervalSeconds", "timeoutSeconds", "maxConsecutiveFailures"):
            if hc[key] < 0:
                add(f"{base}/{key}", f"got {hc[key]}, expected 0 or more")
    for i, rc in enumerate(app["readinessChecks"]):
        if rc["portName"] not in names:
            add(f"/readinessChecks({i})/portName", f"No port definition reference for portName {rc['portName']}")
    docker = (app.get("container") or {}).get("docker")
    if docker is not None and not docker.get("image"):
        add("/container/docker/image", "must not be empty")
    for i, f in enumerate(app["fetch"]):
        if not f.get("uri"):
            add(f"/fetch({i})/uri", "must not be empty")
    if len(app["constraints"]) and any(len(c) < 2 for c in app["constraints"]):
        add("/constraints", "Each constraint must have either 2 or 3 fields")
    return problems


def apply_defaults(app: dict) -> dict:
    """Fill in Marathon's documented defaults (RAML `App`, `AppHealthCheck`, `ReadinessCheck`)."""
    a = copy.deepcopy(app)
    for k, v in (("instances", 1), ("cpus", 1.0), ("mem", 128.0), ("disk", 0.0), ("gpus", 0),
                 ("executor", ""), ("backoffSeconds", 1), ("backoffFactor", 1.15),
                 ("maxLaunchDelaySeconds", 300), ("requirePorts", False), ("killSelection", "YOUNGEST_FIRST")):
        if a.get(k) is None:
            a[k] = v
    for k in ("constraints", "uris", "fetch", "healthChecks", "readinessChecks", "dependencies"):
        if a.get(k) is None:
            a[k] = []
    for k in ("env", "labels", "secrets"):
        if a.get(k) is None:
            a[k] = {}
    for k in ("cmd", "args", "container", "user"):
        if k in a and a[k] is None:
            del a[k]
    us = a.get("upgradeStrategy") or {}
    a["upgradeStrategy"] = {"minimumHealthCapacity": us.get("minimumHealthCapacity", 1.0),
                            "maximumOverCapacity": us.get("maximumOverCapacity", 1.0)}
    if a.get("unreachableStrategy") is None:
        a["unreachableStrategy"] = {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}
    if a["uris"] and not a["fetch"]:  # 1.10 turns the deprecated `uris` into fetch artifacts
        a["fetch"] = [{"uri": u} for u in a["uris"]]
    a["fetch"] = [{"executable": False, "extract": True, "cache": False, **f} for f in a["fetch"]]
    if _port_mappings(a):
        a["portDefinitions"] = []
        container = a["container"]
        key = "portMappings" if container.get("portMappings") else None
        target = container["portMappings"] if key else container["docker"]["portMappings"]
        for pm in target:
            pm.setdefault("containerPort", 0)
            pm.setdefault("hostPort", 0)
            pm.setdefault("servicePort", 0)
            pm.setdefault("protocol", "tcp")
    elif a.get("portDefinitions") is None:
        if a.get("ports") is not None:  # deprecated `ports: [int]`
            a["portDefinitions"] = [{"port": p, "protocol": "tcp"} for p in a["ports"]]
        else:
            a["portDefinitions"] = [{"port": 0, "name": "default", "protocol": "tcp"}]
    a.pop("ports", None)
    a["portDefinitions"] = [{"protocol": "tcp", "port": 0, **p} for p in a["portDefinitions"]]
    if a.get("networks") is None:
        a["networks"] = [{"mode": "container/bridge"}] if _port_mappings(a) else [{"mode": "host"}]
    hcs = []
    for hc in a["healthChecks"]:
        proto = hc.get("protocol") or "HTTP"
        d = {"protocol": proto, "gracePeriodSeconds": 300, "intervalSeconds": 60, "timeoutSeconds": 20,
             "maxConsecutiveFailures": 3, "delaySeconds": 15, "ipProtocol": "IPv4"}
        if proto in ("HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS"):
            d["path"] = "/"
        if proto != "COMMAND" and "port" not in hc:
            d["portIndex"] = 0
        d.update({k: v for k, v in hc.items() if v is not None})
        hcs.append(d)
    a["healthChecks"] = hcs
    a["readinessChecks"] = [
        {"name": "readinessCheck", "protocol": "HTTP", "path": "/", "portName": "http", "intervalSeconds": 30,
         "timeoutSeconds": 10, "httpStatusCodesForReady": [200], "preserveLastResponse": False,
         **{k: v for k, v in rc.items() if v is not None}}
        for rc in a["readinessChecks"]
    ]
    return a


def parse_app(doc: Any, *, path_id: str | None = None, base: dict | None = None) -> dict:
    """Validate a request body and return the defaulted definition (no version fields).

    `base` is the current definition for `partialUpdate=true`: absent fields keep their value.
    `path_id` (from the URL) wins over a body id, as on Marathon's PUT.
    """
    if not isinstance(doc, dict):
        raise invalid_json([{"path": "/", "errors": ["error.expected.jsobject"]}])
    check_types(doc)
    body = {k: v for k, v in doc.items() if k in KNOWN_FIELDS}  # unknown fields are dropped, as RAML readers do
    if base is not None:
        merged = {k: v for k, v in base.items() if k not in RESPONSE_ONLY}
        if "cmd" in body:
            merged.pop("args", None)
        if "args" in body:
            merged.pop("cmd", None)
        merged.update(body)
        body = merged
    if path_id is not None:
        body["id"] = path_id
    if not body.get("id"):
        raise invalid_json([{"path": "/id", "errors": ["error.path.missing"]}])
    body["id"] = normalize_id(body["id"]) if body["id"].strip("/") else body["id"]
    app = apply_defaults(body)
    problems = semantic_problems(app)
    if problems:
        raise not_valid([{"path": p, "errors": errs} for p, errs in problems.items()])
    return app


def config_equal(a: dict, b: dict) -> bool:
    """True when two definitions differ at most in `instances` (a scale, not a restart)."""
    strip = ("instances", *RESPONSE_ONLY)
    return {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}


def capacity(app: dict) -> tuple[int, int]:
    """(minHealthy, maxCapacity) for a restart, per TaskReplaceActor."""
    n = app["instances"]
    us = app["upgradeStrategy"]
    min_healthy = math.ceil(n * us["minimumHealthCapacity"])
    max_capacity = math.floor(n * (1 + us["maximumOverCapacity"]))
    return min_healthy, max_capacity
