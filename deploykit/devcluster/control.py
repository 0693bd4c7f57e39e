"""Start, stop and inspect a devcluster from the command line (`deploykit local up|down|status`).

`up --detach` starts `python -m deploykit.devcluster` in its own session, logging to
`<state dir>/devcluster.log`, and records `{pid, urls, engine, registry}` in
`<state dir>/devcluster.json` so `down` and `status` find it. Before the server, `up` makes
sure of what the pipeline needs: a Docker engine (the one that answers, or a dockerd it starts
as root and `down` stops again) and a local registry at `--registry-port`. Without an engine
the devcluster still runs command apps; Docker apps then fail with a message naming what to install.
Talks HTTP with the standard library only: this runs in
the CLI process, where the devcluster's aiohttp stack is not wanted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from deploykit.atomicfile import atomic_write
from deploykit.devcluster.util import pid_alive
from deploykit.errors import LockedError, Problem, RemoteError, UnreachableError, ValidationError

RUNTIME_FILE = "devcluster.json"
LOG_FILE = "devcluster.log"


@dataclass
class UpOptions:
    state_dir: Path
    marathon_port: int = 8080
    consul_port: int = 8500
    zk: str | None = None
    hostname: str = "127.0.0.1"
    event_heartbeat: str = "10s"
    registry_port: int = 5000  # 0 = no registry
    docker: bool = True  # False: do not look for (or start) a Docker engine

    def problems(self) -> list[Problem]:
        """Everything wrong with the options, found before anything starts."""
        from deploykit.devcluster.util import parse_zk_url, port_free, port_holder
        from deploykit.durations import parse_seconds

        out: list[Problem] = []
        ports = {"--marathon-port": self.marathon_port, "--consul-port": self.consul_port,
                 "--registry-port": self.registry_port}
        leftover = (_recorded(self.state_dir) or {}).get("registry") or {}  # ours, left by a crash: restarted
        for flag, port in ports.items():
            if flag != "--marathon-port" and port == 0:
                continue
            if flag == "--registry-port" and leftover.get("url") == f"127.0.0.1:{port}" and pid_alive(
                    int(leftover.get("pid") or 0)):
                continue
            if not 0 < port < 65536:
                out.append(Problem(None, flag, f"{port} is not a TCP port", hint="use 1-65535"))
            elif not port_free("127.0.0.1", port):
                holder = port_holder(port)
                by = f" by {holder}" if holder else ""
                out.append(Problem(None, flag, f"port {port} is already in use on 127.0.0.1{by}",
                                   hint=f"stop it, or pick another one, e.g. {flag} {port + 10}"))
        if self.consul_port and self.consul_port == self.marathon_port:
            out.append(Problem(None, "--consul-port", "the Consul port must differ from the Marathon port"))
        if self.registry_port and self.registry_port in (self.marathon_port, self.consul_port):
            out.append(Problem(None, "--registry-port", "the registry port must differ from the API ports"))
        if self.registry_port:
            import shutil

            if shutil.which("docker-registry") is None:
                out.append(Problem(None, "--registry-port", "docker-registry is not installed",
                                   hint="apt-get install docker-registry, or --registry-port 0 for no registry"))
        if self.zk:
            try:
                parse_zk_url(self.zk)
            except ValueError as exc:
                out.append(Problem(None, "--zk", str(exc), hint="e.g. --zk zk://127.0.0.1:2181/marathon"))
        try:
            if parse_seconds(self.event_heartbeat) <= 0:
                raise ValueError
        except ValueError:
            out.append(Problem(None, "--event-heartbeat", f"{self.event_heartbeat!r} is not a positive duration",
                               hint="e.g. 10s or 500ms"))
        return out

    def argv(self, log_file: bool = True) -> list[str]:
        argv = ["--marathon-port", str(self.marathon_port), "--consul-port", str(self.consul_port),
                "--state-dir", str(self.state_dir), "--hostname", self.hostname,
                "--event-heartbeat", self.event_heartbeat]
        if log_file:
            argv += ["--log-file", str(self.state_dir / LOG_FILE)]
        if self.zk:
            argv += ["--zk", self.zk]
        return argv


def _recorded(state_dir: Path) -> dict | None:
    try:
        return json.loads((state_dir / RUNTIME_FILE).read_text())
    except (OSError, ValueError):
        return None


def runtime_info(state_dir: Path) -> dict | None:
    """The recorded process of this state dir, if it is still alive."""
    info = _recorded(state_dir)
    try:
        if info is None or not pid_alive(int(info["pid"])):
            return None
    except (ValueError, KeyError, TypeError):
        return None
    return info


def not_running_message(state_dir: Path) -> str:
    """Where `down`/`status` looked, and how to name the devcluster that was meant."""
    return (f"no devcluster running for state dir {state_dir.resolve()} (looked for {state_dir / RUNTIME_FILE}); "
            "one started with `local up --state-dir D` is found with the same --state-dir D "
            "(start one: deploykit local up --detach)")


def _record(opts: UpOptions, pid: int, services: dict) -> dict:
    info = {"pid": pid, "marathon_url": f"http://{opts.hostname}:{opts.marathon_port}",
            "consul_url": f"http://{opts.hostname}:{opts.consul_port}" if opts.consul_port else None,
            "zk": opts.zk, "state_dir": str(opts.state_dir.resolve()), "log": str(opts.state_dir / LOG_FILE),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **services}
    atomic_write(opts.state_dir / RUNTIME_FILE, json.dumps(info, indent=2))
    return info


def start_services(opts: UpOptions) -> dict:
    """The Docker engine and the registry the pipeline needs, before the server starts.

    An engine we started earlier and that still runs (the devcluster crashed) stays ours, so
    `down` stops it; a registry left running by a crash is stopped and started again.
    """
    from deploykit.devcluster import docker_engine
    from deploykit.devcluster.local_registry import start_registry, stop_registry

    previous = _recorded(opts.state_dir) or {}
    services: dict = {"engine": None, "engine_error": None, "registry": None}
    if opts.docker:
        old = (previous.get("engine") or {}).get("dockerd_pid")
        try:
            engine = docker_engine.ensure_engine(opts.state_dir / "dockerd.log")
            if engine.pid is None and old and pid_alive(int(old)):
                engine.pid = int(old)
            services["engine"] = engine.to_json()
        except RuntimeError as exc:
            services["engine_error"] = str(exc)
    old_registry = (previous.get("registry") or {}).get("pid")
    if old_registry:
        stop_registry(int(old_registry))
    if opts.registry_port:
        try:
            services["registry"] = start_registry(opts.state_dir, opts.registry_port)
        except RuntimeError as exc:
            stop_services({**services, "registry": None})
            raise UnreachableError(str(exc)) from exc
    return services


def stop_services(info: dict) -> dict:
    """Stop what start_services started: the registry, and dockerd only if we started it."""
    from deploykit.devcluster import docker_engine
    from deploykit.devcluster.local_registry import stop_registry

    out = {"registry_stopped": False, "dockerd_stopped": False}
    registry = info.get("registry") or {}
    if registry.get("pid"):
        stop_registry(int(registry["pid"]))
        out["registry_stopped"] = True
    pid = (info.get("engine") or {}).get("dockerd_pid")
    if pid and pid_alive(int(pid)):
        docker_engine.stop_dockerd(int(pid))
        out["dockerd_stopped"] = True
    return out


def _refuse_if_running(opts: UpOptions) -> None:
    """Also validates the options: nothing is started with a bad port, URL or duration (exit 2)."""
    running = runtime_info(opts.state_dir)
    if running:
        raise LockedError(f"a devcluster already runs for {opts.state_dir} (pid {running['pid']}, "
                          f"{running['marathon_url']}); stop it with "
                          f"`deploykit local down --state-dir {opts.state_dir}`")
    problems = opts.problems()
    if problems:
        raise ValidationError(problems)


def up_detached(opts: UpOptions, timeout: float = 30.0) -> dict:
    """Start the services and the server in the background; wait until Marathon answers /ping."""
    _refuse_if_running(opts)
    opts.state_dir.mkdir(parents=True, exist_ok=True)
    services = start_services(opts)
    try:
        return _start_server(opts, services, timeout)
    except BaseException:
        stop_services(services)
        raise


def _start_server(opts: UpOptions, services: dict, timeout: float) -> dict:
    log_path = opts.state_dir / LOG_FILE
    # stderr (the log, and any traceback) goes straight to the log file
    with open(os.devnull, "rb") as devnull, open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "deploykit.devcluster", *opts.argv(log_file=False)],
                                stdin=devnull, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    info = _record(opts, proc.pid, services)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            (opts.state_dir / RUNTIME_FILE).unlink(missing_ok=True)
            raise UnreachableError(f"the devcluster exited at start (code {proc.returncode}); "
                                   f"last log lines:\n{_tail(log_path)}")
        if _ping(info["marathon_url"]):
            return info
        time.sleep(0.1)
    raise UnreachableError(f"the devcluster did not answer on {info['marathon_url']} within {timeout:.0f}s; "
                           f"see {log_path}")


def up_foreground(opts: UpOptions) -> int:
    """Run the server in this process until Ctrl-C / SIGTERM."""
    _refuse_if_running(opts)
    from deploykit.cli.servers import devcluster_main
    from deploykit.devcluster import docker_engine

    opts.state_dir.mkdir(parents=True, exist_ok=True)
    services = start_services(opts)
    _record(opts, os.getpid(), services)
    try:
        return devcluster_main(opts.argv())
    finally:
        docker_engine.remove_devcluster_containers(opts.state_dir)
        stop_services(services)
        (opts.state_dir / RUNTIME_FILE).unlink(missing_ok=True)


def down(state_dir: Path, timeout: float = 30.0) -> dict:
    """SIGTERM the recorded server (it stops its tasks), SIGKILL after `timeout`; then remove any
    container still labelled with this state dir (a crash leaves them running), stop the registry
    and the dockerd we started. Also cleans up after a server that died."""
    from deploykit.devcluster import docker_engine

    recorded = _recorded(state_dir) or {}
    info = runtime_info(state_dir)
    result: dict = {"stopped": False}
    if info is None:
        result["message"] = not_running_message(state_dir)
    else:
        pid = int(info["pid"])
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.1)
        forced = pid_alive(pid)
        if forced:
            os.kill(pid, signal.SIGKILL)
        result = {"stopped": True, "pid": pid, "forced": forced, "marathon_url": info["marathon_url"]}
    result["containers_removed"] = docker_engine.remove_devcluster_containers(state_dir)
    result.update(stop_services(recorded))
    cleaned = result["containers_removed"] or result["registry_stopped"] or result["dockerd_stopped"]
    if info is None and not cleaned:  # exit 4 like `local status`: exit 0 let a cluster elsewhere run on unnoticed
        (state_dir / RUNTIME_FILE).unlink(missing_ok=True)
        raise UnreachableError(result["message"])
    (state_dir / RUNTIME_FILE).unlink(missing_ok=True)
    return result


def status(marathon_url: str, state_dir: Path | None = None) -> dict:
    """Apps with their tasks, health and containers; running deployments; the engine and registry."""
    from deploykit.devcluster import docker_engine
    from deploykit.devcluster.local_registry import registry_answers

    apps = _get(f"{marathon_url}/v2/apps?embed=apps.tasks&embed=apps.lastTaskFailure")["apps"]
    deployments = _get(f"{marathon_url}/v2/deployments")
    leader = _get(f"{marathon_url}/v2/leader").get("leader")
    doc = {"marathon_url": marathon_url, "leader": leader, "apps": apps, "deployments": deployments}
    version = docker_engine.engine_version()
    recorded = (_recorded(state_dir) or {}) if state_dir is not None else {}
    engine = recorded.get("engine") or {}
    doc["engine"] = {"address": docker_engine.engine_address(), "version": version, "answers": version is not None,
                     "started_by_deploykit": bool(engine.get("dockerd_pid"))}
    registry = recorded.get("registry")
    doc["registry"] = {**registry, "answers": registry_answers(registry["url"])} if registry else None
    if state_dir is not None and version:
        by_task = {c["task"]: c for c in docker_engine.devcluster_containers(state_dir)}
        for app in apps:
            for task in app.get("tasks") or []:
                c = by_task.get(task["id"])
                task["containerId"] = c["id"][:12] if c else None
    return doc


def _get(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        raise RemoteError(f"{url} answered {exc.code}", status=exc.code, body=body) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise UnreachableError(f"cannot reach the devcluster at {url}: {exc} (is it up? `deploykit local up`)") from exc


def _ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"

