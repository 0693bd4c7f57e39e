"""Where the daemon's Marathon state comes from: the leader (ZooKeeper or a URL list), full
snapshots, single apps, and the event stream, all delivered to one queue the daemon loop reads.

Why: the daemon must talk to the *leader* (a standby buffers or redirects the stream), follow
a failover as soon as ZooKeeper shows it, and resync fully after every (re)connect because
Marathon's stream has no replay. Threads here only read and enqueue; the daemon loop acts.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deploykit.clients.marathon import MarathonClient
from deploykit.clients.marathon_events import Connected, Event, EventStream
from deploykit.errors import RemoteError
from deploykit.lb.marathon_json import decode_apps

log = logging.getLogger(__name__)

# Events that can change what HAProxy routes. Everything else is ignored server-side.
EVENT_TYPES = (
    "status_update_event",
    "health_status_changed_event",
    "instance_health_changed_event",
    "instance_changed_event",
    "api_post_event",
    "app_terminated_event",
    "deployment_success",
    "deployment_failed",
    "deployment_step_success",
)


_NEVER = object()


@dataclass(frozen=True)
class LeaderChanged:
    """Queue item: ZooKeeper names a new Marathon leader ("host:port", or None while there is none)."""

    leader: str | None


@dataclass(frozen=True)
class ZkReconnected:
    """Queue item: the ZooKeeper session is back after a loss; resync in case we missed a failover."""


def apps_touched(event: Event) -> tuple[list[str], bool]:
    """App ids an event concerns, and whether only a full resync can be trusted (unknown scope)."""
    data = event.data
    t = event.type
    if t in ("status_update_event", "health_status_changed_event", "app_terminated_event"):
        app = data.get("appId")
        return ([app] if isinstance(app, str) else []), not isinstance(app, str)
    if t in ("instance_health_changed_event", "instance_changed_event"):
        app = data.get("runSpecId")
        return ([app] if isinstance(app, str) else []), not isinstance(app, str)
    if t == "api_post_event":
        app = (data.get("appDefinition") or {}).get("id")
        return ([app] if isinstance(app, str) else []), not isinstance(app, str)
    if t.startswith("deployment_"):
        plan = data.get("plan") or {}
        apps = []
        for step in plan.get("steps") or []:
            for action in step.get("actions") or []:
                if isinstance(action.get("app"), str):
                    apps.append(action["app"])
        return sorted(set(apps)), not apps
    return [], False


class LeaderSource:
    """Marathon base URLs, leader first: from a ZooKeeper watcher when given, else a fixed list.

    The ZooKeeper path keeps the last known leader while ZooKeeper is down (HAProxy keeps
    being fed by the current Marathon), and posts LeaderChanged / ZkReconnected to `sink`.
    """

    def __init__(
        self,
        urls: Sequence[str] = (),
        *,
        zk_client: Any = None,
        zk_path: str | None = None,
        scheme: str = "http",
        sink: queue.Queue | None = None,
    ):
        self.static = [u.rstrip("/") for u in urls]
        self._zk = zk_client
        self._zk_path = zk_path
        self._scheme = scheme
        self._sink = sink
        self._watcher = None
        self._lost = False
        self.leader: str | None = None

    @property
    def zk_connected(self) -> bool | None:
        return None if self._zk is None else bool(self._zk.connected)

    def urls(self) -> list[str]:
        first = [f"{self._scheme}://{self.leader}"] if self.leader else []
        return first + [u for u in self.static if u not in first]

    def start(self) -> LeaderSource:
        if self._zk is not None and self._zk_path:
            from deploykit.clients.zk import MarathonLeaderWatcher

            self._zk.add_listener(self._on_zk_state)
            self._watcher = MarathonLeaderWatcher(self._zk, self._zk_path, self._on_leader).start()
        return self

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._zk.remove_listener(self._on_zk_state)

    def _post(self, item: object) -> None:
        if self._sink is not None:
            self._sink.put(item)

    def _on_leader(self, leader: str | None) -> None:
        if leader is None and self.leader is not None:
            return  # no candidate registered right now: keep using the last leader until a new one shows
        if leader != self.leader:
            self.leader = leader
            self._post(LeaderChanged(leader))

    def _on_zk_state(self, state: str) -> None:  # kazoo thread: record only
        if state in ("LOST", "SUSPENDED"):
            self._lost = True
        elif state == "CONNECTED" and self._lost:
            self._lost = False
            self._post(ZkReconnected())


class MarathonSource:
    """Snapshots and single apps over REST, events over SSE into `sink` (Connected markers included)."""

    def __init__(
        self,
        client: MarathonClient,
        leader: LeaderSource,
        sink: queue.Queue,
        *,
        heartbeat_interval: float = 10.0,
        event_types: Sequence[str] = EVENT_TYPES,
    ):
        self.client = client
        self.leader = leader
        self.sink = sink
        self.heartbeat_interval = heartbeat_interval
        self.event_types = tuple(event_types)
        self._stream: EventStream | None = None
        self._thread: threading.Thread | None = None
        self._connected_error: object = _NEVER
        self._lock = threading.Lock()

    @property
    def stream_connects(self) -> int:
        stream = self._stream
        return stream.connects if stream is not None else 0

    def start_stream(self) -> None:
        """(Re)open the event stream on the current leader; a Connected marker follows on the queue."""
        with self._lock:
            old = self._stream
            if old is not None:
                old.stop()
            stream = EventStream(
                self.leader.urls,
                event_types=self.event_types,
                auth=self.client.auth,
                heartbeat_interval=self.heartbeat_interval,
            )
            self._stream = stream
            self._connected_error: object = _NEVER
            self._thread = threading.Thread(target=self._pump, args=(stream,), name="marathon-events", daemon=True)
            self._thread.start()

    def _pump(self, stream: EventStream) -> None:
        """Reader thread: forward markers and events; remember the stream's error text at each connect."""
        for item in stream:
            if isinstance(item, Connected) and stream is self._stream:
                self._connected_error = stream.last_error
            self.sink.put(item)

    @property
    def stream_connected(self) -> bool:
        """True while the stream opened last is up: connected, and no error recorded since.

        EventStream records every loss in `last_error` (a new string each time) and announces
        every (re)connect with a marker, so "the error now is the one seen at the last connect"
        means no loss since.
        """
        stream = self._stream
        return stream is not None and self._connected_error is not _NEVER and stream.last_error is self._connected_error

    def stop(self) -> None:
        with self._lock:
            if self._stream is not None:
                self._stream.stop()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    def snapshot(self) -> Sequence[Mapping[str, Any]]:
        """Every app with its tasks (GET /v2/apps?embed=apps.tasks), decoded by lb.marathon_json.

        The daemon's memory peak is the full snapshot (~50 MB of JSON at 10,000 apps x 5 tasks);
        decode_apps builds only the keys the model reads, a fraction of the whole document.
        """
        # apps.readiness: Marathon sends readinessCheckResults only when asked, and a task that
        # is not ready yet must not be routed during a deployment.
        resp = self.client.request("GET", "/v2/apps", params=[("embed", "apps.tasks"), ("embed", "apps.readiness")])
        assert resp is not None
        body = resp.content
        resp.close()
        try:
            return decode_apps(body)
        except ValueError as exc:  # not JSON, or not a list of apps: keep serving the last good config
            raise RemoteError(f"Marathon's /v2/apps answer is not a list of apps: {exc}") from exc

    def app(self, app_id: str) -> dict | None:
        """One app with its tasks, or None when Marathon no longer has it."""
        return self.client.get_app(app_id, embed=("app.tasks", "app.readiness"))


__all__ = [
    "EVENT_TYPES",
    "Connected",
    "Event",
    "LeaderChanged",
    "LeaderSource",
    "MarathonSource",
    "ZkReconnected",
    "apps_touched",
]
