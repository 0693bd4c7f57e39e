"""Decode Marathon's `/v2/apps?embed=apps.tasks` answer into the app dicts the model reads (pure).

This is where `lb render` and the daemon's full resync spend their time: the answer is ~5 MB at
1,000 apps and ~50 MB at 10,000. msgspec decodes it against the TypedDicts below, which name
only the keys lb.model reads; every other key (env, versionInfo, slaveId, ...) is skipped
without building an object, so it is faster than json.loads and the result is a fraction of
the memory (bench/lb_render.py measures stdlib json, orjson and msgspec side by side).
The result is plain dicts, the same ones json.loads would give minus the unread keys. A
document that does not fit these types (a string where Marathon has a list, ...) is decoded
again without types, so lb.model rejects the malformed app alone, as it always did.
"""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec


class _Empty(TypedDict, total=False):
    """A health check: the model only asks whether an app has any."""


class _HealthResult(TypedDict, total=False):
    alive: Any


class _IpAddress(TypedDict, total=False):
    ipAddress: Any


class _Task(TypedDict, total=False):
    id: Any
    state: Any
    host: Any
    ports: Any
    ipAddresses: list[_IpAddress] | None
    healthCheckResults: list[_HealthResult] | None


class _PortMapping(TypedDict, total=False):
    servicePort: Any
    containerPort: Any


class _Docker(TypedDict, total=False):
    network: Any
    portMappings: list[_PortMapping] | None


class _Container(TypedDict, total=False):
    portMappings: list[_PortMapping] | None
    docker: _Docker | None


class _Network(TypedDict, total=False):
    mode: Any


class _PortDefinition(TypedDict, total=False):
    port: Any


class _Readiness(TypedDict, total=False):
    taskId: Any
    ready: Any


class _VersionInfo(TypedDict, total=False):
    lastConfigChangeAt: Any


class _App(TypedDict, total=False):
    id: Any
    instances: Any
    version: Any
    versionInfo: _VersionInfo | None
    labels: Any
    container: _Container | None
    portDefinitions: list[_PortDefinition] | None
    ports: Any
    networks: list[_Network] | None
    healthChecks: list[_Empty] | None
    readinessCheckResults: list[_Readiness] | None
    tasks: list[_Task] | None


class _AppsDocument(TypedDict, total=False):
    apps: list[_App]


_TYPED = msgspec.json.Decoder(_AppsDocument | list[_App])


class NotAppsDocument(ValueError):
    """Valid JSON, but not {"apps": [objects...]} or a bare list of app objects."""


def decode_apps(data: bytes | str) -> list[dict]:
    """The apps of a /v2/apps response ({"apps": [...]} or a bare list).

    Raises ValueError (msgspec.DecodeError) for text that is not JSON, NotAppsDocument when
    the JSON is not a list of app objects.
    """
    try:
        doc = _TYPED.decode(data)
    except msgspec.ValidationError:  # not the shape above: decode it all, the model rejects bad apps one by one
        doc = msgspec.json.decode(data)
    apps = doc.get("apps") if isinstance(doc, dict) else doc
    if not isinstance(apps, list) or not all(isinstance(a, dict) for a in apps):
        raise NotAppsDocument("expected a list of app objects")
    return apps
