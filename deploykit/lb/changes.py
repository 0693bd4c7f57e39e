"""What it takes to move HAProxy from one RoutingModel to the next: Runtime API commands, or a reload.

Servers moving in and out of existing slots (a task replaced, scaling within the headroom,
a task being killed) are Runtime API commands on the stats socket, which drop nothing and
cost microseconds. Anything else (a frontend or backend added, removed or reconfigured, a
backend that outgrew its slots, different settings) needs a new haproxy.cfg and a reload.
Pure: the daemon sends `ServerOp.command()` strings and decides when to reload.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from deploykit.lb.appstate import Server
from deploykit.lb.model import Backend, RoutingModel

__all__ = ["Changes", "ServerOp", "diff", "diff_backend", "runtime_commands"]


@dataclass(slots=True, frozen=True)
class ServerOp:
    """One Runtime API change to server `backend/server` (e.g. "shop_cart_0/s3")."""

    backend: str
    server: str
    action: str  # "addr" | "check-port" | "state"
    address: str | None = None
    port: int | None = None
    state: str | None = None  # ready | drain | maint
    task_id: str | None = None  # for logs: the task now (or last) in the slot

    def command(self) -> str:
        """The stats-socket command line (without the trailing newline)."""
        target = f"{self.backend}/{self.server}"
        if self.action == "addr":
            return f"set server {target} addr {self.address} port {self.port}"
        if self.action == "state":
            return f"set server {target} state {self.state}"
        if self.action == "check-port":  # HAPROXY_{n}_HEALTHCHECK_PORT_INDEX: the new task's check port
            return f"set server {target} check-port {self.port}"
        raise ValueError(f"unknown server op {self.action!r}")


@dataclass(slots=True)
class Changes:
    """`reload_needed` with human `reasons`; `server_ops` in the order they must be sent.

    When a reload is needed the new haproxy.cfg already holds every server, so the ops
    only matter for backends the reload does not touch; sending them first is harmless.
    """

    reload_needed: bool = False
    reasons: list[str] = field(default_factory=list)
    server_ops: list[ServerOp] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.reload_needed and not self.server_ops


def _slot_ops(name: str, server: str, old: Server | None, new: Server | None) -> list[ServerOp]:
    if new is None:
        assert old is not None
        return [ServerOp(name, server, "state", state="maint", task_id=old.task_id)]
    state = "drain" if new.draining else "ready"
    if (old is not None and old.task_id == new.task_id and old.address == new.address and old.port == new.port
            and old.check_port == new.check_port):
        return [ServerOp(name, server, "state", state=state, task_id=new.task_id)]
    ops = []
    if old is not None and not old.draining:
        # out of rotation before its address changes, so no request goes to a half-updated server
        ops.append(ServerOp(name, server, "state", state="maint", task_id=old.task_id))
    ops.append(ServerOp(name, server, "addr", address=new.address, port=new.port, task_id=new.task_id))
    if new.check_port:
        ops.append(ServerOp(name, server, "check-port", port=new.check_port, task_id=new.task_id))
    ops.append(ServerOp(name, server, "state", state=state, task_id=new.task_id))
    return ops


def diff_backend(old: Backend | None, new: Backend | None, changes: Changes) -> None:
    """Add what it takes to turn backend `old` into `new` to `changes`."""
    if old is new:  # also both None: a name from several updates' change lists that came and went
        return
    if old is None or new is None:
        name = new.name if new is not None else old.name  # type: ignore[union-attr]
        changes.reload_needed = True
        changes.reasons.append(f"backend {name} {'added' if old is None else 'removed'}")
        return
    if old.structure != new.structure:
        changes.reload_needed = True
        if len(old.slots) != len(new.slots):
            changes.reasons.append(f"backend {new.name}: slots {len(old.slots)} -> {len(new.slots)}")
        else:
            changes.reasons.append(f"backend {new.name}: settings changed")
        return
    for i, (a, b) in enumerate(zip(old.slots, new.slots, strict=True), start=1):
        if a != b:
            changes.server_ops.extend(_slot_ops(new.name, f"s{i}", a, b))


def diff(old: RoutingModel | None, new: RoutingModel, only: Iterable[str] | None = None) -> Changes:
    """Changes from `old` to `new`. `only`: backend names known to have changed (from apply_app), else all.

    Frontends are compared by value (tuples, cheap); backends shared between the two models
    are skipped by identity, so a diff after one event costs O(changed backends).
    """
    changes = Changes()
    if old is None:
        changes.reload_needed = True
        changes.reasons.append("no configuration loaded yet")
        return changes
    if old.settings != new.settings:
        changes.reload_needed = True
        changes.reasons.append("settings changed")
    if old.http_routes is not new.http_routes and old.http_routes != new.http_routes:
        changes.reload_needed = True
        changes.reasons.append("http routes changed")
    if old.port_frontends is not new.port_frontends and old.port_frontends != new.port_frontends:
        changes.reload_needed = True
        changes.reasons.append("service-port frontends changed")
    names = sorted(set(old.backends) | set(new.backends)) if only is None else sorted(set(only))
    for name in names:
        diff_backend(old.backends.get(name), new.backends.get(name), changes)
    return changes


def runtime_commands(ops: list[ServerOp]) -> list[str]:
    """Stats-socket commands for `ops`, ordered so a backend never has fewer routable servers mid-batch.

    Slots that end up serving go first, slots leaving rotation last (each slot's own ops keep
    their order). A slot turning ready is also forced `health up`: Marathon already found the
    task healthy (only such tasks are routed), and without it HAProxy would keep the server
    out until its own first check passes, which during a rolling deploy can leave a backend
    with no server for one check interval (503s).
    """
    groups: dict[tuple[str, str], list] = {}
    for op in ops:
        groups.setdefault((op.backend, op.server), []).append(op)
    serving: list[str] = []
    leaving: list[str] = []
    for (backend, server), slot_ops in groups.items():
        cmds = [op.command() for op in slot_ops]
        last = slot_ops[-1]
        if last.action == "state" and last.state == "ready":
            cmds.append(f"set server {backend}/{server} health up")
            serving.extend(cmds)
        elif last.action == "state" and last.state in ("maint", "drain"):
            leaving.extend(cmds)
        else:
            serving.extend(cmds)
    return serving + leaving
