"""Start, stop and inspect a devcluster from the command line (`deploykit local up|down|status`).

`up --detach` starts `python -m deploykit.devcluster` in its own session, logging to
`<state dir>/devcluster.log`, and records `{pid, urls}` in `<state dir>/devcluster.json`
so `down` and `status` find it. Talks HTTP with the standard library only: this runs in
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

    def problems(self) -> list[Problem]:
        """Everything wrong with the options, found before anything starts."""
        from deploykit.devcluster.util import parse_zk_url, port_free
        from deploykit.durations import parse_seconds

        out: list[Problem] = []
        ports = {"--marathon-port": self.marathon_port, "--consul-port": self.consul_port}
        for flag, port in ports.items():
            if flag == "--consul-port" and port == 0:
                continue
            if not 0 < port < 65536:
                out.append(Problem(None, flag, f"{port} is not a TCP port", hint="use 1-65535"))
            elif not port_free("127.0.0.1", port):
                out.append(Problem(None, flag, f"port {port} is already in use on 127.0.0.1",
                                   hint=f"pick another one, e.g. {flag} {port + 10}"))
        if self.consul_port and self.consul_port == self.marathon_port:
            out.append(Problem(None, "--consul-port", "the Consul port must differ from the Marathon port"))
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


def runtime_info(state_dir: Path) -> dict | None:
    """The recorded process of this state dir, if it is still alive."""
    try:
        info = json.loads((state_dir / RUNTIME_FILE).read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return info


def _record(opts: UpOptions, pid: int) -> dict:
    info = {"pid": pid, "marathon_url": f"http://{opts.hostname}:{opts.marathon_port}",
            "consul_url": f"http://{opts.hostname}:{opts.consul_port}" if opts.consul_port else None,
            "zk": opts.zk, "state_dir": str(opts.state_dir.resolve()), "log": str(opts.state_dir / LOG_FILE),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write(opts.state_dir / RUNTIME_FILE, json.dumps(info, indent=2))
    return info


def _refuse_if_running(opts: UpOptions) -> None:
    """Also validates the options: nothing is started with a bad port, URL or duration (exit 2)."""
    running = runtime_info(opts.state_dir)
    if running:
        raise LockedError(f"a devcluster already runs for {opts.state_dir} (pid {running['pid']}, "
                          f"{running['marathon_url']}); stop it with `deploykit local down`")
    problems = opts.problems()
    if problems:
        raise ValidationError(problems)


def up_detached(opts: UpOptions, timeout: float = 30.0) -> dict:
    """Start the server in the background and wait until Marathon answers /ping."""
    _refuse_if_running(opts)
    opts.state_dir.mkdir(parents=True, exist_ok=True)
    log_path = opts.state_dir / LOG_FILE
    # stderr (the log, and any traceback) goes straight to the log file
    with open(os.devnull, "rb") as devnull, open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "deploykit.devcluster", *opts.argv(log_file=False)],
                                stdin=devnull, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    info = _record(opts, proc.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
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
    from deploykit.devcluster.__main__ import main

    _record(opts, os.getpid())
    try:
        return main(opts.argv())
    finally:
        (opts.state_dir / RUNTIME_FILE).unlink(missing_ok=True)


def down(state_dir: Path, timeout: float = 30.0) -> dict:
    """SIGTERM the recorded server (it stops its tasks), SIGKILL after `timeout`."""
    info = runtime_info(state_dir)
    if info is None:
        (state_dir / RUNTIME_FILE).unlink(missing_ok=True)
        return {"stopped": False, "message": f"no devcluster running for {state_dir}"}
    pid = int(info["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    forced = _alive(pid)
    if forced:
        os.kill(pid, signal.SIGKILL)
    (state_dir / RUNTIME_FILE).unlink(missing_ok=True)
    return {"stopped": True, "pid": pid, "forced": forced, "marathon_url": info["marathon_url"]}


def status(marathon_url: str) -> dict:
    """Apps with their tasks and health, and running deployments."""
    apps = _get(f"{marathon_url}/v2/apps?embed=apps.tasks&embed=apps.lastTaskFailure")["apps"]
    deployments = _get(f"{marathon_url}/v2/deployments")
    leader = _get(f"{marathon_url}/v2/leader").get("leader")
    return {"marathon_url": marathon_url, "leader": leader, "apps": apps, "deployments": deployments}


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of ours counts as gone
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"

