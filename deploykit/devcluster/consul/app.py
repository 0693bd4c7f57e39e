"""The Consul-compatible API as an aiohttp application: routes, the error middleware, status and agent answers.

Behaviour follows shared/reference/consul-kv-api.md (see deploykit.devcluster.consul.server for the
server state, kv_routes, txn_routes and session_routes for the handlers).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from deploykit.devcluster.consul.acl import TokenRules
from deploykit.devcluster.consul.kv_routes import kv_delete, kv_get, kv_put
from deploykit.devcluster.consul.server import (
    APP_KEY,
    MAX_VALUE_SIZE,
    VERSION,
    ConsulServer,
    HTTPError,
    _json,
    _server,
)
from deploykit.devcluster.consul.session_routes import (
    session_create,
    session_destroy,
    session_info,
    session_list,
    session_node,
    session_renew,
)
from deploykit.devcluster.consul.txn_routes import txn

log = logging.getLogger(__name__)


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
