"""The event bus and Marathon's Server-Sent Events stream (`GET /v2/events`).

Framing follows Jetty's EventSource servlet as Marathon uses it: `event:` and `data:`
lines ending in CRLF, a blank line after each event, no `id:`/`retry:`, and a bare CRLF
heartbeat every `heartbeat` seconds. Each connection has its own bounded queue; a consumer
that falls too far behind is disconnected, as with `--event_stream_max_outstanding_messages`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from aiohttp import web

from deploykit.devcluster.util import iso_ms, wait_or_timeout

log = logging.getLogger(__name__)

# Marathon's --event_stream_max_outstanding_messages is 50, but its writers run on their own threads.
# Here one loop publishes whole bursts (10 tasks launched = 40+ events) before a writer runs, so the
# limit counts queued events per connection with more headroom.
MAX_OUTSTANDING = 1000


class EventBus:
    """Fan-out of events to SSE subscribers; publishing never blocks."""

    def __init__(self, max_outstanding: int = MAX_OUTSTANDING) -> None:
        self._subs: set[asyncio.Queue] = set()
        self.max_outstanding = max_outstanding
        self.published = 0

    def publish(self, event_type: str, **fields: Any) -> dict:
        event = {**fields, "eventType": event_type, "timestamp": iso_ms()}
        self.published += 1
        data = (f"event: {event_type}\r\ndata: {json.dumps(event, separators=(',', ':'))}\r\n\r\n").encode()
        for q in list(self._subs):
            if q.qsize() >= self.max_outstanding:
                self._subs.discard(q)
                q.put_nowait(None)  # tells the writer to close this slow connection
            else:
                q.put_nowait((event_type, data, time.monotonic()))
        return event

    def close_all(self) -> None:
        """End every open stream (server shutdown); their handlers return and connections close."""
        for q in list(self._subs):
            q.put_nowait(None)
        self._subs.clear()

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue()
        self._subs.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self._subs.discard(q)

    @property
    def subscribers(self) -> int:
        return len(self._subs)


async def stream_events(request: web.Request, bus: EventBus, heartbeat: float,
                        headers: dict[str, str] | None = None) -> web.StreamResponse:
    """Serve one SSE connection until the client goes away (`headers`: e.g. X-Marathon-Leader)."""
    if "text/event-stream" not in request.headers.getall("Accept", []):
        return web.Response(
            status=405, content_type="text/html",
            text="<html><body><h2>HTTP ERROR 405</h2><p>HTTP method GET is not supported by this URL</p></body></html>",
        )
    wanted = set(request.query.getall("event_type", []))
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream;charset=UTF-8",
                                                   **(headers or {})})
    resp.force_close()
    # Marathon (Jetty) streams without chunked encoding: the body simply ends when the connection
    # closes. aiohttp would chunk a body of unknown length; this instance flag turns that off.
    resp._length_check = False
    q = bus.subscribe()
    remote = request.remote or ""
    try:
        await resp.prepare(request)
        bus.publish("event_stream_attached", remoteAddress=remote)
        while True:
            got, item = await wait_or_timeout(q.get(), heartbeat)
            if not got:
                await resp.write(b"\r\n")
                continue
            if item is None:
                log.info("closing event stream of %s (slow consumer or shutdown)", remote)
                break
            batch = [item]
            while not q.empty():  # write a burst in one go
                batch.append(q.get_nowait())
            chunks = [data for (event_type, data, _) in (b for b in batch if b is not None)
                      if not wanted or event_type in wanted]
            if chunks:
                await resp.write(b"".join(chunks))
            if batch[-1] is None:
                log.info("closing event stream of %s (slow consumer or shutdown)", remote)
                break
    except ConnectionResetError:
        pass
    finally:
        bus.unsubscribe(q)
        with contextlib.suppress(Exception):
            bus.publish("event_stream_detached", remoteAddress=remote)
    return resp
