"""Marathon Docker apps as real containers, the way Mesos' Docker containerizer runs them.

`run_argv` turns an app into `docker run` options (pure: unit-tested without an engine):
the task's environment, labels, cpus/mem as `--cpu-shares`/`--memory`, BRIDGE port mappings
published on the task host address only, HOST networking, `docker.parameters` verbatim as
`--key=value`, the sandbox mounted at /mnt/mesos/sandbox. `ContainerRuntime` pulls, runs,
waits, follows logs into the sandbox, stops and removes containers through the Engine API.
Environment values travel in the client's environment (`-e NAME`), never in argv.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import urllib.parse
from pathlib import Path

import aiohttp

from deploykit.devcluster.docker_engine import (
    DEVCLUSTER_LABEL,
    INSTALL_HINT,
    NODE_LABEL,
    SANDBOX_MOUNT,
    TASK_LABEL,
    api_base,
    docker_cli,
    engine_address,
    socket_path,
    task_container_name,
)

log = logging.getLogger(__name__)


class ContainerError(Exception):
    """A pull, run or engine failure; its text becomes the TASK_FAILED message."""


def is_docker_app(app: dict) -> bool:
    """DOCKER containers run in Docker; so does a MESOS container given a docker image (UCR)."""
    container = app.get("container") or {}
    return bool((container.get("docker") or {}).get("image")) and container.get("type", "DOCKER") in ("DOCKER", "MESOS")


def image_of(app: dict) -> str:
    return app["container"]["docker"]["image"]


def network_mode(app: dict) -> str:
    """"bridge" | "host" | a user network name, from legacy `docker.network` or `networks[0]`."""
    legacy = ((app.get("container") or {}).get("docker") or {}).get("network")
    if legacy:
        return {"BRIDGE": "bridge", "HOST": "host", "NONE": "none"}.get(legacy.upper(), "bridge")
    networks = app.get("networks") or [{"mode": "host"}]
    mode = networks[0].get("mode", "host")
    if mode == "container/bridge":
        return "bridge"
    if mode == "container":
        return networks[0].get("name") or "bridge"
    return "host"


def run_argv(app: dict, *, task_id: str, sandbox: Path, host_ports: list[int], port_specs: list[dict],
             env_names: list[str], state_dir: Path, node_port: int, host: str) -> list[str]:
    """`docker run -d ...` options for one task (without the client binary)."""
    docker = app["container"]["docker"]
    argv = ["run", "-d", "--name", task_container_name(task_id),
            "--label", f"{DEVCLUSTER_LABEL}={state_dir}", "--label", f"{NODE_LABEL}={node_port}",
            "--label", f"{TASK_LABEL}={task_id}"]
    for key, value in sorted((app.get("labels") or {}).items()):
        argv += ["--label", f"{key}={value}"]
    # Mesos: cpu shares = cpus x 1024 (at least 2), memory limit = mem MiB (Docker's floor is 6 MiB)
    argv += ["--cpu-shares", str(max(2, int(float(app.get("cpus", 1.0)) * 1024))),
             "--memory", f"{max(6, int(float(app.get('mem', 128.0))))}m"]
    for name in env_names:
        argv += ["-e", name]
    argv += ["-v", f"{sandbox}:{SANDBOX_MOUNT}"]
    mode = network_mode(app)
    argv += ["--network", mode]
    if mode == "bridge":
        for i, spec in enumerate(port_specs):
            hp = host_ports[i]
            cp = spec.get("containerPort") or hp
            for proto in str(spec.get("protocol") or "tcp").split(","):
                argv += ["-p", f"{host}:{hp}:{cp}/{proto.strip()}"]
    if docker.get("privileged"):
        argv.append("--privileged")
    for volume in (app.get("container") or {}).get("volumes") or []:
        if volume.get("hostPath") and volume.get("containerPath"):
            argv += ["-v", f"{volume['hostPath']}:{volume['containerPath']}:{str(volume.get('mode', 'RW')).lower()}"]
    for param in docker.get("parameters") or []:
        argv.append(f"--{param['key']}={param['value']}")
    image = docker["image"]
    if "cmd" in app:  # a shell command: Mesos runs it with /bin/sh -c as the entrypoint
        argv += ["--entrypoint", "/bin/sh", image, "-c", app["cmd"]]
    else:
        argv += [image, *(app.get("args") or [])]
    return argv


def _split_ref(ref: str) -> tuple[str, str]:
    """`repo:tag` / `repo@sha256:...` -> (repo, tag or digest), as the Engine API's pull wants them."""
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, "latest"


class ContainerRuntime:
    """Engine API client (aiohttp over the engine's socket) plus `docker run` for starting tasks."""

    def __init__(self, state_dir: Path, node_port: int) -> None:
        self.state_dir = state_dir
        self.node_port = node_port
        self.session: aiohttp.ClientSession | None = None
        self.base = api_base()
        self._version: str | None = None
        self._checked = 0.0

    async def start(self) -> None:
        path = socket_path()
        connector = aiohttp.UnixConnector(path=path, limit=100) if path else aiohttp.TCPConnector(limit=100)
        self.session = aiohttp.ClientSession(connector=connector)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def _request(self, method: str, path: str, *, params: dict | None = None,
                       timeout: float | None = 30.0) -> tuple[int, bytes]:
        if self.session is None:
            await self.start()
        assert self.session is not None
        try:
            async with self.session.request(method, self.base + path, params=params,
                                            timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise ContainerError(f"the Docker engine at {engine_address()} did not answer: {exc!r}") from exc

    async def version(self) -> str | None:
        """The engine's version, None when none answers (re-checked at most every 2 s)."""
        if self._version or time.monotonic() - self._checked < 2.0:
            return self._version
        self._checked = time.monotonic()
        with contextlib.suppress(ContainerError, ValueError):
            status, body = await self._request("GET", "/version", timeout=5)
            if status == 200:
                self._version = json.loads(body).get("Version")
        return self._version

    async def require(self) -> None:
        if not await self.version():
            raise ContainerError(f"Failed to launch container: no Docker engine answers at {engine_address()}; "
                                 f"{INSTALL_HINT}")

    async def image_present(self, ref: str) -> bool:
        status, _ = await self._request("GET", f"/images/{urllib.parse.quote(ref, safe='/:@')}/json")
        return status == 200

    async def pull(self, ref: str) -> None:
        """Pull `ref`; the registry's error becomes the exception text."""
        repo, tag = _split_ref(ref)
        if self.session is None:
            await self.start()
        assert self.session is not None
        try:
            async with self.session.post(self.base + "/images/create", params={"fromImage": repo, "tag": tag},
                                         timeout=aiohttp.ClientTimeout(total=900)) as resp:
                if resp.status != 200:
                    raise ContainerError(f"Failed to launch container: Failed to pull image {ref}: "
                                         f"{_message(await resp.read())}")
                async for line in resp.content:
                    with contextlib.suppress(ValueError):
                        doc = json.loads(line)
                        if doc.get("error"):
                            raise ContainerError(f"Failed to launch container: Failed to pull image {ref}: "
                                                 f"{doc['error']}")
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise ContainerError(f"Failed to launch container: Failed to pull image {ref}: {exc!r}") from exc

    async def run(self, argv: list[str], env: dict[str, str], name: str) -> str:
        """`docker run -d`; returns the container id. A container created but not started is removed."""
        cli = docker_cli()
        if cli is None:
            raise ContainerError(f"Failed to launch container: no docker client installed; {INSTALL_HINT}")
        client_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG")}
        client_env.update(env)
        proc = await asyncio.create_subprocess_exec(cli, *argv, env=client_env, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            with contextlib.suppress(ContainerError):
                await self.remove(name)
            text = err.decode(errors="replace").strip().replace("docker: ", "", 1)
            raise ContainerError(f"Failed to launch container: {text.splitlines()[0] if text else 'docker run failed'}")
        return out.decode().strip()

    async def wait(self, cid: str) -> int | None:
        """Block until the container exits; its exit code (None when the container is gone)."""
        while True:
            try:
                status, body = await self._request("POST", f"/containers/{cid}/wait", timeout=None)
            except ContainerError:
                if await self.version() is None:
                    await asyncio.sleep(1.0)  # the engine went away: keep waiting for it
                    continue
                raise
            if status == 404:
                return None
            with contextlib.suppress(ValueError):
                return int(json.loads(body)["StatusCode"])
            return None

    async def follow_logs(self, cid: str, sandbox: Path, since: float = 0) -> None:
        """Container stdout/stderr appended to the sandbox's stdout/stderr, as the Mesos executor does."""
        if self.session is None:
            await self.start()
        assert self.session is not None
        params = {"follow": "1", "stdout": "1", "stderr": "1", "since": str(int(since))}
        sandbox.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError), \
                open(sandbox / "stdout", "ab", buffering=0) as out, open(sandbox / "stderr", "ab", buffering=0) as err:
            async with self.session.get(self.base + f"/containers/{cid}/logs", params=params,
                                        timeout=aiohttp.ClientTimeout(total=None)) as resp:
                while resp.status == 200:
                    header = await resp.content.readexactly(8)
                    size = int.from_bytes(header[4:8], "big")
                    data = await resp.content.readexactly(size)
                    (err if header[0] == 2 else out).write(data)

    async def inspect(self, cid: str) -> dict | None:
        status, body = await self._request("GET", f"/containers/{cid}/json")
        return json.loads(body) if status == 200 else None

    async def stop(self, cid: str, grace: float) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds (Docker's stop timeout)."""
        await self._request("POST", f"/containers/{cid}/stop", params={"t": str(int(grace))}, timeout=grace + 30)

    async def remove(self, cid: str) -> None:
        await self._request("DELETE", f"/containers/{cid}", params={"force": "1", "v": "1"}, timeout=60)

    async def ours(self) -> list[dict]:
        """Containers of this node (any state): [{id, task, state}]."""
        filters = json.dumps({"label": [f"{DEVCLUSTER_LABEL}={self.state_dir}", f"{NODE_LABEL}={self.node_port}"]})
        status, body = await self._request("GET", "/containers/json", params={"all": "1", "filters": filters})
        if status != 200:
            raise ContainerError(f"listing containers failed: {_message(body)}")
        return [{"id": c["Id"], "task": (c.get("Labels") or {}).get(TASK_LABEL), "state": c.get("State")}
                for c in json.loads(body)]


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message") or body.decode(errors="replace"))
    except ValueError:
        return body.decode(errors="replace").strip()


def exit_message(code: int | None, oom: bool = False) -> str:
    if code is None:
        return "Container vanished (removed outside the devcluster)"
    suffix = " (OOMKilled: memory limit reached)" if oom else ""
    return f"Container exited with status {code}{suffix}"
