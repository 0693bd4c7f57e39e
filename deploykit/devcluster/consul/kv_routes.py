"""Consul's /v1/kv handlers: reads (blocking, recurse, keys, raw) and writes (cas, acquire/release, delete)."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from aiohttp import web

from deploykit.devcluster.consul.server import (
    MAX_VALUE_SIZE,
    HTTPError,
    ReadResult,
    _authorize,
    _denied,
    _flag,
    _json,
    _read_body,
    _server,
    _uint,
)
from deploykit.devcluster.consul.store import TxnFailed


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
