"""Tasks as local processes: sandbox, Mesos-fetcher artifacts, Marathon's environment, ports.

Each task runs in its own session/process group (so a kill reaches its children) under
`setpriv --pdeathsig SIGKILL`, so the task dies when the server dies, even on SIGKILL. Its
process-group id is also written to `<run dir>/<task id>.pgid` so a supervisor (the test
fixture, the next server start) can clean up whatever a hard kill left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import tarfile
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from deploykit.devcluster.util import iso_ms, port_free, wait_or_timeout

HOST = "127.0.0.1"
SLAVE_ID = "devcluster-agent-S0"
_SETPRIV = shutil.which("setpriv")
_ARCHIVES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar", ".zip")


class LaunchError(Exception):
    """The task could not start (fetch failure, failed pull, no Docker engine); becomes TASK_FAILED."""


@dataclass
class HealthResult:
    """Mirrors Marathon's `healthCheckResults` entry for one Marathon-side check."""

    instance_id: str
    alive: bool = False
    consecutive_failures: int = 0
    first_success: str | None = None
    last_success: str | None = None
    last_failure: str | None = None
    last_failure_cause: str | None = None
    checked: bool = False

    def to_json(self) -> dict:
        return {"alive": self.alive, "consecutiveFailures": self.consecutive_failures,
                "firstSuccess": self.first_success, "lastSuccess": self.last_success,
                "lastFailure": self.last_failure, "lastFailureCause": self.last_failure_cause,
                "instanceId": self.instance_id}


@dataclass
class Task:
    instance_id: str
    app_id: str
    version: str  # app version the task was launched with
    config_version: str  # versionInfo.lastConfigChangeAt of that version: decides restarts
    app: dict
    host_ports: list[int]
    service_ports: list[int]
    sandbox: Path
    state: str = "TASK_STAGING"
    staged_at: str = field(default_factory=iso_ms)
    started_at: str | None = None
    started_mono: float = 0.0
    proc: asyncio.subprocess.Process | None = None
    container_id: str | None = None  # Docker apps: the task's container
    health: list[HealthResult] = field(default_factory=list)
    ready: bool = False
    readiness: list[dict] = field(default_factory=list)
    killing: bool = False
    kill_reason: str = ""
    message: str = ""
    bg: list[asyncio.Task] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.instance_id}._app.1"

    @property
    def alive(self) -> bool:
        """Counts toward the app's instances (not finished, not being killed)."""
        return self.state in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING") and not self.killing

    @property
    def healthy(self) -> bool:
        """Running and passing every Marathon-side check (running alone when there are none)."""
        if self.state != "TASK_RUNNING" or self.killing:
            return False
        return all(h.alive for h in self.health)

    @property
    def health_known(self) -> bool:
        return bool(self.health) and all(h.checked for h in self.health)

    def to_json(self) -> dict:
        doc = {
            "appId": self.app_id, "id": self.id, "host": HOST, "ports": list(self.host_ports),
            "servicePorts": list(self.service_ports), "slaveId": SLAVE_ID,
            "state": "TASK_KILLING" if self.killing and self.state == "TASK_RUNNING" else self.state,
            "stagedAt": self.staged_at, "version": self.version,
            "ipAddresses": [{"ipAddress": HOST, "protocol": "IPv4"}], "localVolumes": [],
            "region": "local", "zone": "local", "role": "*",
        }
        if self.started_at:
            doc["startedAt"] = self.started_at
        if self.health and any(h.checked for h in self.health):
            doc["healthCheckResults"] = [h.to_json() for h in self.health if h.checked]
        return doc


class PortAllocator:
    """Host ports from a range, skipping ones in use by us or by anything else on the machine."""

    def __init__(self, low: int = 31000, high: int = 32000) -> None:
        self.low, self.high = low, high
        self.used: set[int] = set()
        # A random start: several devclusters on one machine (parallel test suites) rarely pick the
        # same port in the window between our bind check and the task's own bind.
        self._next = random.randint(low, high)

    def allocate(self, count: int, fixed: list[int] | None = None) -> list[int]:
        ports: list[int] = []
        for want in fixed or [0] * count:
            if want:
                ports.append(want)
                self.used.add(want)
                continue
            for _ in range(self.high - self.low + 1):
                p = self._next
                self._next = self.low if p >= self.high else p + 1
                if p not in self.used and port_free(HOST, p):
                    self.used.add(p)
                    ports.append(p)
                    break
            else:
                self.release(ports)
                raise LaunchError(f"no free host port left in range {self.low}-{self.high}")
        return ports

    def release(self, ports: list[int]) -> None:
        for p in ports:
            self.used.discard(p)


def task_env(task: Task, app: dict, port_specs: list[dict], *, sandbox: str | None = None) -> dict[str, str]:
    """Marathon's task environment (EnvironmentHelper) plus the app's own `env`.

    A process task also inherits a few host variables (PATH, LANG, ...); a container gets only
    Marathon's and the app's (its image sets the rest), with `sandbox` as MESOS_SANDBOX.
    """
    env: dict[str, str] = {}
    if sandbox is None:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "HOME")}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    for k, v in (app.get("env") or {}).items():
        if isinstance(v, str):  # {"secret": ...} refs need a secret store; not resolved here
            env[k] = v
    ports = task.host_ports
    for i, p in enumerate(ports):
        env[f"PORT{i}"] = str(p)
        spec = port_specs[i] if i < len(port_specs) else {}
        declared = spec.get("containerPort") or spec.get("port") or 0
        if declared:
            env[f"PORT_{declared}"] = str(p)
        if spec.get("name"):
            env[f"PORT_{spec['name'].upper().replace('-', '_')}"] = str(p)
    if ports:
        env["PORT"] = str(ports[0])
        env["PORTS"] = ",".join(str(p) for p in ports)
    labels = app.get("labels") or {}
    env.update({
        "HOST": HOST, "MARATHON_APP_ID": app["id"], "MARATHON_APP_VERSION": task.version,
        "MARATHON_APP_RESOURCE_CPUS": str(app["cpus"]), "MARATHON_APP_RESOURCE_MEM": str(app["mem"]),
        "MARATHON_APP_RESOURCE_DISK": str(app["disk"]), "MARATHON_APP_RESOURCE_GPUS": str(app["gpus"]),
        "MARATHON_APP_LABELS": " ".join(k for k in labels if _env_safe(k)),
        "MESOS_TASK_ID": task.id, "MESOS_SANDBOX": sandbox or str(task.sandbox),
        "MESOS_DIRECTORY": sandbox or str(task.sandbox),
    })
    for k, v in labels.items():
        if _env_safe(k) and len(v) <= 512:
            env[f"MARATHON_APP_LABEL_{k.upper()}"] = v
    image = ((app.get("container") or {}).get("docker") or {}).get("image")
    if image:
        env["MARATHON_APP_DOCKER_IMAGE"] = image
    return env


def _env_safe(name: str) -> bool:
    return name.replace("_", "a").isalnum()


def fetch_artifacts(sandbox: Path, fetch: list[dict]) -> None:
    """Mesos fetcher semantics: copy (file://, absolute path) or download (http/https) into the
    sandbox, then extract archives or chmod +x. `destPath` may not leave the sandbox."""
    for art in fetch:
        uri = art["uri"]
        parsed = urllib.parse.urlparse(uri)
        name = Path(urllib.parse.unquote(parsed.path)).name or "download"
        dest = sandbox / (art.get("destPath") or name)
        if not dest.resolve().is_relative_to(sandbox.resolve()):
            raise LaunchError(f"Failed to fetch all URIs for container: destPath '{art.get('destPath')}' "
                              "leaves the sandbox")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if parsed.scheme in ("http", "https"):
            _download(uri, dest)
        else:
            if parsed.scheme == "file":
                src = Path(urllib.parse.unquote(parsed.path))
            elif parsed.scheme == "" and uri.startswith("/"):
                src = Path(uri)
            else:
                raise LaunchError(f"Failed to fetch all URIs for container: unsupported URI scheme in '{uri}' "
                                  "(the devcluster fetches file://, http(s):// URIs and absolute paths)")
            if not src.is_file():
                raise LaunchError(f"Failed to fetch all URIs for container: '{uri}' does not exist")
            shutil.copyfile(src, dest)
        if art.get("executable"):
            dest.chmod(0o755)
        elif art.get("extract", True) and dest.name.endswith(_ARCHIVES):
            _extract(dest, sandbox)


def _download(uri: str, dest: Path, timeout: float = 60.0) -> None:
    """The fetcher's HTTP download (runs in a worker thread, so blocking I/O is fine here)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri, timeout=timeout) as resp, open(dest, "wb") as out:
            shutil.copyfileobj(resp, out)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise LaunchError(f"Failed to fetch all URIs for container: {uri}: {exc}") from exc


def _extract(archive: Path, into: Path) -> None:
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(into)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(into, filter="data")
    except (OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
        raise LaunchError(f"Failed to fetch all URIs for container: cannot extract {archive.name}: {exc}") from exc


def command_argv(app: dict) -> list[str]:
    """`cmd` runs under `sh -c`; `args` are exec'd directly, as the Mesos command executor does."""
    if "cmd" in app:
        return ["sh", "-c", app["cmd"]]
    if app.get("args"):
        return list(app["args"])
    raise LaunchError("Failed to launch task: the app has neither cmd nor args")


async def spawn(task: Task, env: dict[str, str], run_dir: Path) -> asyncio.subprocess.Process:
    """Start the task's process in its sandbox; stdout/stderr go to files there, as on Mesos."""
    argv = command_argv(task.app)
    if _SETPRIV:
        argv = [_SETPRIV, "--pdeathsig", "SIGKILL", "--", *argv]
    task.sandbox.mkdir(parents=True, exist_ok=True)
    with open(task.sandbox / "stdout", "ab") as out, open(task.sandbox / "stderr", "ab") as err:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=task.sandbox, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True,
            )
        except OSError as exc:
            raise LaunchError(f"Failed to launch task: {exc}") from exc
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / f"{task.id}.pgid").write_text(str(proc.pid))
    return proc


async def terminate(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the task's process group, SIGKILL after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    await wait_or_timeout(proc.wait(), grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


def kill_leftovers(run_dir: Path) -> int:
    """Kill task process groups a hard-killed server left behind.

    A group is killed only if one of its members carries that task's MESOS_TASK_ID, so a
    recycled process-group id is never hit (the group leader itself may already be gone).
    """
    killed = 0
    for f in run_dir.glob("*.pgid") if run_dir.is_dir() else []:
        task_id = f.name[: -len(".pgid")]
        marker = f"MESOS_TASK_ID={task_id}".encode()
        with contextlib.suppress(ValueError, OSError):
            pgid = int(f.read_text())
            if any(marker in _environ(pid) for pid in _group_members(pgid)):
                os.killpg(pgid, signal.SIGKILL)
                killed += 1
        f.unlink(missing_ok=True)
    return killed


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                members.append(int(stat.parent.name))
    return members


def _environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []

