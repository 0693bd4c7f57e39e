"""Consul's /v1/txn handler: up to 64 KV operations applied all-or-nothing, per-op errors on a rollback."""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

from aiohttp import web

from deploykit.devcluster.consul.acl import Authorizer
from deploykit.devcluster.consul.server import (
    MAX_TXN_BODY,
    MAX_TXN_OPS,
    MAX_VALUE_SIZE,
    HTTPError,
    _authorize,
    _ci,
    _json,
    _read_body,
    _server,
)
from deploykit.devcluster.consul.store import Entry, Tx, TxnFailed

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
