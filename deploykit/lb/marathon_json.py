"""Decode Marathon's `/v2/apps?embed=apps.tasks` answer into the app documents the model reads (pure).

This is where `lb render` and the daemon's full resync spend their time and memory: the answer
is ~5 MB at 1,000 apps and ~50 MB at 10,000. msgspec decodes it straight into the structs below,
which name only the fields lb.model reads; every other key (env, versionInfo.lastScalingAt,
slaveId, ...) is skipped without building an object. The structs are not tracked by the cyclic GC
(they hold no cycles) and arrays decode as tuples, which the GC stops tracking after one pass, so a
big snapshot adds little for collections to walk (at 10,000 apps: 173k tracked objects instead of
363k with lists, and a full collection during the next build ~0.2 s instead of ~0.35 s). Each is a read-only
Mapping over its fields (`app.get("tasks")`), so lb.model reads them exactly as the plain dicts that
`GET /v2/apps/{id}` and tests give it. A document that does not fit these types (a string where
Marathon has a list, ...) is decoded again into plain dicts, so lb.model rejects the malformed app
alone, as before. bench/lb_render.py measures this against the stdlib json and orjson.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgspec


class _Document(msgspec.Struct, gc=False):
    """A read-only Mapping over the struct's fields (a field Marathon left out reads as None)."""

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except (AttributeError, TypeError):
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.__struct_fields__)

    def __len__(self) -> int:
        return len(self.__struct_fields__)


Mapping.register(_Document)


class _HealthCheck(_Document, gc=False):
    """What marathon-lb derives the HAProxy-side check from (lb.appstate.marathon_check)."""

    protocol: Any = None
    path: Any = None
    portIndex: Any = None
    port: Any = None
    intervalSeconds: Any = None
    timeoutSeconds: Any = None
    maxConsecutiveFailures: Any = None


class _HealthResult(_Document, gc=False):
    alive: Any = None


class _IpAddress(_Document, gc=False):
    ipAddress: Any = None


class _Task(_Document, gc=False):
    id: Any = None
    state: Any = None
    host: Any = None
    ports: tuple[Any, ...] | None = None
    ipAddresses: tuple[_IpAddress, ...] | None = None
    healthCheckResults: tuple[_HealthResult, ...] | None = None


class _PortMapping(_Document, gc=False):
    servicePort: Any = None
    containerPort: Any = None


class _Docker(_Document, gc=False):
    network: Any = None
    portMappings: tuple[_PortMapping, ...] | None = None


class _Container(_Document, gc=False):
    portMappings: tuple[_PortMapping, ...] | None = None
    docker: _Docker | None = None


class _Network(_Document, gc=False):
    mode: Any = None


class _PortDefinition(_Document, gc=False):
    port: Any = None


class _Readiness(_Document, gc=False):
    taskId: Any = None
    ready: Any = None


class _VersionInfo(_Document, gc=False):
    lastConfigChangeAt: Any = None


class App(_Document, gc=False):
    """The fields of one Marathon app that routing depends on."""

    id: Any = None
    instances: Any = None
    version: Any = None
    versionInfo: _VersionInfo | None = None
    labels: Any = None
    container: _Container | None = None
    portDefinitions: tuple[_PortDefinition, ...] | None = None
    ports: tuple[Any, ...] | None = None
    networks: tuple[_Network, ...] | None = None
    healthChecks: tuple[_HealthCheck, ...] | None = None
    readinessCheckResults: tuple[_Readiness, ...] | None = None
    tasks: tuple[_Task, ...] | None = None


class _AppsDocument(msgspec.Struct, gc=False):
    apps: tuple[App, ...]


_TYPED = msgspec.json.Decoder(_AppsDocument | tuple[App, ...])


class NotAppsDocument(ValueError):
    """Valid JSON, but not {"apps": [objects...]} or a bare list of app objects."""


def decode_apps(data: bytes | str) -> Sequence[Mapping[str, Any]]:
    """The apps of a /v2/apps response ({"apps": [...]} or a bare list).

    Raises ValueError (msgspec.DecodeError) for text that is not JSON, NotAppsDocument when
    the JSON is not a list of app objects.
    """
    try:
        doc = _TYPED.decode(data)
        return doc.apps if isinstance(doc, _AppsDocument) else doc
    except msgspec.ValidationError:  # not the shape above: plain dicts, the model rejects bad apps one by one
        doc = msgspec.json.decode(data)
    apps = doc.get("apps") if isinstance(doc, dict) else doc
    if not isinstance(apps, list) or not all(isinstance(a, dict) for a in apps):
        raise NotAppsDocument("expected a list of app objects")
    return apps
