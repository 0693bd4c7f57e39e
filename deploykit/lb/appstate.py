"""One Marathon app document -> AppState: its routes and routable tasks (pure, no I/O).

This is the per-app half of lb.model, and the hot path of a full sync: every task of every
app passes through `_task_candidates`. A malformed document rejects that app only. What
apps contribute is then combined by lb.model (conflicts via lb.claims, slots, frontends).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import NamedTuple

from deploykit.labels import URL_PATH
from deploykit.lb.labels import (
    DEFAULT_CHECK_RISE,
    AppLabels,
    CheckSpec,
    Ignored,
    LabelError,
    PortLabels,
    Rejected,
    parse_labels,
)
from deploykit.lb.settings import LbSettings

_APP_ID = re.compile(r"(?:/[a-z0-9](?:[a-z0-9.-]{0,126}[a-z0-9])?)+\Z")
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\Z")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\Z")
_CONTAINER_NETWORK_MODES = frozenset({"container", "USER"})


class Server(NamedTuple):
    """A task in a backend slot. `draining`: Marathon is killing it; no new connections."""

    task_id: str
    address: str
    port: int
    draining: bool = False
    check_port: int = 0  # HAPROXY_{n}_HEALTHCHECK_PORT_INDEX: the task's port checks go to (0: `port`)


class PortRoute(NamedTuple):
    """One port of an app that HAProxy routes: its backend, its service-port frontend (if any), and whether
    it is also routed by vhost/path on the shared http(s) frontends.

    For a vhost/path route the service port is secondary (marathon-lb binds it too, for east-west
    traffic): if another app holds it or this host cannot bind it, only that frontend is left out.
    """

    backend: str
    index: int
    mode: str
    service_port: int | None
    labels: PortLabels
    check: CheckSpec = CheckSpec()
    http_routed: bool = False  # vhost or path rules on http_in / https_in
    bind_address: str = ""  # of the service-port frontend


_MARATHON_HTTP = {"HTTP": False, "MESOS_HTTP": False, "HTTPS": True, "MESOS_HTTPS": True}
_MARATHON_TCP = frozenset({"TCP", "MESOS_TCP"})


def marathon_check(health_checks: object, index: int, mode: str) -> CheckSpec | None:
    """The HAProxy check marathon-lb derives from the app's first Marathon health check of port `index`.

    HTTP(S) in http mode: `option httpchk GET path`, `http-check expect status 200-399` (what Marathon
    counts as healthy), `inter` = intervalSeconds, `fall` = maxConsecutiveFailures + 1 (marathon-lb's
    rule), `timeout check` = timeoutSeconds. TCP, or any check of a tcp-mode port: a connect check with
    that inter/fall. COMMAND checks, checks on a fixed `port`, or none: None (the defaults apply).
    """
    if not health_checks:
        return None
    for hc in health_checks:  # type: ignore[attr-defined]
        if hc.get("port") or (hc.get("portIndex") or 0) != index:
            continue
        protocol = hc.get("protocol") or "HTTP"
        if protocol not in _MARATHON_HTTP and protocol not in _MARATHON_TCP:
            continue
        interval = hc.get("intervalSeconds")
        failures = hc.get("maxConsecutiveFailures")
        timeout = hc.get("timeoutSeconds")
        interval_ms = int(interval * 1000) if type(interval) in (int, float) and 0 < interval <= 3600 else 60_000
        fall = failures + 1 if type(failures) is int and 0 <= failures < 100 else 4
        timeout_ms = int(timeout * 1000) if type(timeout) in (int, float) and 0 < timeout <= 3600 else 20_000
        if mode == "http" and protocol in _MARATHON_HTTP:
            path = hc.get("path") or "/"
            if not isinstance(path, str) or not URL_PATH.match(path):
                path = "/"
            return CheckSpec(path, interval_ms, DEFAULT_CHECK_RISE, fall, "200-399", _MARATHON_HTTP[protocol],
                             timeout_ms)
        return CheckSpec(None, interval_ms, DEFAULT_CHECK_RISE, fall, timeout_ms=timeout_ms)
    return None


class AppState(NamedTuple):
    """What one app contributes, before conflicts between apps are resolved (kept for incremental updates)."""

    app_id: str
    structure: tuple  # labels + ports: when equal, only servers can have changed
    routes: tuple[PortRoute, ...]
    candidates: tuple[tuple[Server, ...], ...]  # per route: routable tasks, sorted by task id
    since: str = ""  # versionInfo.lastConfigChangeAt: how old its claim on its routes is (lb.claims)
    instances: int = 0  # what Marathon is asked to run: an app that wants tasks and has no server is starved


def _service_ports(app: Mapping) -> tuple[list[int | None], list[int | None] | None]:
    """(service ports, container ports or None). Marathon 1.5+ shape, legacy docker shape, or `ports`."""
    container = app.get("container") or {}
    mappings = container.get("portMappings")
    if mappings is None:
        mappings = (container.get("docker") or {}).get("portMappings")
    if mappings:
        return [m.get("servicePort") for m in mappings], [m.get("containerPort") for m in mappings]
    definitions = app.get("portDefinitions")
    if definitions:
        return [d.get("port") for d in definitions], None
    return list(app.get("ports") or []), None


def _uses_container_ip(app: Mapping) -> bool:
    networks = app.get("networks")
    if networks:
        return networks[0].get("mode") in _CONTAINER_NETWORK_MODES
    docker = (app.get("container") or {}).get("docker") or {}
    return docker.get("network") == "USER"


@functools.lru_cache(maxsize=8192)
def _address_kind(address: str) -> int:
    """IPV4, IPV6, NAME or 0 (unusable). Agent host names repeat across tasks, so this is memoised (bounded)."""
    if _IPV4.match(address) is not None:
        return IPV4
    if ":" in address:
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return 0
        return IPV6
    return NAME if _HOST.match(address) is not None else 0


IPV4, IPV6, NAME = 1, 3, 2
Resolver = Callable[[str], "str | None"]


def _candidates(
    app: Mapping,
    indexes: list[int],
    container_ports: list[int | None] | None,  # given: tasks are reached on their container IP
    last_known: Mapping[str, bool],
    health_out: dict[str, bool],
    resolve: Resolver | None = None,
) -> list[list[Server]]:
    """Routable tasks per port index: running (or killing, to drain), healthy per Marathon, ready."""
    out: list[list[Server]] = [[] for _ in indexes]
    tasks = app.get("tasks")
    if not tasks or not indexes:
        return out
    has_health = bool(app.get("healthChecks"))
    not_ready = None
    readiness = app.get("readinessCheckResults")
    if readiness:
        not_ready = {r.get("taskId") for r in readiness if not r.get("ready")}
    return _task_candidates(tasks, indexes, container_ports, has_health, not_ready, last_known, health_out, out,
                            resolve)


def _task_candidates(tasks: list, indexes: list[int], container_ports: list[int | None] | None, has_health: bool,
                     not_ready: set | None, last_known: Mapping[str, bool], health_out: dict[str, bool],
                     out: list[list[Server]], resolve: Resolver | None) -> list[list[Server]]:
    # The hot loop of a full sync (every task of every app): locals only, no helper calls per task.
    use_ip = container_ports is not None
    single = len(indexes) == 1
    first_index = indexes[0]
    first = out[0]
    kind_of = _address_kind
    new_server = tuple.__new__  # Server(...) without the Python-level __new__ of a NamedTuple: one frame less per task
    for task in tasks:
        state = task.get("state")
        if state == "TASK_RUNNING":
            draining = False
        elif state == "TASK_KILLING":
            draining = True
        else:
            continue
        task_id = task.get("id")
        if type(task_id) is not str:
            continue
        if has_health:
            results = task.get("healthCheckResults")
            if results:
                if len(results) == 1:
                    alive = results[0].get("alive") is True
                else:
                    alive = all(r.get("alive") is True for r in results)
                health_out[task_id] = alive
            else:  # unknown, e.g. just after a Marathon leader failover: trust what we saw last
                alive = last_known.get(task_id)
                if alive is None:
                    continue
                health_out[task_id] = alive
            if not alive and not draining:
                continue
        if not_ready and task_id in not_ready and not draining:
            continue
        if use_ip:
            ips = task.get("ipAddresses")
            address = ips[0].get("ipAddress") if ips else None
            ports = container_ports
        else:
            address = task.get("host")
            ports = task.get("ports")
            if not ports:
                continue
        if type(address) is not str:
            continue
        kind = kind_of(address)
        if kind != IPV4 and kind != IPV6:
            if not kind:
                continue
            if resolve is not None:
                address = resolve(address)
                if address is None or kind_of(address) not in (IPV4, IPV6):
                    continue
        if single:
            port = ports[first_index] if first_index < len(ports) else None
            if type(port) is int and 0 < port < 65536:
                first.append(new_server(Server, (task_id, address, port, draining, 0)))
            continue
        for k, index in enumerate(indexes):
            port = ports[index] if index < len(ports) else None
            if type(port) is int and 0 < port < 65536:
                out[k].append(new_server(Server, (task_id, address, port, draining, 0)))
    for lst in out:
        if len(lst) > 1:
            lst.sort()  # by task id: the first field, unique per app (tuple order, no key function)
    return out


def _has_port_group(labels: Mapping) -> bool:
    return any(type(k) is str and k.startswith("HAPROXY_") and k.endswith("_GROUP") for k in labels)


def _in_groups(groups: tuple[str, ...], settings: LbSettings) -> bool:
    return bool(groups) and (not settings.groups or any(g in settings.groups for g in groups))


def _with_check_ports(app: Mapping, routes: list[PortRoute], cands: list[list[Server]],
                      container_ports: list[int | None] | None) -> list[list[Server]]:
    """HAPROXY_{n}_HEALTHCHECK_PORT_INDEX: each server is checked on the task's port of that index."""
    ports_of = {t.get("id"): (container_ports if container_ports is not None else t.get("ports") or [])
                for t in app.get("tasks") or ()}
    out = []
    for route, servers in zip(routes, cands, strict=True):
        ci = route.labels.healthcheck_port_index
        if ci is None:
            out.append(servers)
            continue
        new = []
        for srv in servers:
            ports = ports_of.get(srv.task_id) or []
            cp = ports[ci] if ci < len(ports) else None
            new.append(srv._replace(check_port=cp) if type(cp) is int and 0 < cp < 65536 else srv)
        out.append(new)
    return out


def _backend_name(app_id: str, index: int) -> str:
    return f"{app_id[1:].replace('/', '_')}_{index}"


def parse_app(
    app: Mapping, settings: LbSettings, last_known: Mapping[str, bool], health_out: dict[str, bool],
    resolve: Resolver | None = None,
) -> tuple[AppState | None, Rejected | None, tuple[Ignored, ...]]:
    """One app -> its routes and candidates, or a rejection. None, None: not ours (no group / other group).

    A malformed app document (a list where Marathon has an object, ...) rejects that app, not the sync.
    """
    if not isinstance(app, Mapping):
        return None, Rejected(repr(app)[:60], "app is not a JSON object"), ()
    try:
        return _parse_app_doc(app, settings, last_known, health_out, resolve)
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
        health_out.clear()
        return None, Rejected(str(app.get("id")), f"malformed app document ({type(exc).__name__}: {exc})"), ()


def _parse_app_doc(
    app: Mapping, settings: LbSettings, last_known: Mapping[str, bool], health_out: dict[str, bool],
    resolve: Resolver | None,
) -> tuple[AppState | None, Rejected | None, tuple[Ignored, ...]]:
    app_id = app.get("id")
    if not isinstance(app_id, str):
        return None, Rejected(str(app_id), "app has no id"), ()
    raw_labels = app.get("labels")
    if not raw_labels or ("HAPROXY_GROUP" not in raw_labels and not _has_port_group(raw_labels)):
        return None, None, ()
    try:
        labels: AppLabels = parse_labels(raw_labels)
    except LabelError as exc:
        return None, Rejected(app_id, str(exc)), ()
    if not any(_in_groups(g, settings) for g in (labels.groups, *(p.groups for p in labels.ports.values()))):
        return None, None, ()  # not in a group this LB serves
    ignored = [Ignored(app_id, label, reason) for label, reason in labels.ignored]
    if not _APP_ID.match(app_id):
        return None, Rejected(app_id, "app id is not a valid Marathon path id"), tuple(ignored)
    service_ports, container_ports = _service_ports(app)
    if not service_ports:
        return None, Rejected(app_id, "app has no ports to route"), tuple(ignored)
    for index in labels.ports:
        if index >= len(service_ports):
            ignored.append(Ignored(app_id, f"HAPROXY_{index}_*", f"app has no port index {index}"))
    routes = []
    # Labels on some ports route those ports only (deploykit labels the one port app.yaml routes; an
    # admin or metrics port must not appear on the load balancer). Only group labels: every port, as
    # marathon-lb does.
    labelled = {i for i, p in labels.ports.items() if p._replace(groups=()) != PortLabels(index=i)}
    disabled = grouped = False
    health_checks = app.get("healthChecks")
    for index, service_port in enumerate(service_ports):
        if labelled and index not in labelled:
            continue
        port_labels = labels.for_port(index)
        if not _in_groups(port_labels.groups or labels.groups, settings):
            continue  # HAPROXY_{n}_GROUP (else HAPROXY_GROUP) names no group this LB serves
        grouped = True
        if not port_labels.enabled:
            disabled = True
            continue
        mode = port_labels.mode or ("http" if port_labels.vhosts or port_labels.path else "tcp")
        if mode == "tcp" and (port_labels.vhosts or port_labels.path):
            return None, Rejected(app_id, f"port {index}: vhost/path routing needs mode http"), tuple(ignored)
        bound = port_labels.port or service_port or 0
        if type(bound) is not int or not 0 <= bound < 65536:
            return None, Rejected(app_id, f"port {index}: service port {bound!r} is not a port"), tuple(ignored)
        http_routed = mode == "http" and bool(port_labels.vhosts or port_labels.path)
        if not http_routed and not bound:
            if index not in labels.ports:  # an unlabelled extra port without a service port: just not routed
                ignored.append(Ignored(app_id, f"port {index}", "no service port and no routing labels: not routed"))
                continue
            return None, Rejected(
                app_id, f"port {index}: no service port to bind (set HAPROXY_{index}_PORT or a vhost)"
            ), tuple(ignored)
        # marathon-lb binds every routed service port, vhost apps' too (east-west traffic: lb-host:10001);
        # `service_ports: false` keeps vhost/path apps on the http(s) frontends only (edge-only LBs)
        frontend_port = bound if bound and (not http_routed or settings.service_ports) else None
        check = port_labels.check
        if check is None:
            hc_index = port_labels.healthcheck_port_index
            check = marathon_check(health_checks, index if hc_index is None else hc_index, mode) or CheckSpec()
        bind = settings.bind_address if port_labels.bind_address is None else port_labels.bind_address
        routes.append(PortRoute(_backend_name(app_id, index), index, mode, frontend_port, port_labels, check,
                                http_routed, bind))
    if not routes:
        if disabled or not grouped:  # switched off on purpose, or no port is in this LB's groups: not an error
            return None, None, tuple(ignored)
        return None, Rejected(app_id, "no port can be routed (no service ports)"), tuple(ignored)
    indexes = [r.index for r in routes]
    use_ip = container_ports is not None and _uses_container_ip(app)
    cands = _candidates(app, indexes, container_ports if use_ip else None, last_known, health_out, resolve)
    if any(r.labels.healthcheck_port_index is not None for r in routes):
        cands = _with_check_ports(app, routes, cands, container_ports if use_ip else None)
    routes_t = tuple(routes)
    since = (app.get("versionInfo") or {}).get("lastConfigChangeAt") or app.get("version") or ""
    instances = app.get("instances")
    state = AppState(app_id, (labels.groups, routes_t, use_ip), routes_t, tuple(map(tuple, cands)),
                     since if isinstance(since, str) else "", instances if type(instances) is int else 0)
    return state, None, tuple(ignored)
