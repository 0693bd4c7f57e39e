"""Benchmark: one task status event among 3,000 apps -> HAProxy Runtime API command sent.

Measures, in one run, the daemon's real path for an event: SSE reader thread -> queue ->
daemon loop -> GET /v2/apps/{id}?embed=app.tasks -> lb.model.apply_app -> lb.changes.diff ->
batched `set server` commands on the stats socket of a real HAProxy 2.6 holding all 3,000
backends. Marathon is a stand-in HTTP server (stdlib) serving a synthetic 3,000 x 5 state
(bench/gen_apps.py) and an event stream, because the devcluster cannot run 15,000 processes
on this machine. The clock starts when the stand-in writes the event to the stream, and stops
when the daemon has sent the runtime command (the stats socket answered).

    .venv/bin/python bench/lb_latency.py [--apps 3000] [--tasks 5] [--events 50]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import queue
import socket
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gen_apps import make_apps

from deploykit.clients.marathon import MarathonClient
from deploykit.lb.daemon import Daemon, DaemonOptions
from deploykit.lb.haproxy import HAProxy
from deploykit.lb.model import LbSettings
from deploykit.lb.render import Renderer
from deploykit.lb.source import LeaderSource, MarathonSource


def bench_templates(work: Path) -> Path:
    """The shipped templates minus HAProxy-side `check` on servers.

    HAProxy reserves one file descriptor per checked server; 3,000 apps x 8 slots need about
    28,000 and this machine's hard limit is 20,000 (not raisable in the container; the
    systemd unit sets LimitNOFILE). The daemon's work is the same with or without checks.
    """
    from deploykit.resources import data_dir

    out = work / "templates"
    out.mkdir()
    for f in data_dir("haproxy").iterdir():
        (out / f.name).write_text(f.read_text().replace("default-server check inter", "default-server inter"))
    return out


def bench_apps(n_apps: int, tasks: int) -> list[dict]:
    """gen_apps' state with every task on 127.0.0.1 and HAProxy checks slowed to once an hour.

    Checks against 15,000 unreachable 10.x addresses would load this shared 2-core machine
    and measure nothing about the daemon.
    """
    apps = make_apps(n_apps, tasks)["apps"]
    for app in apps:
        app["labels"]["DEPLOYKIT_0_CHECK_INTERVAL_MS"] = "3600000"
        for t in app["tasks"]:
            t["host"] = "127.0.0.1"
    return apps


class StandInMarathon:
    """Serves /v2/apps, /v2/apps/{id} and /v2/events from in-memory state (stdlib, threads)."""

    def __init__(self, apps: list[dict], heartbeat: float = 1.0):
        self.apps = {a["id"]: a for a in apps}
        self.heartbeat = heartbeat
        self.listeners: list[queue.Queue] = []
        self.lock = threading.Lock()
        self._full: bytes | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                # headers and body are separate writes; without this, Nagle + delayed ACK add 40 ms
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self):
                parts = urlsplit(self.path)
                if parts.path == "/v2/events":
                    return outer._events(self)
                if parts.path == "/v2/apps":
                    return self._json(outer.full_body())
                if parts.path.startswith("/v2/apps/"):
                    app = outer.apps.get("/" + unquote(parts.path[len("/v2/apps/") :]).strip("/"))
                    if app is None:
                        return self._json(b'{"message":"App does not exist"}', 404)
                    return self._json(json.dumps({"app": app}).encode())
                if parts.path in ("/v2/info", "/ping"):
                    return self._json(b'{"name":"stand-in"}')
                return self._json(b'{"message":"URI not found"}', 500)

            def _json(self, body: bytes, status: int = 200):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def full_body(self) -> bytes:
        with self.lock:
            if self._full is None:
                self._full = json.dumps({"apps": list(self.apps.values())}).encode()
            return self._full

    def set_app(self, app: dict) -> None:
        with self.lock:
            self.apps[app["id"]] = app
            self._full = None

    def emit(self, event_type: str, data: dict) -> float:
        """Queue an event for every stream; returns the time it was handed to the writers."""
        payload = {**data, "eventType": event_type}
        t = time.perf_counter()
        with self.lock:
            for q in self.listeners:
                q.put((event_type, payload))
        return t

    def _events(self, handler: BaseHTTPRequestHandler) -> None:
        q: queue.Queue = queue.Queue()
        with self.lock:
            self.listeners.append(q)
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream;charset=UTF-8")
        handler.send_header("Connection", "close")
        handler.end_headers()
        try:
            while True:
                try:
                    etype, payload = q.get(timeout=self.heartbeat)
                    handler.wfile.write(f"event: {etype}\r\ndata: {json.dumps(payload)}\r\n\r\n".encode())
                except queue.Empty:
                    handler.wfile.write(b"\r\n")
                handler.wfile.flush()
        except OSError:
            pass
        finally:
            with self.lock:
                self.listeners.remove(q)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=3000)
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--events", type=int, default=50)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    apps = bench_apps(args.apps, args.tasks)
    marathon = StandInMarathon(apps)
    work = Path(tempfile.mkdtemp(prefix="dk-lb-bench-"))
    settings = LbSettings(
        http_port=0 or _free_port(),
        bind_address="127.0.0.1",
        config=str(work / "haproxy.cfg"),
        master_socket=str(work / "master.sock"),
        stats_socket=str(work / "stats.sock"),
        state_file=str(work / "server-state"),
        groups=("external",),
        hard_stop_after="5s",
        maxconn=2000,
    )
    hap = HAProxy(
        settings.config,
        settings.master_socket,
        settings.stats_socket,
        settings.state_file,
        pidfile=work / "haproxy.pid",
        reload_timeout=60,
    )
    sink: queue.Queue = queue.Queue()
    leader = LeaderSource([marathon.url], sink=sink)
    source = MarathonSource(MarathonClient(leader.urls), leader, sink, heartbeat_interval=1.0)
    renderer = Renderer(bench_templates(work))
    daemon = Daemon(
        settings=settings,
        renderer=renderer,
        haproxy=hap,
        source=source,
        events=sink,
        options=DaemonOptions(resync_interval=3600, coalesce=0.05, tick=0.05),
    )

    sent_at: list[float] = []
    sent = threading.Event()
    real_run = hap.runtime.run

    def timed_run(commands):
        result = real_run(commands)
        sent_at.append(time.perf_counter())
        sent.set()
        return result

    hap.runtime.run = timed_run
    t0 = time.perf_counter()
    stop = threading.Event()
    thread = threading.Thread(target=lambda: _loop(daemon, stop), daemon=True)
    try:
        daemon.source.leader.start()
        daemon.source.start_stream()
        thread.start()
        while daemon.status.last_sync is None:
            if time.perf_counter() - t0 > 300:
                raise SystemExit("first sync did not finish in 300 s")
            time.sleep(0.05)
        first_sync = time.perf_counter() - t0
        time.sleep(1.0)  # let the start-up reload settle
        reloads_before = hap.show_proc().master.reloads
        latencies: list[float] = []
        ids = sorted(marathon.apps)
        for n in range(args.events):
            app = copy.deepcopy(marathon.apps[ids[(n * 37) % len(ids)]])
            task = app["tasks"][0]
            task["id"] = task["id"].replace("instance-", f"instance-{n:04d}")
            task["ports"] = [40000 + n]
            marathon.set_app(app)
            before = len(sent_at)
            sent.clear()
            t_event = marathon.emit(
                "status_update_event", {"appId": app["id"], "taskId": task["id"], "taskStatus": "TASK_RUNNING"}
            )
            if not sent.wait(5) or len(sent_at) == before:
                raise SystemExit(f"event {n}: no runtime command within 5 s")
            latencies.append((sent_at[before] - t_event) * 1000)
            time.sleep(0.02)
        reloads_after = hap.show_proc().master.reloads
    finally:
        stop.set()
        thread.join(timeout=5)
        source.stop()
        hap.started_by_us = True
        hap.stop()
        marathon.stop()
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(
        json.dumps(
            {
                "apps": args.apps,
                "tasks_per_app": args.tasks,
                "events": args.events,
                "first_full_sync_s": round(first_sync, 2),
                "event_to_runtime_command_ms": {
                    "p50": round(statistics.median(latencies), 2),
                    "p95": round(p95, 2),
                    "max": round(latencies[-1], 2),
                },
                "reloads_during_events": reloads_after - reloads_before,
                "cpu_count": os.cpu_count(),
            },
            indent=2,
        )
    )


def _loop(daemon: Daemon, stop: threading.Event) -> None:
    while not stop.is_set():
        daemon.step()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
