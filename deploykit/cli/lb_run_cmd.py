"""`deploykit lb run`: the HAProxy sync daemon (added to the `lb` group by deploykit.cli.lb_cmds)."""

from __future__ import annotations

import logging
import sys

import click

from deploykit.cli.common import env_options, handle_errors
from deploykit.errors import Problem, ValidationError


def _seconds(value: str, option: str) -> float:
    from deploykit.durations import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValidationError([Problem(None, option, str(exc), "e.g. 60s, 5m")]) from None


@click.command("run")
@env_options
@click.option("--marathon", "marathon_urls", multiple=True, help="Marathon URL (repeatable); default: the env file's.")
@click.option("--zk", "zk_url", default=None, help="zk://h1:2181,h2:2181/marathon to follow the leader; default: env.")
@click.option("--group", "groups", multiple=True, help="Route only apps in this HAPROXY_GROUP (repeatable).")
@click.option(
    "--haproxy-config",
    default=None,
    type=click.Path(dir_okay=False),
    help="haproxy.cfg to manage; sockets and the state file go next to it. Default: the env file's.",
)
@click.option(
    "--templates",
    "template_dir",
    default=None,
    type=click.Path(file_okay=False, exists=True),
    help="Folder with haproxy.cfg.j2 and backend.cfg.j2 (default: the shipped haproxy/).",
)
@click.option(
    "--metrics-addr",
    default="127.0.0.1:9090",
    show_default=True,
    help="host:port for /metrics and /healthz ('' to disable; port 0 picks a free one).",
)
@click.option("--resync-interval", default="60s", show_default=True, help="Full resync period.")
@click.option("--haproxy-bin", default=None, help="HAProxy binary (default: the env file's, else haproxy).")
@click.option(
    "--heartbeat-interval",
    default="10s",
    show_default=True,
    hidden=True,
    help="Marathon's event-stream heartbeat; silence past 2x means the stream is dead.",
)
@click.option("--coalesce", default="50ms", show_default=True, help="Window gathering a burst into one reload.")
@click.option(
    "--remove-guard",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Hold a sync removing more than this fraction of servers until a second one agrees.",
)
@click.option("--stop-haproxy", is_flag=True, help="Stop HAProxy on exit if this daemon started it.")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
@handle_errors("lb run")
def run(
    env_name: str,
    env_dir: str | None,
    marathon_urls: tuple[str, ...],
    zk_url: str | None,
    groups: tuple[str, ...],
    haproxy_config: str | None,
    template_dir: str | None,
    metrics_addr: str,
    resync_interval: str,
    haproxy_bin: str | None,
    heartbeat_interval: str,
    coalesce: str,
    remove_guard: float,
    stop_haproxy: bool,
    log_level: str,
) -> None:
    """Keep HAProxy in step with Marathon (leader from ZooKeeper, event stream, runtime API, reloads).

    \b
    Starts HAProxy (master-worker) itself when nothing answers on the master socket.
    Logs are JSON lines on stderr. SIGHUP: full resync. SIGTERM/SIGINT: clean stop.
    Example:
      deploykit lb run --env local --haproxy-config .deploykit/haproxy/haproxy.cfg
    """
    from deploykit.lb.metrics import parse_metrics_addr
    from deploykit.lb.run import JsonLineFormatter, RunConfig
    from deploykit.lb.run import run as run_daemon

    if metrics_addr:
        parse_metrics_addr(metrics_addr)

    cfg = RunConfig(
        env_name=env_name,
        env_dir=env_dir,
        marathon_urls=marathon_urls,
        zk_url=zk_url,
        groups=groups,
        haproxy_config=haproxy_config,
        template_dir=template_dir,
        metrics_addr=metrics_addr or None,
        resync_interval=_seconds(resync_interval, "--resync-interval"),
        haproxy_bin=haproxy_bin,
        heartbeat_interval=_seconds(heartbeat_interval, "--heartbeat-interval"),
        coalesce=_seconds(coalesce, "--coalesce"),
        remove_guard=remove_guard,
        stop_haproxy=stop_haproxy,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, log_level.upper()))
    run_daemon(cfg)
