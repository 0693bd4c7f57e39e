"""The Consul-compatible HTTP API (KV, txn, sessions, status, agent/self) as an aiohttp application.

Behaviour follows shared/reference/consul-kv-api.md: plain-text errors, X-Consul-Index on
every KV read (404 included), blocking queries that park on the watchers of the exact key
or prefix they read, transactions that apply all-or-nothing, sessions with TTL and
lock-delay, optional ACL tokens. Every acknowledged write is on disk first (journal.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from deploykit.devcluster.consul.acl import Acl, Authorizer, TokenRules, UnknownToken
from deploykit.devcluster.consul.journal import Journal, read_state
from deploykit.devcluster.consul.store import Entry, Session, Store, Tx, TxnFailed
from deploykit.devcluster.consul.watch import WatchHub
from deploykit.durations import format_go_duration, parse_go_duration

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


# ---- KV ------------------------------------------------------------------------------------------------------------
async def kv_get(request: web.Request) -> web.StreamResponse:
    srv = _server(request)
    key = request.match_info["key"]
    auth = _authorize(request)
    recurse, keys, raw = _flag(request, "recurse"), _flag(request, "keys"), _flag(request, "raw")
    store = srv.store

    if keys:
        sep = request.query.get("separator", request.query.get("seperator", ""))

        def compute() -> ReadResult:
            out: list[str] = []
            for e in store.scan(key):
                if not auth.can_read(e.key):
                    continue
                name = e.key
                if sep:
                    cut = name.find(sep, len(key))
                    if cut >= 0:
                        name = name[: cut + len(sep)]
                if not out or out[-1] != name:
                    out.append(name)
            index = store.prefix_index(key)
            if not out and key != "":
                return ReadResult(index, 404)
            return ReadResult(index, 200, out)

        result = await srv.blocking(request, key, True, compute)
    elif recurse:

        def compute() -> ReadResult:
            entries = [e.to_json() for e in store.scan(key) if auth.can_read(e.key)]
            index = store.prefix_index(key)
            return ReadResult(index, 200, entries) if entries else ReadResult(index, 404)

        result = await srv.blocking(request, key, True, compute)
    else:
        if not key:
            raise HTTPError(400, "Missing key name")
        if not auth.can_read(key):
            raise _denied()

        def compute() -> ReadResult:
            entry = store.entries.get(key)
            if entry is None:
                return ReadResult(store.kv_index, 404)
            return ReadResult(entry.modify_index, 200, entry.value if raw else [entry.to_json()])

        result = await srv.blocking(request, key, False, compute)

    headers = srv.meta_headers(result.index)
    if result.status == 404:
        return web.Response(status=404, headers=headers)
    if raw and not (keys or recurse):
        headers.update({"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"})
        return web.Response(body=result.body, content_type="text/plain", headers=headers)
    return _json(result.body, headers=headers)


def _conflict(request: web.Request, names: tuple[str, ...]) -> None:
    if sum(1 for n in names if n in request.query) > 1:
        raise HTTPError(400, f"Conflicting flags: {urlencode(list(request.query.items()))}\n")


async def kv_put(request: web.Request) -> web.StreamResponse:
    srv = _server(request)
    key = request.match_info["key"]
    if not key:
        raise HTTPError(400, "Missing key name")
    _conflict(request, ("cas", "acquire", "release"))
    q = request.query
    flags = _uint(q["flags"]) if q.get("flags") else 0
    cas = _uint(q["cas"]) if "cas" in q else None
    length = request.content_length
    if length is not None and length > MAX_VALUE_SIZE:
        raise HTTPError(413, f"Value exceeds {MAX_VALUE_SIZE} byte limit")
    try:
        value = await _read_body(request, MAX_VALUE_SIZE)
    except HTTPError:
        raise HTTPError(413, f"Value exceeds {MAX_VALUE_SIZE} byte limit") from None
    auth = _authorize(request)
    if not auth.can_write(key):
        raise _denied()
    tx = srv.store.begin()
    try:
        if cas is not None:
            ok = tx.cas(key, value, flags, cas) is not None
        elif "acquire" in q:
            ok = tx.lock(key, value, flags, q["acquire"], time.monotonic()) is not None
        elif "release" in q:
            ok = tx.unlock(key, value, flags, q["release"]) is not None
        else:
            tx.set(key, value, flags)
            ok = True
    except TxnFailed as exc:
        raise HTTPError(500, str(exc)) from None
    await srv.durable(tx)
    return _json(ok)


async def kv_delete(request: web.Request) -> web.StreamResponse:
    srv = _server(request)
    key = request.match_info["key"]
    recurse = _flag(request, "recurse")
    _conflict(request, ("recurse", "cas"))
    if not key and not recurse:
        raise HTTPError(400, "Missing key name")
    auth = _authorize(request)
    if not (auth.can_write_prefix(key) if recurse else auth.can_write(key)):
        raise _denied()
    tx = srv.store.begin()
    ok = True
    if recurse:
        tx.delete_tree(key)
    elif "cas" in request.query:
        ok = tx.delete_cas(key, _uint(request.query["cas"]))
    else:
        tx.delete(key)
    await srv.durable(tx)
    return _json(ok)


# ---- transactions --------------------------------------------------------------------------------------------------
_READ_VERBS = {"get", "get-or-empty", "get-tree", "check-index", "check-session", "check-not-exists"}


def _parse_txn(body: bytes) -> list[dict[str, Any]]:
    try:
        doc = json.loads(body or b"null")
    except ValueError as exc:
        raise HTTPError(400, f"Failed to parse body: {exc}") from None
    if not isinstance(doc, list):
        raise HTTPError(400, "Failed to parse body: json: cannot unmarshal into Go value of type api.TxnOps")
    if len(doc) > MAX_TXN_OPS:
        raise HTTPError(413, f"Transaction contains too many operations ({len(doc)} > {MAX_TXN_OPS})")
    ops = []
    for i, raw_op in enumerate(doc):
        kv = _ci(raw_op, "KV") if isinstance(raw_op, dict) else None
        if not isinstance(kv, dict):
            raise HTTPError(400, f"Failed to parse body: operation {i} is not a KV operation (only KV is served)")
        value_b64 = _ci(kv, "Value")
        try:
            value = base64.b64decode(value_b64, validate=True) if value_b64 else b""
        except (binascii.Error, TypeError) as exc:
            raise HTTPError(400, f"Failed to parse body: illegal base64 data in operation {i}: {exc}") from None
        key = _ci(kv, "Key", "") or ""
        if len(value) > MAX_VALUE_SIZE:
            raise HTTPError(413, f'Value for key "{key}" is too large ({len(value)} > {MAX_VALUE_SIZE} bytes)')
        try:
            flags = int(_ci(kv, "Flags", 0) or 0)
            index = int(_ci(kv, "Index", 0) or 0)
        except (TypeError, ValueError):
            raise HTTPError(400, f"Failed to parse body: bad Flags or Index in operation {i}") from None
        ops.append({
            "verb": str(_ci(kv, "Verb", "")), "key": key, "value": value, "flags": flags, "index": index,
            "session": _ci(kv, "Session", "") or "",
        })
    return ops


def _run_op(tx: Tx, op: dict[str, Any], auth: Authorizer) -> list[dict[str, Any]]:
    """One KV verb inside a transaction; returns its result entries, raises TxnFailed with Consul's message."""
    verb, key = op["verb"], op["key"]
    if verb in ("get-tree", "delete-tree"):
        allowed = auth.can_write_prefix(key) if verb == "delete-tree" else True  # get-tree filters instead
    elif verb in _READ_VERBS:
        allowed = auth.can_read(key)
    else:
        allowed = auth.can_write(key)
    if not allowed:
        raise TxnFailed("Permission denied")
    value, flags, index, session = op["value"], op["flags"], op["index"], op["session"]
    entry: Entry | None = None
    if verb == "set":
        entry = tx.set(key, value, flags)
    elif verb == "cas":
        entry = tx.cas(key, value, flags, index)
        if entry is None:
            raise TxnFailed(f'failed to set key "{key}", index is stale')
    elif verb == "lock":
        entry = tx.lock(key, value, flags, session, time.monotonic())
        if entry is None:
            raise TxnFailed(f'failed to lock key "{key}", lock is already held')
    elif verb == "unlock":
        entry = tx.unlock(key, value, flags, session)
        if entry is None:
            raise TxnFailed(f'failed to unlock key "{key}", lock isn\'t held, or is held by another session')
    elif verb == "get":
        entry = tx.get(key)
        if entry is None:
            raise TxnFailed(f'key "{key}" doesn\'t exist')
        return [{"KV": entry.to_json()}]
    elif verb == "get-or-empty":
        entry = tx.get(key) or Entry(key, b"", 0, 0, 0)
        return [{"KV": entry.to_json()}]
    elif verb == "get-tree":
        return [{"KV": e.to_json()} for e in tx.tree(key) if auth.can_read(e.key)]
    elif verb == "check-index":
        entry = tx.get(key)
        if entry is None:
            raise TxnFailed(f'key "{key}" doesn\'t exist')
        if entry.modify_index != index:
            raise TxnFailed(f"current modify index {entry.modify_index} != {index}")
    elif verb == "check-session":
        entry = tx.get(key)
        if entry is None:
            raise TxnFailed(f'key "{key}" doesn\'t exist')
        if (entry.session or "") != session:
            raise TxnFailed(f'failed session check for key "{key}", current session {entry.session or ""} != {session}')
    elif verb == "check-not-exists":
        if tx.get(key) is not None:
            raise TxnFailed(f'key "{key}" exists')
    elif verb == "delete":
        tx.delete(key)
    elif verb == "delete-tree":
        tx.delete_tree(key)
    elif verb == "delete-cas":
        if not tx.delete_cas(key, index):
            raise TxnFailed(f'failed to delete key "{key}", index is stale')
    else:
        raise TxnFailed(f'unknown KV verb "{verb}"')
    return [{"KV": entry.to_json(with_value=False)}] if entry is not None else []


async def txn(request: web.Request) -> web.StreamResponse:
    srv = _server(request)
    length = request.content_length
    too_big = HTTPError(413, f"Request body too large, max size: {MAX_TXN_BODY} bytes")
    if length is not None and length > MAX_TXN_BODY:
        raise too_big
    try:
        body = await _read_body(request, MAX_TXN_BODY)
    except HTTPError:
        raise too_big from None
    ops = _parse_txn(body)
    auth = _authorize(request)
    tx = srv.store.begin()
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for i, op in enumerate(ops):
        try:
            results.extend(_run_op(tx, op, auth))
        except TxnFailed as exc:
            errors.append({"OpIndex": i, "What": str(exc)})
    headers = {"X-Consul-KnownLeader": "true", "X-Consul-LastContact": "0"}
    if errors:
        return _json({"Results": None, "Errors": errors}, status=409, headers=headers)
    await srv.durable(tx)
    return _json({"Results": results or None, "Errors": None}, headers=headers)


# ---- sessions ------------------------------------------------------------------------------------------------------
def _session_auth(request: web.Request) -> None:
    if not _authorize(request).can_session:
        raise _denied()


def _lock_delay_ns(value: Any) -> int:
    if value is None:
        return 15_000_000_000
    if isinstance(value, (int, float)):
        # Consul: small numbers are seconds, large ones nanoseconds
        return int(value * 1e9) if value < 1000 else int(value)
    try:
        return int(parse_go_duration(str(value)) * 1e9)
    except ValueError:
        raise HTTPError(400, f"Request decode failed: invalid LockDelay {value!r}") from None


async def session_create(request: web.Request) -> web.StreamResponse:
    srv = _server(request)
    _session_auth(request)
    body = await _read_body(request, 64 * 1024)
    try:
        doc = json.loads(body) if body.strip() else {}
    except ValueError as exc:
        raise HTTPError(400, f"Request decode failed: {exc}") from None
    if not isinstance(doc, dict):
        raise HTTPError(400, "Request decode failed: expected a JSON object")
    behavior = _ci(doc, "Behavior") or "release"
    if behavior not in ("release", "delete"):
        raise HTTPError(400, f"Invalid Behavior setting '{behavior}'")
    ttl_text = _ci(doc, "TTL") or ""
    if ttl_text:
        try:
            ttl = parse_go_duration(str(ttl_text))
        except ValueError:
            raise HTTPError(400, f"Request decode failed: invalid TTL {ttl_text!r}") from None
        if ttl != 0 and not (srv.session_ttl_min <= ttl <= 86400):
            raise HTTPError(
                400,
                f"Invalid Session TTL '{ttl_text}', must be between "
                f"[{format_go_duration(srv.session_ttl_min)}={format_go_duration(86400)}]",
            )
        ttl_text = format_go_duration(ttl) if ttl else ""
    node = _ci(doc, "Node") or srv.node_name
    tx = srv.store.begin()
    sess = Session(
        id=srv.store.new_session_id(), name=str(_ci(doc, "Name") or ""), node=node,
        lock_delay_ns=_lock_delay_ns(_ci(doc, "LockDelay")), behavior=behavior, ttl=ttl_text,
        create_index=tx.index, modify_index=tx.index,
        node_checks=list(_ci(doc, "NodeChecks") or _ci(doc, "Checks") or ["serfHealth"]),
        service_checks=list(_ci(doc, "ServiceChecks") or []),
    )
    tx.put_session(sess)
    await srv.durable(tx)
    srv._arm_ttl(sess)
    return _json({"ID": sess.id})


def _session_id(request: web.Request) -> str:
    sid = request.match_info.get("id", "")
    try:
        uuid.UUID(sid)
    except ValueError:
        raise HTTPError(400, f"Session id '{sid}' invalid") from None
    return sid


async def session_destroy(request: web.Request) -> web.StreamResponse:
    srv = _server(request)
    _session_auth(request)
    sid = _session_id(request)
    fut = srv.invalidate(sid)
    if fut is not None:
        await asyncio.shield(fut)
    return _json(True)


async def session_renew(request: web.Request) -> web.StreamResponse:
    srv = _server(request)
    _session_auth(request)
    sid = _session_id(request)
    sess = srv.store.sessions.get(sid)
    if sess is None:
        raise HTTPError(404, f"Session id '{sid}' not found")
    srv._arm_ttl(sess)
    return _json([sess.to_json()], headers=srv.meta_headers(srv.store.session_index))


async def _session_read(request: web.Request, pick: Callable[[Store], list[Session]]) -> web.StreamResponse:
    srv = _server(request)
    if not _authorize(request).can_session and srv.acl.enabled:
        raise _denied()

    def compute() -> ReadResult:
        return ReadResult(srv.store.session_index, 200, [s.to_json() for s in pick(srv.store)])

    result = await srv.blocking(request, SESSION_MARK, False, compute)
    return _json(result.body, headers=srv.meta_headers(result.index))


async def session_info(request: web.Request) -> web.StreamResponse:
    sid = _session_id(request)
    return await _session_read(request, lambda st: [st.sessions[sid]] if sid in st.sessions else [])


async def session_list(request: web.Request) -> web.StreamResponse:
    return await _session_read(request, lambda st: list(st.sessions.values()))


async def session_node(request: web.Request) -> web.StreamResponse:
    node = request.match_info["node"]
    return await _session_read(request, lambda st: [s for s in st.sessions.values() if s.node == node])


# ---- status / agent ------------------------------------------------------------------------------------------------
def _rpc_addr(request: web.Request) -> str:
    return "127.0.0.1:8300"


async def status_leader(request: web.Request) -> web.StreamResponse:
    return _json(_rpc_addr(request))


async def status_peers(request: web.Request) -> web.StreamResponse:
    return _json([_rpc_addr(request)])


async def agent_self(request: web.Request) -> web.StreamResponse:
    srv = _server(request)
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    port = sockname[1] if sockname else 8500
    config = {
        "Datacenter": srv.datacenter, "PrimaryDatacenter": srv.datacenter, "NodeName": srv.node_name,
        "NodeID": str(uuid.uuid5(uuid.NAMESPACE_DNS, srv.node_name)), "Server": True, "Revision": "deploykit",
        "Version": VERSION,
    }
    member = {
        "Name": srv.node_name, "Addr": "127.0.0.1", "Port": 8301, "Status": 1,
        "Tags": {"dc": srv.datacenter, "role": "consul", "port": "8300", "build": VERSION},
    }
    return _json({
        "Config": config, "DebugConfig": {**config, "HTTPPort": port}, "Coord": None, "Member": member,
        "Stats": {
            "kv": {"keys": str(len(srv.store.entries))},
            "blocking": {"waiting": str(srv.hub.waiting()), "wakeups": str(srv.hub.wakeups)},
        },
        "Meta": {"consul-network-segment": ""},
    })


async def catalog_datacenters(request: web.Request) -> web.StreamResponse:
    return _json([_server(request).datacenter])


# ---- app -----------------------------------------------------------------------------------------------------------
@web.middleware
async def _errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    try:
        dc = request.query.get("dc")
        if dc and dc != request.app[APP_KEY].datacenter:
            raise HTTPError(500, "No path to datacenter")
        return await handler(request)
    except HTTPError as exc:
        return web.Response(status=exc.status, text=exc.reason)
    except web.HTTPException:
        raise
    except Exception as exc:  # a bug: still answer like Consul, as plain text
        log.exception("consul: %s %s failed", request.method, request.path)
        return web.Response(status=500, text=f"internal error: {type(exc).__name__}")


def create_app(
    state_dir: Path,
    *,
    acl_tokens: Mapping[str, TokenRules] | None = None,
    default_policy: str = "allow",
    **options: Any,
) -> web.Application:
    """The Consul-compatible API as an aiohttp app, with its state recovered from `state_dir`.

    `acl_tokens` turns ACLs on: token -> "management" | "write" | "read" | "deny" or a
    {key prefix: level} dict; `default_policy` ("allow"/"deny") applies to requests without
    a token. Other options (tests and benchmarks): session_ttl_min, session_ttl_multiplier,
    tombstone_ttl, node_name, datacenter, fsync, compact_bytes. The server object is at
    `app[APP_KEY]`.
    """
    server = ConsulServer(Path(state_dir), acl_tokens=acl_tokens, default_policy=default_policy, **options)
    app = web.Application(middlewares=[_errors], client_max_size=2 * MAX_VALUE_SIZE)
    app[APP_KEY] = server

    async def lifecycle(_app: web.Application):
        await server.start()
        yield
        await server.stop()

    async def on_shutdown(_app: web.Application) -> None:
        server.release_waiters()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(on_shutdown)
    r = app.router
    r.add_get("/v1/kv/{key:.*}", kv_get)
    r.add_put("/v1/kv/{key:.*}", kv_put)
    r.add_delete("/v1/kv/{key:.*}", kv_delete)
    r.add_put("/v1/txn", txn)
    r.add_put("/v1/session/create", session_create)
    r.add_put("/v1/session/destroy/{id}", session_destroy)
    r.add_put("/v1/session/renew/{id}", session_renew)
    r.add_get("/v1/session/info/{id}", session_info)
    r.add_get("/v1/session/list", session_list)
    r.add_get("/v1/session/node/{node}", session_node)
    r.add_get("/v1/status/leader", status_leader)
    r.add_get("/v1/status/peers", status_peers)
    r.add_get("/v1/agent/self", agent_self)
    r.add_get("/v1/catalog/datacenters", catalog_datacenters)
    return app
