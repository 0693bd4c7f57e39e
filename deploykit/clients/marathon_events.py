"""Reader for Marathon's event stream (`GET /v2/events`, server-sent events).

Shared by the deploy watcher and the HAProxy daemon, so it is general: it yields parsed
events plus a `Connected` marker after every (re)connect (no replay exists, so consumers
must resync from the REST API then), and it can run in a thread and be stopped.

Facts it is built on (marathon-api.md §7): the Accept header must be exactly
`text/event-stream` (anything else gets 405); a standby answers `/v2/events` with a 302 to
the leader, which we follow ourselves so credentials go along; the server sends a blank
line every 10 s as heartbeat, so a stream silent for longer than `silence_factor` x the
heartbeat interval is dead even if TCP says nothing (half-open connections after a
leader's host vanished). Each reconnect re-asks the leader provider, backing off
exponentially.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import requests

log = logging.getLogger(__name__)

REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class Connected:
    """Marker: the stream is (re)connected to `url`. Events before it may have been missed."""

    url: str
    reconnect: bool


@dataclass(frozen=True)
class Event:
    type: str
    data: dict = field(default_factory=dict)


class SSEParser:
    """Incremental text/event-stream parser: feed bytes, get complete (event, data) pairs."""

    def __init__(self) -> None:
        self._buf = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        self._buf += chunk
        out: list[tuple[str, str]] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                break
            line = self._buf[:nl].rstrip(b"\r").decode("utf-8", "replace")
            self._buf = self._buf[nl + 1 :]
            if not line:
                if self._data:
                    out.append((self._event or "message", "\n".join(self._data)))
                self._event, self._data = "", []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                self._event = value
            elif name == "data":
                self._data.append(value)
        return out


class EventStream:
    """Iterate to receive `Connected` markers and `Event`s until `stop()`.

    `urls` is a leader provider (callable returning base URLs, best first).
    """

    def __init__(
        self,
        urls: Callable[[], Sequence[str]],
        *,
        event_types: Sequence[str] | None = None,
        auth: tuple[str, str] | None = None,
        heartbeat_interval: float = 10.0,
        silence_factor: float = 2.0,
        connect_timeout: float = 3.05,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
        session: requests.Session | None = None,
    ):
        self._urls = urls
        self._event_types = list(event_types or [])
        self._auth = auth
        self.silence_timeout = heartbeat_interval * silence_factor
        self._connect_timeout = connect_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._session = session or requests.Session()
        self._stopped = threading.Event()
        self._resp: requests.Response | None = None
        self._lock = threading.Lock()
        self.connects = 0
        self.url: str | None = None
        self.last_error: str | None = None

    # -- control ---------------------------------------------------------------------
    def stop(self) -> None:
        """Stop iterating (from any thread); closes the open connection to unblock the reader."""
        self._stopped.set()
        with self._lock:
            resp = self._resp
        if resp is not None:
            # Closing the response would block on the reader thread's buffer lock until the
            # next heartbeat; shutting the socket down makes the blocked read return at once.
            _shutdown_socket(resp)

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def start_thread(self, sink: queue.Queue | None = None) -> tuple[threading.Thread, queue.Queue]:
        """Read in a daemon thread, putting markers and events on a queue (created if not given)."""
        q: queue.Queue = sink if sink is not None else queue.Queue()

        def run() -> None:
            for item in self:
                q.put(item)

        t = threading.Thread(target=run, name="marathon-events", daemon=True)
        t.start()
        return t, q

    # -- reading ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[Connected | Event]:
        delay = self._backoff_initial
        while not self._stopped.is_set():
            try:
                candidates = list(self._urls())
            except Exception as exc:  # the provider failing (ZooKeeper down) is one more reason to back off
                candidates = []
                self.last_error = f"no Marathon URL: {exc}"
            for base in candidates:
                if self._stopped.is_set():
                    return
                resp = self._open(base)
                if resp is None:
                    continue
                self.connects += 1
                delay = self._backoff_initial
                yield Connected(self.url or base, self.connects > 1)
                yield from self._read(resp)
                break
            if self._stopped.wait(delay):
                return
            delay = min(self._backoff_max, delay * 2)

    def _open(self, base: str) -> requests.Response | None:
        url = base.rstrip("/") + "/v2/events"
        params = [("event_type", t) for t in self._event_types]
        for _ in range(4):
            try:
                resp = self._session.get(
                    url,
                    params=params,
                    headers={"Accept": "text/event-stream"},
                    auth=self._auth,
                    stream=True,
                    allow_redirects=False,
                    timeout=(self._connect_timeout, self.silence_timeout),
                )
            except requests.RequestException as exc:
                self.last_error = f"{base}: {type(exc).__name__}"
                return None
            if resp.status_code in REDIRECTS and resp.headers.get("Location"):
                location = resp.headers["Location"]
                resp.close()
                # A standby points at the leader; keep our filters (the Location may or may not carry them).
                url = location.split("?", 1)[0]
                if not url.startswith("http"):
                    url = base.rstrip("/") + "/" + url.lstrip("/")
                if not url.endswith("/v2/events"):
                    url = url.rstrip("/") + "/v2/events"
                continue
            if resp.status_code != 200:
                self.last_error = f"{url}: HTTP {resp.status_code}"
                resp.close()
                return None
            with self._lock:
                self._resp = resp
            self.url = url.rsplit("/v2/events", 1)[0]
            if self._stopped.is_set():
                resp.close()
                return None
            return resp
        self.last_error = f"{base}: too many redirects"
        return None

    def _read(self, resp: requests.Response) -> Iterator[Event]:
        parser = SSEParser()
        raw = resp.raw
        try:
            while not self._stopped.is_set():
                chunk = raw.read1(65536) if hasattr(raw, "read1") else raw.read(1)
                if not chunk:
                    self.last_error = "stream closed by server"
                    return
                for etype, data in parser.feed(chunk):
                    try:
                        payload = json.loads(data)
                    except ValueError:
                        log.debug("skipping non-JSON event %s", etype)
                        continue
                    if not isinstance(payload, dict):
                        continue
                    yield Event(payload.get("eventType") or etype, payload)
        except Exception as exc:  # read timeout (silence) or connection reset: reconnect
            if not self._stopped.is_set():
                self.last_error = f"stream lost: {type(exc).__name__}"
                log.info("Marathon event stream lost (%s); reconnecting", type(exc).__name__)
        finally:
            with self._lock:
                self._resp = None
            resp.close()


def _shutdown_socket(resp: requests.Response) -> None:
    sock = None
    with contextlib.suppress(Exception):
        sock = resp.raw._connection.sock  # urllib3 2.x
    if sock is None:
        with contextlib.suppress(Exception):
            sock = resp.raw._fp.fp.raw._sock  # http.client response over socket.SocketIO
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    else:
        with contextlib.suppress(Exception):
            resp.close()
