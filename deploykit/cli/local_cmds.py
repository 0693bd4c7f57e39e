"""`deploykit local up|down|status`: the devcluster (local Marathon + Consul) for the quick start and tests."""

from __future__ import annotations

from pathlib import Path

import click

from deploykit.cli.common import console, handle_errors, output_options

DEFAULT_STATE_DIR = Path(".deploykit/devcluster")


@click.group()
def local() -> None:
    """Run the local devcluster: a Marathon- and Consul-compatible server, a Docker engine and a registry.

    Docker apps run as containers in the local Docker engine; apps with only cmd/args as local processes.

    \b
    Examples:
      deploykit local up --detach
      deploykit local base-image
      deploykit local status
      deploykit local down
    """


def _state_dir_option(func):
    return click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_STATE_DIR,
                        show_default=True, help="Apps, versions, Consul data, sandboxes and the log live here.")(func)


def stop_command(state_dir: Path) -> str:
    """The `local down` that finds this devcluster: with --state-dir unless it is the default."""
    import shlex

    same = state_dir.resolve() == DEFAULT_STATE_DIR.resolve()
    return "deploykit local down" + ("" if same else f" --state-dir {shlex.quote(str(state_dir))}")


@local.command("up")
@click.option("--marathon-port", type=int, default=8080, show_default=True)
@click.option("--consul-port", type=int, default=8500, show_default=True, help="0 = no Consul API.")
@click.option("--zk", default=None, help="zk://host:2181/marathon: register as Marathon leader in ZooKeeper.")
@click.option("--hostname", default="127.0.0.1", show_default=True, help="Address advertised as the leader.")
@click.option("--event-heartbeat", default="10s", show_default=True, help="Event-stream heartbeat interval.")
@click.option("--registry-port", type=int, default=5000, show_default=True,
              help="Local docker-registry on 127.0.0.1 (the local environment's registry.url); 0 = none.")
@click.option("--docker/--no-docker", default=True, show_default=True,
              help="Use the Docker engine that answers, or start dockerd (as root) for Docker apps.")
@click.option("--detach", "-d", is_flag=True, help="Run in the background (log: <state-dir>/devcluster.log).")
@_state_dir_option
@output_options
@handle_errors("local up")
def up(marathon_port: int, consul_port: int, zk: str | None, hostname: str, event_heartbeat: str, registry_port: int,
       docker: bool, detach: bool, state_dir: Path, output: str, junit_path: str | None) -> dict | None:
    """Start the devcluster (in the foreground unless --detach), with a Docker engine and a registry.

    With no Docker engine answering, as root with dockerd installed, it starts one (and `local down`
    stops it again; an engine it did not start is never stopped).

    \b
    Examples:
      deploykit local up --detach
      deploykit local up --marathon-port 18080 --consul-port 18500 --registry-port 15000 --detach
      deploykit local up --zk zk://127.0.0.1:2181/marathon --marathon-port 8081 --registry-port 0
    """
    from deploykit.devcluster.control import UpOptions, up_detached, up_foreground

    opts = UpOptions(state_dir=state_dir, marathon_port=marathon_port, consul_port=consul_port, zk=zk,
                     hostname=hostname, event_heartbeat=event_heartbeat, registry_port=registry_port, docker=docker)
    if not detach:
        up_foreground(opts)
        return None
    info = up_detached(opts)
    info["stop"] = stop_command(state_dir)
    if output == "text":
        con = console()
        con.print(f"devcluster running (pid {info['pid']})")
        con.print(f"  Marathon: {info['marathon_url']}")
        if info["consul_url"]:
            con.print(f"  Consul:   {info['consul_url']}")
        con.print(f"  Docker:   {_engine_line(info)}")
        if info.get("registry"):
            con.print(f"  registry: {info['registry']['url']} (data in {info['registry']['data']})")
        con.print(f"  log:      {info['log']}")
        con.print(f"  stop it with: {stop_command(state_dir)}")
    return info


@local.command("down")
@_state_dir_option
@output_options
@handle_errors("local down")
def down(state_dir: Path, output: str, junit_path: str | None) -> dict:
    """Stop the devcluster of this state dir and its tasks (apps and versions are kept); exit 4 if none runs.

    \b
    Examples:
      deploykit local down
      deploykit local down --state-dir /tmp/dk-test -o json
    """
    from deploykit.devcluster.control import down as stop

    result = stop(state_dir)
    if output == "text":
        killed = " (killed after the timeout)" if result.get("forced") else ""
        msg = result.get("message") or f"devcluster stopped (pid {result['pid']}){killed}"
        con = console()
        con.print(msg)
        if result.get("containers_removed"):
            con.print(f"removed {result['containers_removed']} container(s) left by the devcluster")
        if result.get("registry_stopped"):
            con.print("stopped the local registry")
        if result.get("dockerd_stopped"):
            con.print("stopped the dockerd it had started")
    return result


def _engine_line(info: dict) -> str:
    engine = info.get("engine")
    if not engine:
        return f"none ({info.get('engine_error') or 'disabled'}); command apps still run, Docker apps fail"
    started = f", dockerd pid {engine['dockerd_pid']} started by deploykit" if engine.get("dockerd_pid") else ""
    return f"engine {engine['version']} at {engine['address']}{started}"


@local.command("base-image")
@click.option("--registry", "registry_host", default="127.0.0.1:5000", show_default=True,
              help="Registry (host:port) to push the base to.")
@output_options
@handle_errors("local base-image")
def base_image(registry_host: str, output: str, junit_path: str | None) -> dict:
    """Make the offline Python base image from Debian packages and push it (once) to a registry.

    Builds `deploykit/python:3.11` with mmdebstrap (python3 from this machine's Debian mirror),
    imports it into the Docker engine and pushes it as <registry>/deploykit/python:3.11, the
    default BASE of examples/hello's Dockerfile. Does nothing when the registry already has it.

    \b
    Examples:
      deploykit local base-image
      deploykit local base-image --registry 127.0.0.1:15000 -o json
    """
    from deploykit.clients.registry import RegistryClient
    from deploykit.devcluster.docker_engine import INSTALL_HINT, docker_cli, engine_version
    from deploykit.errors import UnreachableError
    from deploykit.image.base_image import BASE_REPO, BASE_TAG, ensure_base_image
    from deploykit.image.runner import Runner

    cli = docker_cli()
    if cli is None or engine_version() is None:
        raise UnreachableError(f"no Docker engine answers: {INSTALL_HINT}")
    client = RegistryClient(registry_host, insecure=True)
    con = console(stderr=True) if output == "json" else console()
    ref = ensure_base_image(registry_host, cli, runner=Runner(),
                            registry_has=lambda: client.manifest_digest(BASE_REPO, BASE_TAG) is not None,
                            log=con.print)
    return {"image": ref, "digest": client.manifest_digest(BASE_REPO, BASE_TAG)}


@local.command("status")
@click.option("--marathon-url", default=None, help="Ask this server instead of the one recorded in --state-dir.")
@_state_dir_option
@output_options
@handle_errors("local status")
def status(marathon_url: str | None, state_dir: Path, output: str, junit_path: str | None) -> dict:
    """Show apps, tasks, health and ports of the running devcluster.

    \b
    Examples:
      deploykit local status
      deploykit local status --marathon-url http://127.0.0.1:18080 -o json
    """
    from deploykit.devcluster.control import not_running_message, runtime_info
    from deploykit.devcluster.control import status as get_status
    from deploykit.errors import UnreachableError

    if marathon_url is not None:
        _check_url(marathon_url)
    else:
        info = runtime_info(state_dir)
        if info is None:
            raise UnreachableError(not_running_message(state_dir))
        marathon_url = info["marathon_url"]
    doc = get_status(marathon_url, state_dir)
    if output == "text":
        _print_status(doc)
    return doc


def _check_url(url: str) -> None:
    from urllib.parse import urlsplit

    from deploykit.errors import Problem, ValidationError

    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0
    except ValueError:  # .port raises for a port that is not a number or out of range
        ok = False
    if not ok:
        raise ValidationError([Problem(None, "--marathon-url", f"{url!r} is not an http(s) URL",
                                       "e.g. http://127.0.0.1:8080")])


def _print_status(doc: dict) -> None:
    from rich.table import Table

    con = console()
    con.print(f"Marathon {doc['marathon_url']} (leader {doc['leader']}), {len(doc['apps'])} app(s)")
    engine = doc.get("engine") or {}
    by_us = ", started by deploykit" if engine.get("started_by_deploykit") else ""
    con.print(f"Docker engine {engine.get('version')} at {engine.get('address')}{by_us}" if engine.get("answers")
              else f"Docker engine: none answers at {engine.get('address')} (Docker apps cannot run)")
    reg = doc.get("registry")
    con.print(f"registry {reg['url']} ({'up' if reg['answers'] else 'NOT answering'})" if reg else "registry: none")
    table = Table(show_lines=False)
    for col in ("app", "run/inst", "healthy", "task", "state", "health", "ports", "svc ports", "container"):
        table.add_column(col, overflow="fold")
    for app in doc["apps"]:
        tasks = app.get("tasks") or [None]
        for i, t in enumerate(tasks):
            head = [app["id"], f"{app['tasksRunning']}/{app['instances']}", str(app["tasksHealthy"])] if i == 0 \
                else ["", "", ""]
            if t is None:
                table.add_row(*head, "-", "-", "-", "-", "-", "-")
                continue
            results = t.get("healthCheckResults") or []
            health = ("healthy" if results and all(r["alive"] for r in results) else
                      "unhealthy" if results else ("-" if not app.get("healthChecks") else "unknown"))
            table.add_row(*head, t["id"].split(".instance-")[-1][:8], t["state"].removeprefix("TASK_").lower(),
                          health, ",".join(map(str, t["ports"])), ",".join(map(str, t["servicePorts"])),
                          t.get("containerId") or "-")
    con.print(table)
    for d in doc["deployments"]:
        con.print(f"deployment {d['id']}: {', '.join(d['affectedApps'])} step {d['currentStep']}/{d['totalSteps']} "
                  f"{', '.join(a['action'] for a in d['currentActions'])}")
    for app in doc["apps"]:
        if app.get("lastTaskFailure"):
            f = app["lastTaskFailure"]
            con.print(f"last failure of {app['id']}: {f['state']} {f['message']} at {f['timestamp']}")
