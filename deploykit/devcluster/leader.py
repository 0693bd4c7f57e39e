"""Leader election the way Marathon does it, and what a standby does with requests.

Marathon elects its leader with Apache Curator's LeaderLatch on `<zk path>/leader-curator`:
each candidate creates an EPHEMERAL_SEQUENTIAL node `_c_<uuid>-latch-<seq>` holding its
`host:port`; the lowest sequence number leads. We create the same nodes with kazoo, so
any tool that reads Marathon's leader from ZooKeeper finds us. kazoo runs its own threads;
every state change is handed to the asyncio loop with call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable

import aiohttp
from aiohttp import web
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from deploykit.devcluster.util import parse_zk_url

log = logging.getLogger(__name__)

LATCH_SUFFIX = "-curator"


def _seq(name: str) -> int:
    return int(name.rsplit("-", 1)[-1]) if name.rsplit("-", 1)[-1].isdigit() else 1 << 62


class LeaderLatch:
    """A Curator-compatible LeaderLatch participant.

    `on_change(is_leader, reason)` runs on the loop after every look at the latch (reason "check"),
    when the ZooKeeper session is lost ("lost") and on abdication ("abdicate"); the node decides
    what a change means (a lost session suspends, another leader stops our tasks).
    """

    def __init__(self, zk_url: str, ident: str, loop: asyncio.AbstractEventLoop,
                 on_change: Callable[[bool, str], None], session_timeout: float = 10.0) -> None:
        hosts, root = parse_zk_url(zk_url)
        self.latch_path = f"{root}/leader{LATCH_SUFFIX}"
        self.ident = ident
        self.loop = loop
        self.on_change = on_change
        self.client = KazooClient(hosts=hosts, timeout=session_timeout)
        self.leader_ident: str | None = None
        self.is_leader = False
        self._node: str | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._lost = False

    def start(self, timeout: float = 15.0) -> None:
        self.client.add_listener(self._state_listener)
        self.client.start(timeout=timeout)
        self._join()

    def _join(self) -> None:
        prefix = f"{self.latch_path}/_c_{uuid.uuid4()}-latch-"
        path = self.client.create(prefix, self.ident.encode(), ephemeral=True, sequence=True, makepath=True)
        with self._lock:
            self._node = path.rsplit("/", 1)[-1]
        log.info("joined leader latch as %s", path)
        self._check()

    def _check(self, *_args) -> None:
        """Re-read the participants; watch the children so any change re-runs this."""
        if self._closed:
            return
        try:
            children = self.client.get_children(self.latch_path, watch=self._on_watch)
            ordered = sorted((c for c in children if "latch-" in c), key=_seq)
            leader_ident = None
            if ordered:
                try:
                    data, _ = self.client.get(f"{self.latch_path}/{ordered[0]}")
                    leader_ident = data.decode()
                except NoNodeError:
                    self.client.handler.spawn(self._check)
                    return
        except (KazooException, KazooTimeoutError) as exc:
            log.warning("leader latch read failed: %s", exc)
            return
        with self._lock:
            self.leader_ident = leader_ident
            mine = bool(ordered) and ordered[0] == self._node
        self._set_leader(mine, "check")

    def _on_watch(self, _event) -> None:
        self.client.handler.spawn(self._check)

    def _set_leader(self, value: bool, reason: str) -> None:
        self.is_leader = value
        if not self._closed:
            self.loop.call_soon_threadsafe(self.on_change, value, reason)

    def _state_listener(self, state: str) -> None:
        if state == KazooState.LOST:
            log.warning("ZooKeeper session lost: giving up leadership")
            with self._lock:
                self._node = None
                self._lost = True
            self._set_leader(False, "lost")
        elif state == KazooState.SUSPENDED:
            log.warning("ZooKeeper connection suspended")
        elif state == KazooState.CONNECTED and not self._closed:
            with self._lock:
                rejoin, self._lost = self._lost, False
            if rejoin:
                self.client.handler.spawn(self._rejoin)

    def _rejoin(self) -> None:
        try:
            self._join()
        except (KazooException, KazooTimeoutError) as exc:
            log.error("could not rejoin the leader latch: %s", exc)

    def abdicate(self) -> None:
        """Leave the latch and join again at the end of the line (DELETE /v2/leader)."""
        with self._lock:
            node, self._node = self._node, None
        self._set_leader(False, "abdicate")
        if node:
            with contextlib.suppress(NoNodeError):
                self.client.delete(f"{self.latch_path}/{node}")
        self._join()

    def stop(self) -> None:
        self._closed = True
        try:
            self.client.stop()
            self.client.close()
        except KazooException:
            pass


# --- standby behaviour --------------------------------------------------------------------------------------
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host", "upgrade",
        "proxy-connection", "te", "trailer"}


def _bad_gateway(reason: str) -> web.Response:
    return web.Response(
        status=502, reason=reason, content_type="text/html",
        text=f"<html><head><title>Error 502 {reason}</title></head><body><h2>HTTP ERROR 502</h2>"
             f"<p>Reason:<pre>    {reason}</pre></p></body></html>",
    )


def leader_middleware(node) -> Callable:
    """Leader: add X-Marathon-Leader. Standby: proxy to the leader (302 for /v2/events), as Marathon does."""

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        if node.is_leader:
            resp = await handler(request)
            if not resp.prepared:
                resp.headers["X-Marathon-Leader"] = f"http://{node.ident}"
                resp.headers["X-Frame-Options"] = "DENY"
                resp.headers["X-XSS-Protection"] = "1; mode=block"
            return resp
        via = f"1.1 {node.ident}"
        if via in request.headers.getall("X-Marathon-Via", []):
            return _bad_gateway("Detected proxying loop.")
        leader = None
        for _ in range(10):
            leader = node.current_leader()
            if leader and leader != node.ident:
                break
            if node.is_leader:
                return await middleware(request, handler)
            leader = None
            await asyncio.sleep(0.25)
        if leader is None:
            return _bad_gateway("Could not determine the current leader")
        target = f"http://{leader}{request.path_qs}"
        if request.path.startswith("/v2/events"):
            raise web.HTTPFound(target)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        headers["X-Marathon-Via"] = via
        headers["X-Forwarded-For"] = request.remote or ""
        try:
            async with node.proxy_session.request(request.method, target, headers=headers,
                                                  data=await request.read(), allow_redirects=False) as up:
                body = await up.read()
                out = web.Response(status=up.status, reason=up.reason, body=body)
                for k, v in up.headers.items():
                    if k.lower() not in _HOP:
                        out.headers.add(k, v)
                out.headers["X-Marathon-Via"] = via
                return out
        except (aiohttp.ClientError, OSError):
            return _bad_gateway("Connection to leader refused.")

    return middleware
