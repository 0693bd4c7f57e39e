"""Marathon apps -> RoutingModel: what HAProxy should route, computed from full state (pure, fast).

The model is the single source of truth for both the rendered haproxy.cfg and the Runtime
API changes: backends have a fixed number of server slots (with headroom) and a task keeps
its slot across updates, so scaling and task replacement become "set server" commands
instead of reloads. Models are treated as immutable: updates build new objects and share
unchanged backends, so `changes.diff` can skip them by identity. NamedTuples, not pydantic models:
this runs on every Marathon event for thousands of apps.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from deploykit.lb import claims
from deploykit.lb.labels import AppLabels, CheckSpec, Ignored, LabelError, PortLabels, Rejected, parse_labels
from deploykit.lb.settings import LbSettings

_NO_CLAIMS: Mapping[tuple, str] = MappingProxyType({})

__all__ = [
    "Backend",
    "HttpRoute",
    "PortFrontend",
    "RoutingModel",
    "Server",
    "apply_app",
    "build_model",
    "remove_app",
    "slot_count",
]


# The model

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


class Backend(NamedTuple):
    """One routed port of one app. `slots[i]` is HAProxy server `s{i+1}`; None is a spare slot."""

    name: str
    app_id: str
    port_index: int
    mode: str
    balance: str
    sticky: bool
    check: CheckSpec
    slots: tuple[Server | None, ...]

    @property
    def structure(self) -> tuple:
        """Everything that needs a reload to change (servers in slots do not)."""
        return (self.mode, self.balance, self.sticky, self.check, len(self.slots))

    @property
    def servers(self) -> list[tuple[str, Server]]:
        """(server name, server) for every filled slot."""
        return [(f"s{i + 1}", s) for i, s in enumerate(self.slots) if s is not None]


class HttpRoute(NamedTuple):
    """A rule of the shared http frontend: Host in `vhosts` (any host if empty) and path prefix -> backend.

    A route's vhosts are all exact names or all wildcards (`*.example.com`, any name under
    example.com); an app naming both gets one route of each, and exact routes come first, so
    `api.example.com` of one app wins over `*.example.com` of another, whatever their ids.
    """

    backend: str
    vhosts: tuple[str, ...]
    path: str | None
    redirect_to_https: bool = False

    @property
    def wildcard(self) -> bool:
        """True when the vhosts are `*.` names, matched by suffix (`host_match` gives the suffixes)."""
        return bool(self.vhosts) and self.vhosts[0].startswith("*.")

    @property
    def host_match(self) -> tuple[str, ...]:
        """What HAProxy compares the Host header with: the names, or for wildcards the suffixes (".example.com")."""
        return tuple(v[1:] for v in self.vhosts) if self.wildcard else self.vhosts


class PortFrontend(NamedTuple):
    """A frontend bound on an app's service port (tcp apps, and http apps without vhost)."""

    name: str
    port: int
    mode: str
    backend: str


class _PortRoute(NamedTuple):
    backend: str
    index: int
    mode: str
    service_port: int | None
    labels: PortLabels


class AppState(NamedTuple):
    """What one app contributes, before conflicts between apps are resolved (kept for incremental updates)."""

    app_id: str
    structure: tuple  # labels + ports: when equal, only servers can have changed
    routes: tuple[_PortRoute, ...]
    candidates: tuple[tuple[Server, ...], ...]  # per route: routable tasks, sorted by task id
    since: str = ""  # versionInfo.lastConfigChangeAt: how old its claim on its routes is (lb.claims)
    instances: int = 0  # what Marathon is asked to run: an app that wants tasks and has no server is starved


class RoutingModel(NamedTuple):
    """Everything haproxy.cfg and the Runtime API need. Immutable; updates share unchanged parts."""

    settings: LbSettings
    backends: dict[str, Backend]  # sorted by name
    http_routes: tuple[HttpRoute, ...]  # in rule order
    port_frontends: tuple[PortFrontend, ...]  # sorted by port
    rejected: tuple[Rejected, ...]
    ignored: tuple[Ignored, ...]
    app_health: dict[str, dict[str, bool]]  # app id -> task id -> last known health
    apps: dict[str, AppState]
    label_rejects: dict[str, Rejected]
    app_ignored: dict[str, tuple[Ignored, ...]]
    owners: dict[str, tuple[str, ...]]  # app id -> its backend names
    server_count: int  # servers routed (not draining); kept up to date by every update, metrics read it often
    # host name -> IPv4/IPv6 address, injected by the daemon (the Runtime API's `set server addr` takes addresses only)
    resolve: Resolver | None = None
    # every granted port / host+path -> the app holding it; the next model keeps them with their holders
    claims: Mapping[tuple, str] = _NO_CLAIMS

    @property
    def health(self) -> dict[str, bool]:
        """Last known Marathon health per task id, flattened (what `last_known_health` takes)."""
        return {task: alive for per_app in self.app_health.values() for task, alive in per_app.items()}


def _routed(backend: Backend) -> int:
    """Servers of a backend that take traffic (filled slots, not draining)."""
    return sum(1 for s in backend.slots if s is not None and not s.draining)


def slot_count(needed: int, previous: int, settings: LbSettings) -> int:
    """Slots for a backend: at least min_slots, else a power of two >= tasks x headroom.

    The old size is kept while the tasks fit and it is not 4x too big, so scaling back and
    forth stays within the slots (no reload) and sizes do not flap.
    """
    want = math.ceil(needed * settings.headroom)
    size = max(settings.min_slots, 1 << max(0, (want - 1).bit_length()))
    if previous and needed <= previous <= size * 4:
        return previous
    return size


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
        import ipaddress  # only for addresses that look like IPv6

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
                first.append(new_server(Server, (task_id, address, port, draining)))
            continue
        for k, index in enumerate(indexes):
            port = ports[index] if index < len(ports) else None
            if type(port) is int and 0 < port < 65536:
                out[k].append(new_server(Server, (task_id, address, port, draining)))
    for lst in out:
        if len(lst) > 1:
            lst.sort()  # by task id: the first field, unique per app (tuple order, no key function)
    return out


def _backend_name(app_id: str, index: int) -> str:
    return f"{app_id[1:].replace('/', '_')}_{index}"


def _parse_app(
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
    if not raw_labels or "HAPROXY_GROUP" not in raw_labels:
        return None, None, ()
    try:
        labels: AppLabels = parse_labels(raw_labels)
    except LabelError as exc:
        return None, Rejected(app_id, str(exc)), ()
    if not labels.groups:
        return None, None, ()
    if settings.groups and not any(g in settings.groups for g in labels.groups):
        return None, None, ()
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
    # admin or metrics port must not appear on the load balancer). Only a group label: every port, as
    # marathon-lb does.
    labelled = labels.ports
    disabled = False
    for index, service_port in enumerate(service_ports):
        if labelled and index not in labelled:
            continue
        port_labels = labels.for_port(index)
        if not port_labels.enabled:
            disabled = True
            continue
        mode = port_labels.mode or ("http" if port_labels.vhosts or port_labels.path else "tcp")
        if mode == "tcp" and (port_labels.vhosts or port_labels.path):
            return None, Rejected(app_id, f"port {index}: vhost/path routing needs mode http"), tuple(ignored)
        bound = port_labels.port or service_port or 0
        if type(bound) is not int or not 0 <= bound < 65536:
            return None, Rejected(app_id, f"port {index}: service port {bound!r} is not a port"), tuple(ignored)
        needs_bind = not (mode == "http" and port_labels.vhosts) and not (mode == "http" and port_labels.path)
        if needs_bind and not bound:
            if index not in labels.ports:  # an unlabelled extra port without a service port: just not routed
                ignored.append(Ignored(app_id, f"port {index}", "no service port and no routing labels: not routed"))
                continue
            return None, Rejected(
                app_id, f"port {index}: no service port to bind (set HAPROXY_{index}_PORT or a vhost)"
            ), tuple(ignored)
        routes.append(_PortRoute(_backend_name(app_id, index), index, mode, bound if needs_bind else None, port_labels))
    if not routes:
        if disabled:  # switched off on purpose (HAPROXY_{n}_ENABLED=false): not an error
            return None, None, tuple(ignored)
        return None, Rejected(app_id, "no port can be routed (no service ports)"), tuple(ignored)
    indexes = [r.index for r in routes]
    use_ip = container_ports is not None and _uses_container_ip(app)
    cands = _candidates(app, indexes, container_ports if use_ip else None, last_known, health_out, resolve)
    routes_t = tuple(routes)
    since = (app.get("versionInfo") or {}).get("lastConfigChangeAt") or app.get("version") or ""
    instances = app.get("instances")
    state = AppState(app_id, (labels.groups, routes_t, use_ip), routes_t, tuple(map(tuple, cands)),
                     since if isinstance(since, str) else "", instances if type(instances) is int else 0)
    return state, None, tuple(ignored)


def _fill_slots(name: str, app_id: str, route: _PortRoute, cands: tuple[Server, ...],
                prev: Backend | None, settings: LbSettings) -> Backend:
    """Put candidates in slots: a task keeps its previous slot; new tasks take the lowest free ones."""
    labels = route.labels
    if prev is None:  # first layout (a cold build): tasks in task-id order, no draining task has a slot yet
        live = [c for c in cands if not c.draining]
        size = slot_count(len(live), 0, settings)
        live.extend([None] * (size - len(live)))  # type: ignore[list-item]
        return Backend(name, app_id, route.index, route.mode, labels.balance, labels.sticky, labels.check,
                       tuple(live))
    prev_slots = prev.slots
    prev_pos = {s.task_id: i for i, s in enumerate(prev_slots) if s is not None}
    # a draining task is only worth a slot if it already has one (it is on its way out)
    live = [c for c in cands if not c.draining or c.task_id in prev_pos]
    size = slot_count(len(live), len(prev_slots), settings)
    slots: list[Server | None] = [None] * size
    pending = []
    for c in live:  # candidates are Server objects already: no copies
        i = prev_pos.get(c.task_id)
        if i is not None and i < size:
            slots[i] = c
        elif not c.draining:
            pending.append(c)
    if pending:
        free = [i for i, s in enumerate(slots) if s is None]
        for c, i in zip(pending, free, strict=False):
            slots[i] = c
    new = Backend(name, app_id, route.index, route.mode, labels.balance, labels.sticky, labels.check, tuple(slots))
    if prev is not None and prev == new:
        return prev  # share unchanged backends so diff can skip them by identity
    return new


def _route_sort_key(route: HttpRoute) -> tuple:
    rank = 2 if not route.vhosts else 1 if route.wildcard else 0  # exact names, then wildcards, then any host
    return (rank, -len(route.path or ""), route.vhosts, route.path or "", route.backend)


def _http_routes(route: _PortRoute) -> list[HttpRoute]:
    """The frontend rules of one routed port: one for exact vhosts, one for wildcards (see HttpRoute)."""
    labels = route.labels
    exact = tuple(v for v in labels.vhosts if not v.startswith("*."))
    wild = tuple(v for v in labels.vhosts if v.startswith("*."))
    groups = [g for g in (exact, wild) if g] or [()]
    return [HttpRoute(route.backend, hosts, labels.path, labels.redirect_to_https) for hosts in groups]


def _assemble(
    settings: LbSettings,
    apps: dict[str, AppState],
    label_rejects: dict[str, Rejected],
    app_ignored: dict[str, tuple[Ignored, ...]],
    app_health: dict[str, dict[str, bool]],
    prev: RoutingModel | None,
    resolve: Resolver | None,
    initial_claims: Mapping[tuple, str] | None = None,
) -> RoutingModel:
    """Resolve conflicts between apps (the holder keeps a port/vhost, lb.claims) and lay out servers."""
    prev_backends = prev.backends if prev is not None else {}
    backends: dict[str, Backend] = {}
    http_routes: list[HttpRoute] = []
    port_frontends: list[PortFrontend] = []
    owners: dict[str, tuple[str, ...]] = {}
    holders = initial_claims if initial_claims is not None else (prev.claims if prev is not None else _NO_CLAIMS)
    resolution = claims.resolve(apps, holders, {("port", settings.http_port): "the http frontend"})
    conflicts: list[Rejected] = resolution.conflicts
    for app_id in sorted(resolution.winners):
        state = apps[app_id]
        names = []
        for route, cands in zip(state.routes, state.candidates, strict=True):
            backends[route.backend] = _fill_slots(
                route.backend, app_id, route, cands, prev_backends.get(route.backend), settings
            )
            names.append(route.backend)
            if route.service_port is not None:
                port_frontends.append(PortFrontend(f"port_{route.service_port}", route.service_port, route.mode,
                                                   route.backend))
            else:
                http_routes.extend(_http_routes(route))
        owners[app_id] = tuple(names)
    rejected = sorted([*label_rejects.values(), *conflicts], key=lambda r: r.app_id)
    ignored = [i for app_id in sorted(app_ignored) for i in app_ignored[app_id]]
    return RoutingModel(
        settings=settings,
        backends=dict(sorted(backends.items())),
        server_count=sum(map(_routed, backends.values())),
        http_routes=tuple(sorted(http_routes, key=_route_sort_key)),
        port_frontends=tuple(sorted(port_frontends, key=lambda f: f.port)),
        rejected=tuple(rejected),
        ignored=tuple(ignored),
        app_health=app_health,
        apps=apps,
        label_rejects=label_rejects,
        app_ignored=app_ignored,
        owners=owners,
        resolve=resolve,
        claims=resolution.claims,
    )


def build_model(
    apps: Iterable[Mapping[str, Any]],
    settings: LbSettings,
    *,
    prev: RoutingModel | None = None,
    last_known_health: Mapping[str, bool] | None = None,
    resolve: Resolver | None = None,
    holders: Mapping[tuple, str] | None = None,
) -> RoutingModel:
    """Full state -> model. `prev` keeps tasks in their slots and supplies the last known health.

    `apps` is the "apps" list of a /v2/apps?embed=apps.tasks response. The result remembers
    the health seen for current tasks (`app_health`); pass it as `prev` (or its `health` as
    `last_known_health`) next time so a Marathon leader failover, which forgets health
    results, does not empty the backends. `resolve` (default: prev's) maps agent host names to
    IPv4 addresses so servers can move through the Runtime API; without it names are kept as-is.
    `holders` (default: prev's claims) says which app holds each port and host+path, e.g. routing the
    daemon saved before a restart: a holder keeps its routes against any newcomer (lb.claims).
    """
    if resolve is None and prev is not None:
        resolve = prev.resolve
    prev_health = prev.app_health if prev is not None and last_known_health is None else None
    flat = last_known_health if last_known_health is not None else {}
    states: dict[str, AppState] = {}
    label_rejects: dict[str, Rejected] = {}
    app_ignored: dict[str, tuple[Ignored, ...]] = {}
    app_health: dict[str, dict[str, bool]] = {}
    for app in apps:
        seen: dict[str, bool] = {}
        app_id = app.get("id") if isinstance(app, Mapping) else None
        known = flat if prev_health is None or not isinstance(app_id, str) else prev_health.get(app_id, flat)
        state, rejected, ignored = _parse_app(app, settings, known, seen, resolve)
        if state is not None:
            states[state.app_id] = state
        if rejected is not None:
            label_rejects[rejected.app_id] = rejected
        if ignored:
            app_ignored[ignored[0].app_id] = ignored
        if seen and isinstance(app_id, str):
            app_health[app_id] = seen
    if holders is None:
        holders = prev.claims if prev is not None else _NO_CLAIMS
    return _assemble(settings, states, label_rejects, app_ignored, app_health, prev, resolve, holders)


def apply_app(model: RoutingModel, app: Mapping[str, Any]) -> tuple[RoutingModel, list[str]]:
    """One app's new state (e.g. GET /v2/apps/{id}?embed=app.tasks) -> (new model, changed backend names).

    O(that app) when only its tasks changed; when its routing (labels, ports) changed it
    re-resolves conflicts across apps (cheap, no JSON or labels re-parsed) since a reload is due anyway.
    """
    app_id = app.get("id") if isinstance(app, Mapping) else None
    if not isinstance(app_id, str):
        return model, []  # nothing to key it by; a full sync reports it
    old_state = model.apps.get(app_id)
    seen: dict[str, bool] = {}
    state, rejected, ignored = _parse_app(app, model.settings, model.app_health.get(app_id, {}), seen, model.resolve)
    health = dict(model.app_health)
    health.pop(app_id, None)
    if seen:
        health[app_id] = seen
    if (
        state is not None
        and old_state is not None
        and state.structure == old_state.structure
        and app_id in model.owners
        and app_id not in model.label_rejects
    ):
        backends = dict(model.backends)
        changed = []
        servers = model.server_count
        for route, cands in zip(state.routes, state.candidates, strict=True):
            prev = backends[route.backend]
            new = _fill_slots(route.backend, app_id, route, cands, prev, model.settings)
            if new is not prev:
                backends[route.backend] = new
                changed.append(route.backend)
                servers += _routed(new) - _routed(prev)
        apps = dict(model.apps)
        apps[app_id] = state
        new_model = RoutingModel(
            settings=model.settings, backends=backends, http_routes=model.http_routes,
            port_frontends=model.port_frontends, rejected=model.rejected, ignored=model.ignored, app_health=health,
            apps=apps, label_rejects=model.label_rejects, app_ignored=model.app_ignored, owners=model.owners,
            server_count=servers, resolve=model.resolve, claims=model.claims,
        )
        return new_model, changed
    return _replace_app(model, app_id, state, rejected, ignored, health)


def remove_app(model: RoutingModel, app_id: str) -> tuple[RoutingModel, list[str]]:
    """The app is gone from Marathon -> (new model, changed backend names)."""
    health = dict(model.app_health)
    health.pop(app_id, None)
    return _replace_app(model, app_id, None, None, (), health)


def _replace_app(model: RoutingModel, app_id: str, state: AppState | None, rejected: Rejected | None,
                 ignored: tuple[Ignored, ...], health: dict[str, dict[str, bool]]) -> tuple[RoutingModel, list[str]]:
    apps = dict(model.apps)
    label_rejects = dict(model.label_rejects)
    app_ignored = dict(model.app_ignored)
    apps.pop(app_id, None)
    label_rejects.pop(app_id, None)
    app_ignored.pop(app_id, None)
    if state is not None:
        apps[app_id] = state
    if rejected is not None:
        label_rejects[app_id] = rejected
    if ignored:
        app_ignored[app_id] = ignored
    new_model = _assemble(model.settings, apps, label_rejects, app_ignored, health, model, model.resolve)
    changed = sorted(
        name for name in set(model.backends) | set(new_model.backends)
        if model.backends.get(name) is not new_model.backends.get(name)
    )
    return new_model, changed


def route_conflicts(app: Mapping[str, Any], current: Iterable[Mapping[str, Any]], *,
                    http_port: int = 80) -> list[Rejected]:
    """The routes `app` (a Marathon app definition about to be deployed) would contest with apps in Marathon.

    `current` is Marathon's apps as they are (the deployed version of `app` included, so a redeploy keeps
    what it holds). Only apps sharing one of `app`'s HAProxy groups compete. Each result names the
    holder; the same rule the daemon applies (lb.claims), so a deploy that passes is routed.
    """
    raw = app.get("labels") or {}
    try:
        groups = parse_labels(raw).groups if "HAPROXY_GROUP" in raw else ()
    except LabelError:
        return []  # invalid labels are the spec validation's to report
    if not groups:
        return []
    settings = LbSettings(http_port=http_port, groups=groups)
    base = build_model(current, settings)
    new, _ = apply_app(base, app)
    return [r for r in new.rejected if r.app_id == app.get("id") and r.holder is not None]


def starved_apps(model: RoutingModel) -> list[str]:
    """Routed apps that Marathon should run tasks for but that have no server taking traffic."""
    out = []
    for app_id, names in model.owners.items():
        state = model.apps.get(app_id)
        if state is not None and state.instances > 0 and not any(_routed(model.backends[n]) for n in names):
            out.append(app_id)
    return sorted(out)


def refuse_apps(model: RoutingModel, reasons: Mapping[str, str]) -> RoutingModel:
    """`model` without the routes of the apps in `reasons` (app id -> why), reported as rejected.

    For what only the daemon can find out (the LB host cannot bind a port, a reload fails). The apps'
    parsed states stay, so their next update or the next full sync considers them afresh.
    """
    if not reasons:
        return model
    rejects = {**model.label_rejects, **{a: Rejected(a, why) for a, why in reasons.items()}}
    kept = {a: s for a, s in model.apps.items() if a not in reasons}
    new = _assemble(model.settings, kept, rejects, model.app_ignored, model.app_health, model, model.resolve)
    return new._replace(apps=model.apps, label_rejects=model.label_rejects)


def routing_changed(old: RoutingModel | None, new: RoutingModel) -> list[str]:
    """Apps `new` routes whose routes (labels, ports) differ from `old`'s, or that `old` did not route."""
    if old is None:
        return sorted(new.owners)
    out = []
    for app_id in new.owners:
        before = old.apps.get(app_id)
        if app_id not in old.owners or before is None or before.structure != new.apps[app_id].structure:
            out.append(app_id)
    return sorted(out)
