"""Consul's /v1/session handlers: create (TTL, lock-delay, behavior), destroy, renew, info/list/node."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from deploykit.devcluster.consul.server import (
    SESSION_MARK,
    HTTPError,
    ReadResult,
    _authorize,
    _ci,
    _denied,
    _json,
    _read_body,
    _server,
)
from deploykit.devcluster.consul.store import Session, Store
from deploykit.durations import format_go_duration, parse_go_duration


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
