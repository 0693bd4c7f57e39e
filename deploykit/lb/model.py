"""Marathon apps -> RoutingModel: what HAProxy should route, computed from full state (pure, fast).

The model is the single source of truth for both the rendered haproxy.cfg and the Runtime
API changes: backends have a fixed number of server slots (with headroom) and a task keeps
its slot across updates, so scaling and task replacement become "set server" commands
instead of reloads. Models are treated as immutable: updates build new objects and share
unchanged backends, so `changes.diff` can skip them by identity. NamedTuples, not pydantic models:
this runs on every Marathon event for thousands of apps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from deploykit.lb import claims
from deploykit.lb.appstate import AppState, PortRoute, Resolver, Server, parse_app
from deploykit.lb.labels import Auth, CheckSpec, Ignored, LabelError, PortLabels, Rejected, parse_labels
from deploykit.lb.settings import LbSettings

_NO_CLAIMS: Mapping[tuple, str] = MappingProxyType({})

__all__ = [
    "Backend",
    "BackendOptions",
    "HttpRoute",
    "PortFrontend",
    "RoutingModel",
    "Sources",
    "apply_app",
    "build_model",
    "remove_app",
    "slot_count",
]


class BackendOptions(NamedTuple):
    """marathon-lb's per-port backend settings, typed (lb.labels): rendered by backend.cfg.j2, never pasted."""

    auth: Auth | None = None
    network_allowed: tuple[str, ...] = ()
    proxypass_path: str | None = None
    revproxy_path: str | None = None
    redirect_root: str | None = None
    use_hsts: bool = False

    @classmethod
    def of(cls, labels: PortLabels) -> BackendOptions:
        if (labels.auth is None and not labels.network_allowed and labels.proxypass_path is None
                and labels.revproxy_path is None and labels.redirect_root is None and not labels.use_hsts):
            return _NO_OPTIONS  # the common case: one shared object
        return cls(labels.auth, labels.network_allowed, labels.proxypass_path, labels.revproxy_path,
                   labels.redirect_root, labels.use_hsts)


_NO_OPTIONS = BackendOptions()


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
    options: BackendOptions = _NO_OPTIONS

    @property
    def structure(self) -> tuple:
        """Everything that needs a reload to change (servers in slots do not)."""
        return (self.mode, self.balance, self.sticky, self.check, len(self.slots), self.options)

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
    weight: int = 0  # HAPROXY_{n}_BACKEND_WEIGHT: higher weights' rules come first

    @property
    def wildcard(self) -> bool:
        """True when the vhosts are `*.` names, matched by suffix (`host_match` gives the suffixes)."""
        return bool(self.vhosts) and self.vhosts[0].startswith("*.")

    @property
    def host_match(self) -> tuple[str, ...]:
        """What HAProxy compares the Host header with: the names, or for wildcards the suffixes (".example.com")."""
        return tuple(v[1:] for v in self.vhosts) if self.wildcard else self.vhosts


class PortFrontend(NamedTuple):
    """A frontend bound on an app's service port (every routed port that has one, as marathon-lb does)."""

    name: str
    port: int
    mode: str
    backend: str
    bind_address: str = ""  # HAPROXY_{n}_BIND_ADDR, else the settings' bind_address


class Sources(NamedTuple):
    """What each app contributed, as parsed from Marathon (source state): what an update starts from.

    Kept apart from the derived routing in RoutingModel, so an incremental update changes one
    app's entries here and re-derives the rest, and nothing derived is ever fed back as input.
    """

    apps: dict[str, AppState]  # routable apps, before conflicts between them are resolved
    label_rejects: dict[str, Rejected]  # apps whose own document or labels were refused
    app_ignored: dict[str, tuple[Ignored, ...]]
    app_health: dict[str, dict[str, bool]]  # app id -> task id -> last known health


class RoutingModel(NamedTuple):
    """Everything haproxy.cfg and the Runtime API need (derived), plus the `sources` it was derived from.

    Immutable; updates share unchanged parts.
    """

    settings: LbSettings
    sources: Sources
    backends: dict[str, Backend]  # sorted by name
    http_routes: tuple[HttpRoute, ...]  # in rule order
    port_frontends: tuple[PortFrontend, ...]  # sorted by port
    rejected: tuple[Rejected, ...]
    ignored: tuple[Ignored, ...]
    owners: dict[str, tuple[str, ...]]  # app id -> its backend names
    server_count: int  # servers routed (not draining); kept up to date by every update, metrics read it often
    # host name -> IPv4/IPv6 address, injected by the daemon (the Runtime API's `set server addr` takes addresses only)
    resolve: Resolver | None = None
    # every granted port / host+path -> the app holding it; the next model keeps them with their holders
    claims: Mapping[tuple, str] = _NO_CLAIMS
    # service-port frontends of vhost/path apps left out (port held by another app or by the LB host);
    # the app keeps its vhost routing
    dropped: tuple[Rejected, ...] = ()
    ssl_certs: tuple[str, ...] = ()  # the https frontend's certificates: settings' first, then apps' SSL_CERT
    app_id_routes: tuple[tuple[str, str], ...] = ()  # (app id, its first http backend): X-Marathon-App-Id

    @property
    def tls(self) -> bool:
        """True when the https frontend is rendered (the operator gave at least one certificate)."""
        return bool(self.settings.ssl_certs) and bool(self.settings.https_port)

    @property
    def health(self) -> dict[str, bool]:
        """Last known Marathon health per task id, flattened (what `last_known_health` takes)."""
        return {task: alive for per_app in self.sources.app_health.values() for task, alive in per_app.items()}


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


def _fill_slots(name: str, app_id: str, route: PortRoute, cands: tuple[Server, ...],
                prev: Backend | None, settings: LbSettings) -> Backend:
    """Put candidates in slots: a task keeps its previous slot; new tasks take the lowest free ones."""
    labels = route.labels
    if prev is None:  # first layout (a cold build): tasks in task-id order, no draining task has a slot yet
        live = [c for c in cands if not c.draining]
        size = slot_count(len(live), 0, settings)
        live.extend([None] * (size - len(live)))  # type: ignore[list-item]
        return Backend(name, app_id, route.index, route.mode, labels.balance, labels.sticky, route.check,
                       tuple(live), BackendOptions.of(labels))
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
    new = Backend(name, app_id, route.index, route.mode, labels.balance, labels.sticky, route.check, tuple(slots),
                  BackendOptions.of(labels))
    if prev is not None and prev == new:
        return prev  # share unchanged backends so diff can skip them by identity
    return new


def _route_sort_key(route: HttpRoute) -> tuple:
    rank = 2 if not route.vhosts else 1 if route.wildcard else 0  # exact names, then wildcards, then any host
    return (-route.weight, rank, -len(route.path or ""), route.vhosts, route.path or "", route.backend)


def _http_routes(route: PortRoute) -> list[HttpRoute]:
    """The frontend rules of one routed port: one for exact vhosts, one for wildcards (see HttpRoute)."""
    labels = route.labels
    vhosts = labels.vhosts  # sorted, so wildcards ("*." sorts before names) come first
    if not vhosts or not vhosts[0].startswith("*."):
        return [HttpRoute(route.backend, vhosts, labels.path, labels.redirect_to_https, labels.weight)]
    wild = tuple(v for v in vhosts if v.startswith("*."))
    groups = [g for g in (vhosts[len(wild):], wild) if g]
    return [HttpRoute(route.backend, hosts, labels.path, labels.redirect_to_https, labels.weight) for hosts in groups]


def reserved_ports(settings: LbSettings) -> dict[tuple, str]:
    """The LB's own listeners: no app may have a frontend on these ports."""
    own = {("port", settings.http_port): "the http frontend"}
    if settings.ssl_certs and settings.https_port:
        own[("port", settings.https_port)] = "the https frontend"
    if settings.stats_port:
        own[("port", settings.stats_port)] = "the stats frontend"
    if settings.app_id_port:
        own[("port", settings.app_id_port)] = "the X-Marathon-App-Id frontend"
    return own


def _assemble(
    settings: LbSettings,
    sources: Sources,
    prev: RoutingModel | None,
    resolve: Resolver | None,
    initial_claims: Mapping[tuple, str] | None = None,
    refused_ports: Mapping[int, str] | None = None,
) -> RoutingModel:
    """Derive the routing from `sources`: resolve conflicts between apps (the holder keeps a port/vhost,
    lb.claims) and lay out servers. `refused_ports`: service ports the LB host cannot bind (-> reason)."""
    apps = sources.apps
    prev_backends = prev.backends if prev is not None else {}
    backends: dict[str, Backend] = {}
    http_routes: list[HttpRoute] = []
    port_frontends: list[PortFrontend] = []
    owners: dict[str, tuple[str, ...]] = {}
    holders = initial_claims if initial_claims is not None else (prev.claims if prev is not None else _NO_CLAIMS)
    unavailable = {("port", port): reason for port, reason in (refused_ports or {}).items()}
    resolution = claims.resolve(apps, holders, reserved_ports(settings), unavailable)
    granted = resolution.claims
    conflicts: list[Rejected] = resolution.conflicts
    app_certs: set[str] = set()
    app_id_routes: list[tuple[str, str]] = []
    for app_id in sorted(resolution.winners):
        state = apps[app_id]
        names = []
        for route, cands in zip(state.routes, state.candidates, strict=True):
            backends[route.backend] = _fill_slots(
                route.backend, app_id, route, cands, prev_backends.get(route.backend), settings
            )
            names.append(route.backend)
            if route.service_port is not None and granted.get(("port", route.service_port)) == app_id:
                port_frontends.append(PortFrontend(f"port_{route.service_port}", route.service_port, route.mode,
                                                   route.backend, route.bind_address))
            if route.http_routed or route.service_port is None:
                http_routes.extend(_http_routes(route))
            if route.labels.ssl_cert:
                app_certs.add(route.labels.ssl_cert)
            if route.mode == "http" and (not app_id_routes or app_id_routes[-1][0] != app_id):
                app_id_routes.append((app_id, route.backend))  # the app's first http port, as marathon-lb
        owners[app_id] = tuple(names)
    rejected = sorted([*sources.label_rejects.values(), *conflicts], key=lambda r: r.app_id)
    ignored = [i for app_id in sorted(sources.app_ignored) for i in sources.app_ignored[app_id]]
    return RoutingModel(
        settings=settings,
        sources=sources,
        backends=dict(sorted(backends.items())),
        server_count=sum(map(_routed, backends.values())),
        http_routes=tuple(sorted(http_routes, key=_route_sort_key)),
        port_frontends=tuple(sorted(port_frontends, key=lambda f: f.port)),
        rejected=tuple(rejected),
        ignored=tuple(ignored),
        owners=owners,
        resolve=resolve,
        claims=granted,
        dropped=tuple(resolution.dropped),
        ssl_certs=(*settings.ssl_certs, *sorted(app_certs - set(settings.ssl_certs))) if settings.ssl_certs else (),
        app_id_routes=tuple(app_id_routes) if settings.app_id_port else (),
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
    prev_health = prev.sources.app_health if prev is not None and last_known_health is None else None
    flat = last_known_health if last_known_health is not None else {}
    states: dict[str, AppState] = {}
    label_rejects: dict[str, Rejected] = {}
    app_ignored: dict[str, tuple[Ignored, ...]] = {}
    app_health: dict[str, dict[str, bool]] = {}
    for app in apps:
        seen: dict[str, bool] = {}
        app_id = app.get("id") if isinstance(app, Mapping) else None
        known = flat if prev_health is None or not isinstance(app_id, str) else prev_health.get(app_id, flat)
        state, rejected, ignored = parse_app(app, settings, known, seen, resolve)
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
    return _assemble(settings, Sources(states, label_rejects, app_ignored, app_health), prev, resolve, holders)


def apply_app(model: RoutingModel, app: Mapping[str, Any]) -> tuple[RoutingModel, list[str]]:
    """One app's new state (e.g. GET /v2/apps/{id}?embed=app.tasks) -> (new model, changed backend names).

    O(that app) when only its tasks changed; when its routing (labels, ports) changed it
    re-resolves conflicts across apps (cheap, no JSON or labels re-parsed) since a reload is due anyway.
    """
    app_id = app.get("id") if isinstance(app, Mapping) else None
    if not isinstance(app_id, str):
        return model, []  # nothing to key it by; a full sync reports it
    sources = model.sources
    old_state = sources.apps.get(app_id)
    seen: dict[str, bool] = {}
    state, rejected, ignored = parse_app(app, model.settings, sources.app_health.get(app_id, {}), seen, model.resolve)
    health = dict(sources.app_health)
    health.pop(app_id, None)
    if seen:
        health[app_id] = seen
    if (
        state is not None
        and old_state is not None
        and state.structure == old_state.structure
        and app_id in model.owners
        and app_id not in sources.label_rejects
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
        apps = dict(sources.apps)
        apps[app_id] = state
        new_sources = sources._replace(apps=apps, app_health=health)
        return model._replace(sources=new_sources, backends=backends, server_count=servers), changed
    return _replace_app(model, app_id, state, rejected, ignored, health)


def remove_app(model: RoutingModel, app_id: str) -> tuple[RoutingModel, list[str]]:
    """The app is gone from Marathon -> (new model, changed backend names)."""
    health = dict(model.sources.app_health)
    health.pop(app_id, None)
    return _replace_app(model, app_id, None, None, (), health)


def _replace_app(model: RoutingModel, app_id: str, state: AppState | None, rejected: Rejected | None,
                 ignored: tuple[Ignored, ...], health: dict[str, dict[str, bool]]) -> tuple[RoutingModel, list[str]]:
    apps = dict(model.sources.apps)
    label_rejects = dict(model.sources.label_rejects)
    app_ignored = dict(model.sources.app_ignored)
    apps.pop(app_id, None)
    label_rejects.pop(app_id, None)
    app_ignored.pop(app_id, None)
    if state is not None:
        apps[app_id] = state
    if rejected is not None:
        label_rejects[app_id] = rejected
    if ignored:
        app_ignored[app_id] = ignored
    new_model = _assemble(model.settings, Sources(apps, label_rejects, app_ignored, health), model, model.resolve)
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
        state = model.sources.apps.get(app_id)
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
    sources = model.sources
    rejects = {**sources.label_rejects, **{a: Rejected(a, why) for a, why in reasons.items()}}
    kept = {a: s for a, s in sources.apps.items() if a not in reasons}
    new = _assemble(model.settings, sources._replace(apps=kept, label_rejects=rejects), model, model.resolve)
    return new._replace(sources=sources)


def certificate_rejections(model: RoutingModel, bad: Mapping[str, str]) -> dict[str, str]:
    """App id -> why, for the apps whose HAPROXY_{n}_SSL_CERT is among the `bad` files (path -> problem)."""
    reasons = {}
    for app_id, state in model.sources.apps.items():
        for route in state.routes:
            if route.labels.ssl_cert in bad:
                reasons[app_id] = f"port {route.index}: HAPROXY_{route.index}_SSL_CERT {bad[route.labels.ssl_cert]}"
    return reasons


def refuse_ports(model: RoutingModel, reasons: Mapping[int, str]) -> RoutingModel:
    """`model` without frontends on the service ports in `reasons` (port -> why, e.g. another process on the
    LB host listens there): a tcp/plain app needing one is rejected, a vhost/path app only loses that
    frontend (reported in `dropped`). The next update or full sync considers the ports afresh."""
    if not reasons:
        return model
    new = _assemble(model.settings, model.sources, model, model.resolve, refused_ports=reasons)
    return new


def routing_changed(old: RoutingModel | None, new: RoutingModel) -> list[str]:
    """Apps `new` routes whose routes (labels, ports) differ from `old`'s, or that `old` did not route."""
    if old is None:
        return sorted(new.owners)
    out = []
    for app_id in new.owners:
        before = old.sources.apps.get(app_id)
        if app_id not in old.owners or before is None or before.structure != new.sources.apps[app_id].structure:
            out.append(app_id)
    return sorted(out)
