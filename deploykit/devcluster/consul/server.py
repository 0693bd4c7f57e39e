"""The Consul-compatible server's state and the helpers its HTTP handlers share (app.py wires the routes).

Behaviour follows shared/reference/consul-kv-api.md: plain-text errors, X-Consul-Index on
every KV read (404 included), blocking queries that park on the watchers of the exact key
or prefix they read, transactions that apply all-or-nothing, sessions with TTL and
lock-delay, optional ACL tokens. Every acknowledged write is on disk first (journal.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from deploykit.devcluster.consul.acl import Acl, Authorizer, TokenRules, UnknownToken
from deploykit.devcluster.consul.journal import Journal, read_state
from deploykit.devcluster.consul.store import Session, Store, Tx
from deploykit.devcluster.consul.watch import WatchHub
from deploykit.durations import parse_go_duration

log = logging.getLogger(__name__)

MAX_VALUE_SIZE = 512 * 1024  # Consul's default kv_max_value_size
MAX_TXN_BODY = 512 * 1024  # Consul's default txn_max_req_len
MAX_TXN_OPS = 64
DEFAULT_WAIT = 300.0
MAX_WAIT = 600.0
SESSION_MARK = "\x00sessions"  # watcher key for session blocking queries (no KV key can contain NUL)
VERSION = "1.15.0-deploykit"


class HTTPError(Exception):
    """A Consul-style error: status and a plain-text reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class ReadResult:
    index: int
    status: int = 200
    body: Any = None  # JSON-able, or bytes for ?raw


def _json(doc: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(doc, separators=(",", ":")).encode(), content_type="application/json",
        headers=headers,
    )


def _flag(request: web.Request, name: str) -> bool:
    """Consul tests presence only: ?recurse, ?recurse=true and even ?recurse=false all enable it."""
    return name in request.query


def _token(request: web.Request) -> str | None:
    tok = request.headers.get("X-Consul-Token") or request.query.get("token")
    if not tok:
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            tok = auth[7:].strip()
    return tok or None


def _ci(doc: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """Case-insensitive field lookup, as Go's JSON decoder does it."""
    if name in doc:
        return doc[name]
    low = name.lower()
    for k, v in doc.items():
        if isinstance(k, str) and k.lower() == low:
            return v
    return default


def _uint(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise HTTPError(500, f'strconv.ParseUint: parsing "{text}": invalid syntax') from None
    if value < 0 or value >= 2**64:
        raise HTTPError(500, f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes without reading them all into memory."""
    chunks, size = [], 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, "")
        chunks.append(chunk)
    return b"".join(chunks)


class ConsulServer:
    """State, journal, watchers and session timers behind the HTTP handlers."""

    def __init__(
        self,
        state_dir: Path,
        *,
        acl_tokens: Mapping[str, TokenRules] | None = None,
        default_policy: str = "allow",
        session_ttl_min: float = 10.0,
        session_ttl_multiplier: float = 2.0,
        tombstone_ttl: float = 900.0,
        node_name: str = "devcluster",
        datacenter: str = "dc1",
        fsync: bool = True,
        compact_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.acl = Acl(acl_tokens, default_policy)
        self.session_ttl_min = session_ttl_min
        self.session_ttl_multiplier = session_ttl_multiplier
        self.tombstone_ttl = tombstone_ttl
        self.node_name = node_name
        self.datacenter = datacenter
        self.store = Store()
        self.hub = WatchHub()
        self.journal = Journal(self.state_dir, compact_bytes=compact_bytes, fsync=fsync)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.closing = False
        self._reaper: asyncio.Task | None = None
        self._recover()

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    def _recover(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        snap, records = read_state(self.state_dir)
        if snap is not None:
            self.store.load_snapshot(snap)
        for rec in records:
            self.store.apply(rec["i"], rec["c"])
        self.store.reap_tombstones(time.time() - self.tombstone_ttl)
        self.journal.open(self.store.snapshot)

    async def start(self) -> None:
        self.journal.start()
        for sess in list(self.store.sessions.values()):
            self._arm_ttl(sess)  # Consul restarts TTL timers from scratch after a leader change
        self._reaper = asyncio.get_running_loop().create_task(self._reap_loop(), name="consul-tombstone-reaper")

    def release_waiters(self) -> None:
        """On shutdown: answer every parked blocking query now, so the HTTP server can close promptly."""
        self.closing = True
        self.hub.wake_all()

    async def stop(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await self.journal.close()

    async def _reap_loop(self) -> None:
        period = max(0.05, min(30.0, self.tombstone_ttl / 4))
        while True:
            await asyncio.sleep(period)
            self.store.reap_tombstones(time.time() - self.tombstone_ttl)

    # ---- writes ------------------------------------------------------------------------------------------------
    def commit(self, tx: Tx) -> Awaitable[None] | None:
        """Apply a prepared write in memory, queue it for disk; watchers wake once it is durable."""
        if not tx.changes:
            return None
        touched = self.store.apply(tx.index, tx.changes)
        if any(ch[0] in ("s", "x") for ch in tx.changes):
            touched.append(SESSION_MARK)
        fut = self.journal.append(tx.index, tx.changes)

        def _wake(f: asyncio.Future) -> None:
            if not f.cancelled() and f.exception() is None:
                self.hub.notify(touched)

        fut.add_done_callback(_wake)
        return fut

    async def durable(self, tx: Tx) -> None:
        fut = self.commit(tx)
        if fut is not None:
            await asyncio.shield(fut)  # a client hanging up must not cancel the write under other writers

    # ---- sessions ----------------------------------------------------------------------------------------------
    def _arm_ttl(self, sess: Session) -> None:
        old = self._timers.pop(sess.id, None)
        if old is not None:
            old.cancel()
        if not sess.ttl:
            return
        delay = parse_go_duration(sess.ttl) * self.session_ttl_multiplier
        self._timers[sess.id] = asyncio.get_running_loop().call_later(delay, self._expire, sess.id)

    def _expire(self, session_id: str) -> None:
        self._timers.pop(session_id, None)
        if session_id not in self.store.sessions:
            return
        log.info("consul: session %s expired (TTL)", session_id)
        self.invalidate(session_id)

    def invalidate(self, session_id: str) -> Awaitable[None] | None:
        handle = self._timers.pop(session_id, None)
        if handle is not None:
            handle.cancel()
        tx = self.store.begin()
        tx.destroy_session(session_id, time.monotonic())
        return self.commit(tx)

    # ---- blocking reads ----------------------------------------------------------------------------------------
    def blocking_params(self, request: web.Request) -> tuple[int, float]:
        q = request.query
        index = 0
        if "index" in q and q["index"] != "":
            try:
                index = int(q["index"])
                if index < 0:
                    raise ValueError
            except ValueError:
                raise HTTPError(400, "Invalid index") from None
        wait = DEFAULT_WAIT
        if q.get("wait"):
            try:
                wait = parse_go_duration(q["wait"])
            except ValueError:
                raise HTTPError(400, "Invalid wait time") from None
            if wait <= 0:
                wait = DEFAULT_WAIT
        wait = min(wait, MAX_WAIT)
        return index, wait + random.uniform(0, wait / 16)

    async def blocking(
        self, request: web.Request, target: str, prefix: bool, compute: Callable[[], ReadResult]
    ) -> ReadResult:
        """Answer now, or (with ?index=N) hold the request until the result's index passes N or the wait ends."""
        min_index, timeout = self.blocking_params(request)
        result = compute()
        if min_index == 0:
            return result
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while result.index <= min_index and not self.closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            fut = self.hub.watch(target, prefix=prefix)
            try:
                await asyncio.wait((fut,), timeout=remaining)
            finally:
                self.hub.unwatch(target, fut, prefix=prefix)
                fut.cancel()
            result = compute()
        return result

    def meta_headers(self, index: int) -> dict[str, str]:
        return {
            "X-Consul-Index": str(max(1, index)),
            "X-Consul-KnownLeader": "true",
            "X-Consul-LastContact": "0",
        }


APP_KEY = web.AppKey("consul_server", ConsulServer)


def _server(request: web.Request) -> ConsulServer:
    return request.app[APP_KEY]


def _authorize(request: web.Request) -> Authorizer:
    try:
        return _server(request).acl.authorize(_token(request))
    except UnknownToken:
        raise HTTPError(403, "ACL not found") from None


def _denied() -> HTTPError:
    return HTTPError(403, "Permission denied")
