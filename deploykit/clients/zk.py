"""ZooKeeper access: connecting kazoo, and finding/following the Marathon leader.

Marathon (1.5+) elects its leader with Apache Curator's LeaderLatch on the znode
`<zk path>/leader-curator`: every candidate creates an EPHEMERAL_SEQUENTIAL child named
`_c_<uuid>-latch-<10-digit seq>` whose data is its `host:port`; the lowest sequence number
leads. Reading that layout directly lets the deploy client and the HAProxy daemon talk to
the leader itself (never through a proxying standby) and notice a failover within one ZK
watch round-trip instead of a polling period.

kazoo exceptions never leave this module: they become deploykit.errors types. The client
object is created here and injected into whatever needs it (no module-level clients).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    ConnectionLoss,
    KazooException,
    NoAuthError,
    NoNodeError,
    SessionExpiredError,
    ZookeeperError,
)
from kazoo.handlers.threading import KazooTimeoutError

from deploykit.errors import AuthError, RemoteError, UnreachableError
from deploykit.zkurl import ZkUrl, parse_zk_url

log = logging.getLogger(__name__)

LATCH_SUFFIX = "leader-curator"
_LATCH_MARK = "latch-"

__all__ = [
    "MarathonLeaderWatcher",
    "ZkUrl",
    "connect",
    "latch_path",
    "leader_from_children",
    "marathon_leader",
    "parse_zk_url",
    "translate",
]


def translate(exc: Exception, what: str) -> Exception:
    """Map a kazoo exception to the deploykit error the CLI knows how to report."""
    if isinstance(exc, (KazooTimeoutError, ConnectionLoss, SessionExpiredError)):
        return UnreachableError(f"ZooKeeper unreachable while {what}: {type(exc).__name__}")
    if isinstance(exc, NoAuthError):
        return AuthError(f"ZooKeeper refused access while {what}")
    if isinstance(exc, (ZookeeperError, KazooException)):
        return RemoteError(f"ZooKeeper error while {what}: {type(exc).__name__} {exc}".rstrip())
    return exc


def connect(hosts: str, timeout: float = 10.0, *, wait: bool = True, **kazoo_kwargs) -> KazooClient:
    """Start a KazooClient on `hosts` ("h1:2181,h2:2181"); UnreachableError if no server answers in time.

    The client keeps retrying the connection forever after a session loss (kazoo's default
    connection retry), which is what a long-lived daemon wants; callers watch the state.
    `wait=False` returns at once (after up to `timeout` seconds of trying) even when no server
    answered yet; the client keeps connecting in the background.
    """
    kazoo_kwargs.setdefault("connection_retry", {"max_tries": -1, "delay": 0.2, "backoff": 2, "max_delay": 5})
    client = KazooClient(hosts=hosts, timeout=timeout, **kazoo_kwargs)
    if not wait:
        client.start_async().wait(timeout)
        return client
    try:
        client.start(timeout=timeout)
    except Exception as exc:
        try:
            client.stop()
            client.close()
        except Exception:  # nothing more to clean up on a client that never connected
            pass
        raise translate(exc, f"connecting to {hosts}") from None
    return client


def latch_path(zk_path: str) -> str:
    """The Curator latch node for Marathon's `--zk` path: `/marathon` -> `/marathon/leader-curator`."""
    return zk_path.rstrip("/") + "/" + LATCH_SUFFIX


def _seq(child: str) -> int | None:
    _head, mark, tail = child.rpartition(_LATCH_MARK)
    if not mark or not tail.isdigit():
        return None
    return int(tail)


def leader_from_children(children: list[str]) -> str | None:
    """Name of the leading latch child (lowest sequence number), ignoring foreign nodes."""
    ranked = sorted((s, c) for c in children if (s := _seq(c)) is not None)
    return ranked[0][1] if ranked else None


def marathon_leader(client: KazooClient, zk_path: str) -> str | None:
    """Current Marathon leader as "host:port" from ZooKeeper, or None if no candidate is registered.

    Retries once when the leading node vanishes between listing and reading (a failover in
    progress). kazoo errors become UnreachableError / RemoteError.
    """
    path = latch_path(zk_path)
    try:
        for _ in range(5):
            try:
                children = client.get_children(path)
            except NoNodeError:
                return None
            first = leader_from_children(children)
            if first is None:
                return None
            try:
                data, _stat = client.get(f"{path}/{first}")
            except NoNodeError:
                continue  # the leader just left; list again
            value = data.decode("utf-8", "replace").strip()
            return value or None
        return None
    except Exception as exc:
        raise translate(exc, f"reading the Marathon leader from {path}") from None


class MarathonLeaderWatcher:
    """Follows the Marathon leader in ZooKeeper and calls `on_change(host_port | None)` when it changes.

    Watch-driven (no polling): a children watch on the latch node, an exists watch while the
    node is missing, and a re-read after every reconnect (watches do not survive a lost
    session). The callback runs on a kazoo thread and must be quick: record, don't act.
    `on_change` is called once at start with the initial value. While ZooKeeper is unreachable
    the last known leader is kept (`current`) and `connected` is False; no None is reported
    for a mere connection loss, so callers keep using the last leader they knew.
    """

    def __init__(self, client: KazooClient, zk_path: str, on_change: Callable[[str | None], None]):
        self._client = client
        self._path = latch_path(zk_path)
        self._on_change = on_change
        self._lock = threading.Lock()
        self._current: str | None = None
        self._reported = False
        self._stopped = False
        self.connected = client.connected

    @property
    def current(self) -> str | None:
        return self._current

    def start(self) -> MarathonLeaderWatcher:
        self._client.add_listener(self._on_state)
        self._refresh()
        return self

    def stop(self) -> None:
        self._stopped = True
        self._client.remove_listener(self._on_state)

    # kazoo calls this from its connection thread: never block here.
    def _on_state(self, state: str) -> None:
        if self._stopped:
            return
        if state == KazooState.CONNECTED:
            self.connected = True
            self._client.handler.spawn(self._refresh)
        else:
            self.connected = False

    def _watch(self, _event) -> None:
        if not self._stopped:
            self._client.handler.spawn(self._refresh)

    def _refresh(self) -> None:
        if self._stopped or not self._client.connected:
            return  # kazoo would queue the read until connected; the CONNECTED listener refreshes instead
        try:
            value = self._read_with_watches()
        except (ConnectionLoss, SessionExpiredError, KazooTimeoutError):
            return  # the reconnect listener refreshes again
        except KazooException as exc:
            log.warning("reading the Marathon leader from %s failed: %s", self._path, exc)
            return
        with self._lock:
            changed = value != self._current or not self._reported
            self._current = value
            self._reported = True
        if changed and not self._stopped:
            try:
                self._on_change(value)
            except Exception:
                log.exception("leader change callback failed")

    def _read_with_watches(self) -> str | None:
        for _ in range(5):
            try:
                children = self._client.get_children(self._path, watch=self._watch)
            except NoNodeError:
                # Watch for the latch node's creation; if it appeared meanwhile, list again.
                if self._client.exists(self._path, watch=self._watch) is None:
                    return None
                continue
            first = leader_from_children(children)
            if first is None:
                return None
            try:
                data, _ = self._client.get(f"{self._path}/{first}")
            except NoNodeError:
                continue
            return data.decode("utf-8", "replace").strip() or None
        return None
