"""`deploykit lb run` wiring: a RunConfig (what the CLI parsed) -> the Daemon and its parts, run until stopped.

Kept apart from lb.daemon (the loop itself) so the loop can be built from injected parts in tests
and benchmarks; this module is the one place that connects the real clients.
"""

from __future__ import annotations

import json
import logging
import queue
from collections.abc import Callable
from dataclasses import dataclass

from deploykit.errors import Problem, ValidationError
from deploykit.lb.daemon import Daemon, DaemonOptions
from deploykit.lb.haproxy import HAProxy
from deploykit.lb.lbhost import unloadable_certificates
from deploykit.lb.metrics import Metrics
from deploykit.lb.settings import settings_from_environment
from deploykit.lb.source import MarathonSource

log = logging.getLogger("deploykit.lb")


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time, level, event, and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        doc.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


@dataclass
class RunConfig:
    """Everything `deploykit lb run` was given, validated by the CLI layer."""

    env_name: str = "local"
    env_dir: str | None = None
    marathon_urls: tuple[str, ...] = ()
    zk_url: str | None = None
    groups: tuple[str, ...] = ()
    haproxy_config: str | None = None
    template_dir: str | None = None
    metrics_addr: str | None = "127.0.0.1:9090"
    resync_interval: float = 60.0
    haproxy_bin: str | None = None
    heartbeat_interval: float = 10.0
    coalesce: float = 0.05
    remove_guard: float = 0.5
    stop_haproxy: bool = False


def run(cfg: RunConfig, *, ready: Callable[[Daemon], None] | None = None) -> None:
    """Build the daemon from `cfg` and run it until SIGTERM/SIGINT (signal handlers only set flags).

    Every input is validated (environment, zk URL, templates, settings) before anything starts.
    """
    import signal

    from deploykit.clients.marathon import MarathonClient
    from deploykit.envs import load_environment
    from deploykit.lb.render import renderer_for
    from deploykit.lb.source import LeaderSource

    env = load_environment(cfg.env_name, cfg.env_dir)
    settings = settings_from_environment(env, config_path=cfg.haproxy_config, groups=cfg.groups)
    bad_certs = unloadable_certificates(settings.ssl_certs)
    if bad_certs:  # the operator's: exit 2 before anything starts
        raise ValidationError([Problem(str(env.file), "default_attributes.deploykit.haproxy.ssl_certs",
                                       f"{path}: {why}") for path, why in bad_certs.items()])
    urls = list(cfg.marathon_urls) or [str(u) for u in env.marathon.urls]
    zk_url = cfg.zk_url if cfg.zk_url is not None else env.marathon.zk
    zk_target = None
    if zk_url:
        from deploykit.clients.zk import parse_zk_url

        zk_target = (
            parse_zk_url(zk_url, key="--zk")
            if cfg.zk_url
            else parse_zk_url(zk_url, source=str(env.file), key="default_attributes.deploykit.marathon.zk")
        )
    renderer = renderer_for(env, cfg.template_dir)
    binary = cfg.haproxy_bin or (env.haproxy.binary if env.haproxy else "haproxy")
    haproxy = HAProxy(
        settings.config, settings.master_socket, settings.stats_socket, settings.state_file, haproxy_bin=binary
    )
    password = env.marathon_password()
    auth = (env.marathon.auth.user, password) if env.marathon.auth and password else None

    metrics = Metrics()
    server = None
    if cfg.metrics_addr:  # bound first: a port in use is refused before ZooKeeper or HAProxy is touched
        from deploykit.lb.metrics import MetricsServer

        server = MetricsServer(cfg.metrics_addr, metrics, lambda: daemon.health())
    sink: queue.Queue = queue.Queue()
    zk_client = None
    if zk_target is not None:
        from deploykit.clients.zk import connect

        # Never give up on ZooKeeper: if it is down at start, serve from the URL list (or wait for a
        # leader) while kazoo keeps connecting in the background; the watcher reads the leader once it can.
        zk_client = connect(zk_target.hosts, timeout=3, wait=False)
        if not zk_client.connected:
            log.warning("zookeeper_unreachable", extra={"fields": {"hosts": zk_target.hosts, "using": urls}})
    leader = LeaderSource(urls, zk_client=zk_client, zk_path=zk_target.path if zk_target else None, sink=sink)
    client = MarathonClient(leader.urls, auth=auth)
    source = MarathonSource(client, leader, sink, heartbeat_interval=cfg.heartbeat_interval)
    daemon = Daemon(
        settings=settings,
        renderer=renderer,
        haproxy=haproxy,
        source=source,
        events=sink,
        metrics=metrics,
        options=DaemonOptions(
            resync_interval=cfg.resync_interval, coalesce=cfg.coalesce, remove_guard=cfg.remove_guard
        ),
    )
    if server is not None:
        server.start()
    signal.signal(signal.SIGTERM, daemon.request_stop)
    signal.signal(signal.SIGINT, daemon.request_stop)
    signal.signal(signal.SIGHUP, daemon.request_resync)
    daemon._log(
        "starting",
        env=env.name,
        marathon=urls,
        zk=str(zk_target) if zk_target else None,
        config=settings.config,
        groups=list(settings.groups),
        metrics=f"{cfg.metrics_addr.rpartition(':')[0]}:{server.port}" if server else None,
    )
    if ready is not None:
        ready(daemon)
    try:
        daemon.run()
    finally:
        if server is not None:
            server.stop()
        if zk_client is not None:
            zk_client.stop()
            zk_client.close()
        if cfg.stop_haproxy:
            haproxy.stop()
        client.close()
        daemon._log("stopped")
