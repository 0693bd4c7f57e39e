"""Prometheus metrics and /healthz for `deploykit lb run`.

Why its own registry: metrics are an injected object (no module globals), so tests and
benchmarks can run several daemons in one process, and /metrics shows only the daemon's own
series. The HTTP server is a small stdlib one because /healthz must answer from the
daemon's state, which prometheus_client's server cannot do.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from deploykit.errors import Problem, ValidationError

PREFIX = "deploykit_lb_"


class Metrics:
    """Every series the daemon exports, on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(PREFIX + "events_total", "Marathon events received, by type", ["type"], registry=r)
        self.reloads = Counter(PREFIX + "reloads_total", "HAProxy reloads, by result", ["result"], registry=r)
        self.runtime_commands = Counter(
            PREFIX + "runtime_commands_total", "Runtime API commands sent, by result", ["result"], registry=r
        )
        self.render_seconds = Histogram(
            PREFIX + "render_seconds",
            "Time to render haproxy.cfg",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.apply_seconds = Histogram(
            PREFIX + "event_to_applied_seconds",
            "From a change being seen to HAProxy having it",
            buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.apps_rejected = Gauge(PREFIX + "apps_rejected", "Apps skipped for invalid labels right now", registry=r)
        self.apps_rejected_total = Counter(
            PREFIX + "app_rejections_total", "Times an app was found invalid and skipped", registry=r
        )
        self.route_conflicts = Counter(
            PREFIX + "route_conflicts_total",
            "Times an app was refused a service port or vhost that another app holds", registry=r,
        )
        self.port_conflicts = Counter(
            PREFIX + "port_conflicts_total",
            "Service ports refused because another process on the LB host listens there", registry=r,
        )
        self.haproxy_restarts = Counter(
            PREFIX + "haproxy_restarts_total", "Times HAProxy was found not running and started again", registry=r,
        )
        self.leader_changes = Counter(PREFIX + "leader_changes_total", "Marathon leader changes seen", registry=r)
        self.last_sync = Gauge(
            PREFIX + "last_successful_sync_timestamp_seconds", "Unix time of the last full sync applied", registry=r
        )
        self.full_syncs = Counter(PREFIX + "full_syncs_total", "Full resyncs, by result", ["result"], registry=r)
        self.held_syncs = Counter(
            PREFIX + "held_syncs_total", "Full syncs held because they would remove too many servers", registry=r
        )
        self.servers = Gauge(PREFIX + "servers", "Servers routed right now", registry=r)
        self.backends = Gauge(PREFIX + "backends", "Backends in the routing model", registry=r)
        self.stream_connected = Gauge(PREFIX + "event_stream_connected", "1 while the event stream is up", registry=r)
        self.zk_connected = Gauge(PREFIX + "zookeeper_connected", "1 while the ZooKeeper session is up", registry=r)
        self.old_workers = Gauge(
            PREFIX + "haproxy_old_workers", "HAProxy workers still finishing connections after a reload", registry=r
        )
        self.config_rejected = Counter(
            PREFIX + "config_rejected_total", "Rendered configs haproxy -c refused (never loaded)", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def parse_metrics_addr(addr: str) -> tuple[str, int]:
    """`host:port` (host defaults to 127.0.0.1; port 0 picks a free one), or ValidationError naming the flag."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValidationError([Problem(None, "--metrics-addr", f"{addr!r} is not host:port",
                                       "e.g. 127.0.0.1:9090, :0 for a free port, '' for no metrics")])
    return host.strip("[]") or "127.0.0.1", int(port)


class MetricsServer:
    """Serves /metrics and /healthz on host:port in a daemon thread."""

    def __init__(self, addr: str, metrics: Metrics, health: Callable[[], tuple[bool, dict]]):
        host, port = parse_metrics_addr(addr)
        self.metrics = metrics
        self.health = health
        handler = self._handler()
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:  # in use (9090 is also Prometheus's own default), not ours, or no such address
            raise ValidationError([Problem(
                None, "--metrics-addr", f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                f"pick a free port (e.g. --metrics-addr {host}:0 picks one and logs it) or --metrics-addr ''"
                " to serve no metrics",
            )]) from None
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="lb-metrics", daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.startswith("/metrics"):
                    self._send(200, server.metrics.render(), CONTENT_TYPE_LATEST)
                elif self.path.startswith("/healthz"):
                    serving, detail = server.health()
                    ok = serving and not detail.get("degraded")
                    body = json.dumps({"ok": ok, **detail, "time": time.time()}).encode()
                    self._send(200 if serving else 503, body, "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # access logs would drown the daemon's own
                pass

        return Handler
