"""Benchmark: one task status event among 3,000 apps -> HAProxy Runtime API command sent.

Measures, in one run, the daemon's real path for an event: SSE reader thread -> queue ->
daemon loop -> GET /v2/apps/{id}?embed=app.tasks -> lb.model.apply_app -> lb.changes.diff ->
batched `set server` commands on the stats socket of a real HAProxy 2.6 holding all 3,000
backends. Marathon is a stand-in HTTP server (stdlib) serving a synthetic 3,000 x 5 state
(bench/gen_apps.py) and an event stream, because the devcluster cannot run 15,000 processes
on this machine. The clock starts when the stand-in writes the event to the stream, and stops
when the daemon has sent the runtime command (the stats socket answered).

    .venv/bin/python bench/lb_latency.py [--apps 3000] [--tasks 5] [--events 50]

With `--routing N` it measures the issue's second latency instead, with real pieces only: the
devcluster (real task processes and HTTP health checks), `deploykit lb run` as a subprocess
and its HAProxy. The app is scaled up one task at a time; the clock starts when the
devcluster's event stream delivers the new task's `health_status_changed_event` (alive) to
this script and stops when HAProxy's stats socket shows a server at that task's port enabled
and UP (`show servers state`, polled every 2 ms).

    .venv/bin/python bench/lb_latency.py --routing 20
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

import requests
from benchkit import free_port
from gen_apps import make_apps

from deploykit.clients.marathon import MarathonClient
from deploykit.lb.daemon import Daemon, DaemonOptions
from deploykit.lb.haproxy import HAProxy, socket_command
from deploykit.lb.render import Renderer
from deploykit.lb.settings import LbSettings
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


def routed_ports(stats_socket: Path, backend: str) -> set[int]:
    """Ports of servers in `backend` that are enabled (no maint) and UP."""
    out = set()
    for line in socket_command(stats_socket, f"show servers state {backend}").splitlines()[2:]:
        cols = line.split()
        if len(cols) > 18 and cols[5] == "2" and int(cols[6]) & 0x23 == 0:  # op RUNNING, no FMAINT/IMAINT/RMAINT
            out.add(int(cols[18]))
    return out


def routing_main(scale_ups: int) -> None:
    """New task healthy in the devcluster -> HAProxy routing to it, through the real `lb run`."""
    from tests.harness.devcluster import Devcluster, EventReader
    from tests.integration.test_lb_e2e import LbRun, put_app, settled, web_app

    work = Path(tempfile.mkdtemp(prefix="dk-lb-routing-"))
    dc = Devcluster(work / "dc").start()
    lb = None
    try:
        base = dc.marathon_url
        app_id = "/bench/web"
        put_app(base, web_app(app_id, "web.bench", 1))
        settled(base, app_id, 1)
        lb = LbRun(work / "lb", [base])
        lb.start()
        stats = lb.config.parent / "stats.sock"
        backend = "bench_web_0"
        events = EventReader(base, ["health_status_changed_event"])
        seen_at: dict[str, float] = {}
        stop = threading.Event()

        def watch() -> None:
            done = 0
            while not stop.is_set():
                evs = events.of_type("health_status_changed_event")
                for ev in evs[done:]:
                    if ev.get("alive") and ev.get("appId") == app_id:
                        seen_at.setdefault(ev["instanceId"], time.perf_counter())
                done = len(evs)
                time.sleep(0.001)

        threading.Thread(target=watch, daemon=True).start()
        latencies = []
        for n in range(2, scale_ups + 2):
            before = set(seen_at)
            put_app(base, web_app(app_id, "web.bench", n))
            deadline = time.monotonic() + 30
            while len(set(seen_at) - before) < 1 and time.monotonic() < deadline:
                time.sleep(0.001)
            new = sorted(set(seen_at) - before)
            if not new:
                raise SystemExit("no health event for the new task")
            t_healthy = seen_at[new[0]]
            app = requests.get(f"{base}/v2/apps{app_id}", params={"embed": "app.tasks"}, timeout=5).json()["app"]
            port = next(t["ports"][0] for t in app["tasks"] if t["id"].startswith(new[0]))
            while port not in routed_ports(stats, backend):
                if time.monotonic() > deadline:
                    raise SystemExit(f"task on port {port} never routed")
                time.sleep(0.002)
            latencies.append((time.perf_counter() - t_healthy) * 1000)
            settled(base, app_id, n)
        stop.set()
        events.close()
        reloads = lb.reloads()
    finally:
        if lb is not None:
            lb.stop()
        dc.stop()
    latencies.sort()
    print(
        json.dumps(
            {
                "scale_ups": len(latencies),
                "healthy_to_routed_ms": {
                    "p50": round(statistics.median(latencies), 1),
                    "p95": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
                    "max": round(latencies[-1], 1),
                },
                "reloads": reloads,
            },
            indent=2,
        )
    )


def _serve_standin(n_apps: int, tasks: int, conn) -> None:
    """Child process: the stand-in Marathon, driven over a pipe (so it never shares our GIL)."""
    marathon = StandInMarathon(bench_apps(n_apps, tasks))
    ids = sorted(marathon.apps)
    conn.send(marathon.url)
    while True:
        msg = conn.recv()
        if msg[0] == "stop":
            marathon.stop()
            return
        n = msg[1]
        app = copy.deepcopy(marathon.apps[ids[(n * 37) % len(ids)]])
        task = app["tasks"][0]
        task["id"] = task["id"].replace("instance-", f"instance-{n:04d}")
        task["ports"] = [40000 + n]
        marathon.set_app(app)
        conn.send(
            marathon.emit(
                "status_update_event", {"appId": app["id"], "taskId": task["id"], "taskStatus": "TASK_RUNNING"}
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=3000)
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument(
        "--routing",
        type=int,
        metavar="N",
        default=0,
        help="instead: time N scale-ups, new task healthy -> routed (devcluster + lb run)",
    )
    args = parser.parse_args()
    if args.routing:
        return routing_main(args.routing)
    logging.basicConfig(level=logging.WARNING)

    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    conn, child_conn = ctx.Pipe()
    child = ctx.Process(target=_serve_standin, args=(args.apps, args.tasks, child_conn), daemon=True)
    child.start()
    marathon_url = conn.recv()
    work = Path(tempfile.mkdtemp(prefix="dk-lb-bench-"))
    settings = LbSettings(
        http_port=0 or free_port(),
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
    leader = LeaderSource([marathon_url], sink=sink)
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
    fetch_ms: list[float] = []
    real_app = source.app

    def timed_app(app_id):
        t = time.perf_counter()
        try:
            return real_app(app_id)
        finally:
            fetch_ms.append((time.perf_counter() - t) * 1000)

    source.app = timed_app
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
        for n in range(args.events):
            before = len(sent_at)
            sent.clear()
            conn.send(("bump", n))
            t_event = conn.recv()  # CLOCK_MONOTONIC: comparable across processes
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
        conn.send(("stop",))
        child.join(10)
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
                "of_which_get_one_app_ms": {
                    "p50": round(statistics.median(fetch_ms), 2),
                    "p95": round(sorted(fetch_ms)[int(0.95 * (len(fetch_ms) - 1))], 2),
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


if __name__ == "__main__":
    main()
