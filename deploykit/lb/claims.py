"""Who owns a service port or a vhost+path: the one ownership rule for the daemon and `deploykit deploy` (pure).

An app that already holds a route keeps it. A newcomer claiming the same port or host+path is
the one rejected, whatever its id: otherwise anyone who can deploy any app could take another
team's hostname by picking an id that sorts first. "Already holds" means, in this order:
1. the route is in the daemon's current routing (`holders`, kept in the model and persisted by
   `lb run` next to its config, so a restart keeps it);
2. else the app whose configuration is older in Marathon (`versionInfo.lastConfigChangeAt`),
   which is what a freshly started daemon with no saved routing has to go on;
3. the app id only breaks exact ties.

A vhost/path route's service port is a *secondary* claim (marathon-lb binds it too, for east-west
traffic, but the app's users come through its vhost): when another app holds it, or the LB needs it
for itself, only that service-port frontend is left out and reported in `dropped`; the vhost routing
stays. A tcp (or plain http) route's service port is its only way in, so a conflict there rejects the app.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from deploykit.lb.labels import Rejected

# ("port", 10001) or ("vhost", "shop.example.com", "/api"); "*" stands for "any host" (no vhost label)
ClaimKey = tuple


class _Route(Protocol):
    index: int
    service_port: int | None
    labels: Any
    http_routed: bool


class Claimant(Protocol):
    app_id: str
    since: str
    routes: tuple[_Route, ...]


class Resolution(NamedTuple):
    winners: list[str]  # app ids that keep all their required routes, in claim order
    conflicts: list[Rejected]
    claims: dict[ClaimKey, str]  # every granted key -> its app id (the next round's `holders`)
    dropped: list[Rejected]  # secondary claims (a vhost app's service port) left out, app still routed


def route_claims(routes: Iterable[_Route]) -> tuple[list[tuple[int, ClaimKey, bool]], str | None]:
    """(route index, key, secondary) for every route, or a problem when two ports of the same app collide."""
    keys: list[tuple[int, ClaimKey, bool]] = []
    seen: set[ClaimKey] = set()
    for route in routes:
        wanted: list[tuple[ClaimKey, bool]] = []
        http_routed = route.http_routed or route.service_port is None
        if route.service_port is not None:
            wanted.append((("port", route.service_port), http_routed))
        if http_routed:
            path = route.labels.path or "/"
            wanted += [(("vhost", host, path), False) for host in (route.labels.vhosts or ("*",))]
        for key, secondary in wanted:
            if key in seen:
                return keys, f"port {route.index}: {describe(key)} is already used by another port of this app"
            seen.add(key)
            keys.append((route.index, key, secondary))
    return keys, None


def describe(key: ClaimKey) -> str:
    if key[0] == "port":
        return f"service port {key[1]}"
    return f"host {key[1]} path {key[2]}"


def _conflict(app_id: str, index: int, key: ClaimKey, holder: str, on_host: bool = False) -> Rejected:
    """`on_host`: something outside the routing (another process on the LB host) holds the key: no holder."""
    verb = "is already used by" if key[0] == "port" else "is already routed to"
    return Rejected(app_id, f"port {index}: {describe(key)} {verb} {holder}", None if on_host else holder)


def claim_order(apps: Mapping[str, Claimant], holders: Mapping[ClaimKey, str]) -> list[str]:
    """Apps that hold routes first, then by age of their configuration, then by id."""
    holding = set(holders.values())
    return sorted(apps, key=lambda a: (a not in holding, apps[a].since or "~", a))


def resolve(
    apps: Mapping[str, Claimant],
    holders: Mapping[ClaimKey, str],
    reserved: Mapping[ClaimKey, str] | None = None,
    unavailable: Mapping[ClaimKey, str] | None = None,
) -> Resolution:
    """Grant every app its required keys or nothing; `reserved` keys belong to the LB itself (its own
    frontends), `unavailable` ones to something else on the LB host (a port another process listens on)."""
    claimed: dict[str, list[tuple[int, ClaimKey, bool]]] = {}
    problems: dict[str, str] = {}
    for app_id, state in apps.items():
        claimed[app_id], problem = route_claims(state.routes)
        if problem:
            problems[app_id] = problem
    wanted_by = {app_id: {k for _, k, _ in keys} for app_id, keys in claimed.items() if app_id not in problems}
    taken: dict[ClaimKey, str] = {**(unavailable or {}), **(reserved or {})}
    winners: list[str] = []
    conflicts: list[Rejected] = []
    dropped: list[Rejected] = []
    lost: set[str] = set()
    for app_id in claim_order(apps, holders):
        if app_id in problems:
            conflicts.append(Rejected(app_id, problems[app_id]))
            lost.add(app_id)
            continue
        conflict = None
        skipped: list[Rejected] = []
        skipped_keys: set[ClaimKey] = set()
        for index, key, secondary in claimed[app_id]:
            other = taken.get(key)
            if other is None:
                holder = holders.get(key)
                # the current holder keeps the key while it still asks for it (and has not lost it this round)
                if holder is not None and holder != app_id and holder not in lost and key in wanted_by.get(holder, ()):
                    other = holder
            if other is not None:
                on_host = unavailable is not None and unavailable.get(key) == other
                if secondary:
                    skipped.append(_conflict(app_id, index, key, other, on_host))
                    skipped_keys.add(key)
                    continue
                conflict = _conflict(app_id, index, key, other, on_host)
                break
        if conflict is not None:
            conflicts.append(conflict)
            lost.add(app_id)
            continue
        for _, key, _ in claimed[app_id]:
            if key not in skipped_keys:
                taken[key] = app_id
        dropped.extend(skipped)
        winners.append(app_id)
    granted = {k: v for k, v in taken.items() if k not in (reserved or {}) and k not in (unavailable or {})}
    return Resolution(winners, conflicts, granted, dropped)
