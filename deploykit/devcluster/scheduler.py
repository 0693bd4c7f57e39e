"""Keeps each app at its instance count: launches tasks, watches them, runs health checks.

One asyncio loop does everything. Outside deployments an app is in "steady" mode (keep
`instances` tasks alive, of whatever version, launching the current one; kill surplus by
`killSelection`), as Marathon's scale check does. While a deployment drives an app it sets
`plan_targets` (how many tasks of which config version) and the reconciler follows.
Dead tasks are relaunched after Marathon's back-off (backoffSeconds x backoffFactor^n).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from deploykit.devcluster import health
from deploykit.devcluster.appdef import host_port_specs
from deploykit.devcluster.docker_engine import SANDBOX_MOUNT, task_container_name
from deploykit.devcluster.docker_tasks import (
    ContainerError,
    ContainerRuntime,
    exit_message,
    image_of,
    is_docker_app,
    run_argv,
)
from deploykit.devcluster.events import EventBus
from deploykit.devcluster.recovery import Recovery
from deploykit.devcluster.tasks import (
    HOST,
    SLAVE_ID,
    HealthResult,
    LaunchError,
    PortAllocator,
    Task,
    fetch_artifacts,
    kill_leftovers,
    spawn,
    task_env,
    terminate,
)
from deploykit.devcluster.util import instance_id_for, iso_ms, wait_or_timeout

log = logging.getLogger(__name__)

# Before a check's first success, poll this often (never slower than the app's interval):
# failures inside the grace period are ignored anyway, so only time-to-healthy changes.
EARLY_POLL = 0.25
KEEP_SANDBOXES = 50
# launches in flight (TASK_STAGING) per app at once; more wait for the next reconcile round
MAX_STAGING_PER_APP = 16
_CONDITION = {"TASK_STAGING": "Staging", "TASK_RUNNING": "Running", "TASK_KILLING": "Killing",
              "TASK_KILLED": "Killed", "TASK_FAILED": "Failed", "TASK_FINISHED": "Finished"}


def _logged_until(sandbox: Path) -> float:
    """When an adopted container's logs were last written to its sandbox: follow on from there."""
    times = [p.stat().st_mtime for p in (sandbox / "stdout", sandbox / "stderr") if p.exists()]
    return max(times) if times else time.time()


class Notifier:
    """Wakes every waiter when something about tasks changed."""

    def __init__(self) -> None:
        self._ev = asyncio.Event()

    def notify(self) -> None:
        self._ev.set()
        self._ev = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        await wait_or_timeout(self._ev.wait(), timeout)


class AppRuntime:
    """An app's current definition, stored versions and live tasks."""

    def __init__(self, app: dict, versions: dict[str, dict]) -> None:
        self.app = app
        self.versions = versions
        self.tasks: dict[str, Task] = {}
        self.plan_targets: dict[str, int] | None = None
        self.owner: str | None = None  # deployment id driving this app
        self.failures = 0
        self.next_launch = 0.0
        self.last_failure: dict | None = None
        self.deleted = False

    @property
    def id(self) -> str:
        return self.app["id"]

    @property
    def config_version(self) -> str:
        return self.app["versionInfo"]["lastConfigChangeAt"]

    def alive(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.alive]


class Scheduler(Recovery):
    """Task lifecycle for every app; owned by the leader."""

    def __init__(self, state_dir: Path, run_dir: Path, bus: EventBus, ports: PortAllocator,
                 early_poll: float = EARLY_POLL, node_port: int = 0) -> None:
        self.state_dir = state_dir
        self.run_dir = run_dir
        self.node_port = node_port
        self.docker = ContainerRuntime(state_dir, node_port)
        self._cleanup: set[asyncio.Task] = set()  # container stops/removals that outlive their task
        self.sandboxes = state_dir / "marathon" / "sandboxes"
        self.bus = bus
        self.ports = ports
        # 0 = Marathon's own cadence (first check after intervalSeconds, then every intervalSeconds)
        self.early_poll = early_poll
        self.apps: dict[str, AppRuntime] = {}
        self.zombies: dict[str, AppRuntime] = {}  # deleted apps whose tasks are still being killed
        self.changed = Notifier()
        self.session: aiohttp.ClientSession | None = None
        self._loop_task: asyncio.Task | None = None
        self._reaper: asyncio.subprocess.Process | None = None
        self.paused = False  # leadership suspended: watch tasks, change nothing
        self._finished_sandboxes: collections.deque[Path] = collections.deque()

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        kill_leftovers(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._reaper = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "deploykit.devcluster.reaper", stdin=asyncio.subprocess.PIPE, start_new_session=True)
        assert self._reaper.stdin is not None
        self._reaper.stdin.write(f"{self.run_dir}\n".encode())  # the only thing ever written: EOF means we died
        await self._reaper.stdin.drain()
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200, force_close=True))
        self._loop_task = asyncio.create_task(self._reconcile_loop())

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.changed.notify()

    async def stop(self) -> None:
        """Kill every task (graceful, in parallel) and stop the loops."""
        self.paused = False
        if self._loop_task:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        runtimes = [*self.apps.values(), *self.zombies.values()]
        for rt in runtimes:
            rt.plan_targets = {}
            for t in list(rt.tasks.values()):
                self.kill(rt, t, "shutdown")
        graces = [self._grace(t) for rt in runtimes for t in rt.tasks.values()]
        deadline = time.monotonic() + max([15.0, *(g + 10 for g in graces)])  # containers stop within their grace
        while any(rt.tasks for rt in runtimes) and time.monotonic() < deadline:
            await self.changed.wait(0.2)
        self.apps.clear()
        self.zombies.clear()
        if self._cleanup:
            await asyncio.wait(set(self._cleanup), timeout=30)
        await self.docker.close()
        if self.session:
            await self.session.close()
            self.session = None
        if self._reaper is not None:
            assert self._reaper.stdin is not None
            self._reaper.stdin.close()
            await self._reaper.wait()
            self._reaper = None

    def all_runtimes(self) -> list[AppRuntime]:
        return [*self.apps.values(), *self.zombies.values()]

    # --- reconcile ---------------------------------------------------------------------------------
    async def _reconcile_loop(self) -> None:
        while True:
            for rt in [] if self.paused else self.all_runtimes():
                try:
                    self.reconcile(rt)
                except Exception:  # keep the loop alive whatever one app does
                    log.exception("reconcile of %s failed", rt.id)
            await self.changed.wait(0.5)

    def reconcile(self, rt: AppRuntime) -> None:
        """Launch or kill tasks so the app matches its targets."""
        if self.paused:
            return
        if rt.deleted:
            for t in rt.alive():
                self.kill(rt, t, "delete")
            return
        if rt.plan_targets is None:
            self._scale_to(rt, rt.alive(), rt.app["instances"])
            return
        for cv, want in rt.plan_targets.items():
            self._scale_to(rt, [t for t in rt.alive() if t.config_version == cv], want)

    def _scale_to(self, rt: AppRuntime, alive: list[Task], want: int) -> None:
        """Kill the surplus of `alive` (in the app's kill order) or launch what is missing."""
        if len(alive) > want:
            for t in self._kill_order(rt, alive)[: len(alive) - want]:
                self.kill(rt, t, "scale")
        elif len(alive) < want:
            self._launch(rt, rt.app, want - len(alive))

    @staticmethod
    def _kill_order(rt: AppRuntime, tasks: list[Task]) -> list[Task]:
        """Unhealthy first, then by killSelection (YOUNGEST_FIRST default)."""
        youngest_first = rt.app.get("killSelection", "YOUNGEST_FIRST") != "OLDEST_FIRST"
        by_age = sorted(tasks, key=lambda t: t.staged_at, reverse=youngest_first)
        return sorted(by_age, key=lambda t: t.healthy)

    def _launch(self, rt: AppRuntime, app: dict, count: int, paced: bool = True) -> None:
        if paced and time.monotonic() < rt.next_launch:
            return
        # Paced like Mesos offers pace Marathon: a few launches in flight per app at a time, so a huge
        # `instances` grows the app step by step (and stops at the task port range) instead of building
        # every missing task at once. A recovery relaunches what ran before (bounded by what was recorded).
        staging = sum(1 for t in rt.tasks.values() if t.state == "TASK_STAGING")
        if paced:
            count = min(count, MAX_STAGING_PER_APP - staging)
        if count <= 0:
            return
        specs = host_port_specs(app)
        service_ports = [p.get("servicePort", p.get("port", 0)) for p in specs]
        for _ in range(count):
            fixed = None
            if app.get("requirePorts"):
                fixed = [p.get("port", 0) for p in specs]
            elif any(p.get("hostPort") for p in specs):
                fixed = [p.get("hostPort", 0) for p in specs]
            instance_id = instance_id_for(app["id"])
            task = Task(instance_id=instance_id, app_id=app["id"], version=app["version"],
                        config_version=app["versionInfo"]["lastConfigChangeAt"], app=app, host_ports=[],
                        service_ports=service_ports, sandbox=self.sandboxes / f"{instance_id}._app.1")
            task.health = [HealthResult(instance_id=instance_id) for _ in app.get("healthChecks", [])]
            rt.tasks[instance_id] = task
            task.bg.append(asyncio.create_task(self._run_task(rt, task, specs, fixed)))
        self.changed.notify()

    # --- one task ------------------------------------------------------------------------------------
    async def _run_task(self, rt: AppRuntime, task: Task, specs: list[dict], fixed: list[int] | None) -> None:
        self._status(task, "TASK_STAGING")
        docker = is_docker_app(task.app)
        try:
            task.host_ports = self.ports.allocate(len(specs), [p or 0 for p in fixed] if fixed else None)
            if task.app.get("fetch"):
                task.sandbox.mkdir(parents=True, exist_ok=True)
                await asyncio.to_thread(fetch_artifacts, task.sandbox, task.app["fetch"])
            env = task_env(task, task.app, specs, sandbox=SANDBOX_MOUNT if docker else None)
            if task.killing:
                raise LaunchError("Task killed before launch")
            if docker:
                await self._start_container(task, specs, env)
            else:
                task.proc = await spawn(task, env, self.run_dir)
                self._record_process(task)
        except (LaunchError, ContainerError) as exc:
            self._finish(rt, task, "TASK_KILLED" if task.killing else "TASK_FAILED", str(exc))
            return
        except Exception as exc:
            log.exception("launch of %s failed", task.id)
            self._finish(rt, task, "TASK_FAILED", f"Failed to launch task: {exc}")
            return
        task.started_at = iso_ms()
        if docker:
            self._record_container(task)
        await self._supervise(rt, task, specs, env)

    async def _start_container(self, task: Task, specs: list[dict], env: dict[str, str]) -> None:
        """Pull (still TASK_STAGING; forcePullImage honoured) and `docker run` the task's container."""
        await self.docker.require()
        image = image_of(task.app)
        if task.app["container"]["docker"].get("forcePullImage") or not await self.docker.image_present(image):
            await self.docker.pull(image)
        if task.killing:
            raise LaunchError("Task killed before launch")
        task.sandbox.mkdir(parents=True, exist_ok=True)
        argv = run_argv(task.app, task_id=task.id, sandbox=task.sandbox, host_ports=task.host_ports,
                        port_specs=specs, env_names=sorted(env), state_dir=self.state_dir, node_port=self.node_port,
                        host=HOST)
        task.container_id = await self.docker.run(argv, env, task_container_name(task.id))

    async def _supervise(self, rt: AppRuntime, task: Task, specs: list[dict], env: dict[str, str],
                         adopted: bool = False) -> None:
        """TASK_RUNNING until the process or container exits: health/readiness loops, logs, exit status."""
        task.state = "TASK_RUNNING"
        task.started_mono = time.monotonic()
        if not adopted:
            self._status(task, "TASK_RUNNING")
        self.changed.notify()
        if task.killing:
            task.bg.append(asyncio.create_task(self._terminate(task)))
        for i, hc in enumerate(task.app.get("healthChecks", [])):
            task.bg.append(asyncio.create_task(self._health_loop(rt, task, i, hc, env)))
        # Marathon runs readiness checks only for the tasks a deployment starts: a task relaunched after a
        # crash or a restart, adopted after a devcluster restart, or started by scaling outside a deployment,
        # is routed once healthy (no event would ever announce its readiness).
        if task.app.get("readinessChecks") and rt.owner is not None and not adopted:
            task.bg.append(asyncio.create_task(self._readiness_loop(task, specs)))
        else:
            task.ready = True
        if task.container_id is not None:
            task.bg.append(asyncio.create_task(
                self.docker.follow_logs(task.container_id, task.sandbox, since=_logged_until(task.sandbox) if adopted
                                        else 0)))
            state, msg = await self._container_exit(task)
        else:
            assert task.proc is not None
            rc = await task.proc.wait()
            if task.killing:
                state, msg = "TASK_KILLED", "Command terminated with signal Terminated" if rc < 0 else ""
            elif rc == 0:
                state, msg = "TASK_FINISHED", "Command exited with status 0"
            else:
                state, msg = "TASK_FAILED", (f"Command exited with status {rc}" if rc > 0 else
                                             f"Command terminated with signal {-rc}")
        self._finish(rt, task, state, msg)

    async def _container_exit(self, task: Task) -> tuple[str, str]:
        assert task.container_id is not None
        try:
            rc = await self.docker.wait(task.container_id)
        except ContainerError as exc:
            return ("TASK_KILLED" if task.killing else "TASK_FAILED"), str(exc)
        oom = False
        if rc is not None:
            with contextlib.suppress(ContainerError):
                info = await self.docker.inspect(task.container_id)
                oom = bool(info and (info.get("State") or {}).get("OOMKilled"))
        if task.killing:
            return "TASK_KILLED", exit_message(rc)
        if rc == 0:
            return "TASK_FINISHED", exit_message(rc)
        return "TASK_FAILED", exit_message(rc, oom)

    async def _terminate(self, task: Task) -> None:
        """SIGTERM, SIGKILL after the app's taskKillGracePeriodSeconds (process group or container)."""
        if task.container_id is not None:
            with contextlib.suppress(ContainerError):
                await self.docker.stop(task.container_id, self._grace(task))
        elif task.proc is not None:
            await terminate(task.proc, self._grace(task))

    def _grace(self, task: Task) -> float:
        return float(task.app.get("taskKillGracePeriodSeconds") or 3)

    def _finish(self, rt: AppRuntime, task: Task, state: str, message: str) -> None:
        task.state = state
        task.message = message
        self._status(task, state, message)
        for bg in task.bg:
            if bg is not asyncio.current_task():
                bg.cancel()
        if task.proc is not None:
            # Whatever the command left behind in its process group goes with it, as when Mesos tears
            # down a task's container. The group id cannot be reused while members remain.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(task.proc.pid, signal.SIGKILL)
        if task.container_id is not None:
            cleanup = asyncio.create_task(self._remove_container(task.container_id))
            self._cleanup.add(cleanup)
            cleanup.add_done_callback(self._cleanup.discard)
            (self.run_dir / f"{task.id}.container.json").unlink(missing_ok=True)
        self.ports.release(task.host_ports)
        (self.run_dir / f"{task.id}.pgid").unlink(missing_ok=True)
        (self.run_dir / f"{task.id}.process.json").unlink(missing_ok=True)
        rt.tasks.pop(task.instance_id, None)
        counts_as_failure = state == "TASK_FAILED" or (state == "TASK_FINISHED" and not task.killing) or (
            task.kill_reason == "unhealthy")
        if counts_as_failure:
            rt.last_failure = {
                "appId": rt.id, "host": HOST, "message": message, "state": state, "taskId": task.id,
                "timestamp": iso_ms(), "version": task.version, "slaveId": SLAVE_ID,
            }
            rt.failures += 1
            app = rt.app
            delay = min(app["backoffSeconds"] * app["backoffFactor"] ** (rt.failures - 1),
                        app["maxLaunchDelaySeconds"])
            rt.next_launch = time.monotonic() + delay
            log.info("task %s %s (%s); next launch of %s in %.1fs", task.id, state, message, rt.id, delay)
        if task.sandbox.exists():
            self._finished_sandboxes.append(task.sandbox)
            while len(self._finished_sandboxes) > KEEP_SANDBOXES:
                shutil.rmtree(self._finished_sandboxes.popleft(), ignore_errors=True)
        if rt.deleted and not rt.tasks:
            self.zombies.pop(rt.id, None)
        self.changed.notify()

    async def _remove_container(self, cid: str) -> None:
        with contextlib.suppress(ContainerError):
            await self.docker.remove(cid)

    def kill(self, rt: AppRuntime, task: Task, reason: str) -> None:
        """Kill a task (SIGTERM, then SIGKILL after its grace period); the reconciler may replace it."""
        if task.killing or task.state not in ("TASK_STAGING", "TASK_RUNNING") or self.paused:
            return
        task.killing = True
        task.kill_reason = reason
        (self.run_dir / f"{task.id}.process.json").unlink(missing_ok=True)  # no longer capacity to restore
        self._status(task, "TASK_KILLING")
        if task.proc is not None or task.container_id is not None:
            task.bg.append(asyncio.create_task(self._terminate(task)))
        self.changed.notify()

    def _status(self, task: Task, state: str, message: str = "") -> None:
        self.bus.publish(
            "status_update_event", slaveId=SLAVE_ID, taskId=task.id, taskStatus=state, message=message,
            appId=task.app_id, host=HOST, ipAddresses=[{"ipAddress": HOST, "protocol": "IPv4"}],
            ports=list(task.host_ports), version=task.version,
        )
        self.bus.publish(
            "instance_changed_event", instanceId=task.instance_id, condition=_CONDITION.get(state, state),
            runSpecId=task.app_id, agentId=SLAVE_ID, host=HOST, runSpecVersion=task.version,
        )

    # --- health and readiness ----------------------------------------------------------------------
    def _check_port(self, task: Task, hc: dict) -> int | None:
        if hc.get("port"):
            return hc["port"]
        idx = hc.get("portIndex", 0)
        return task.host_ports[idx] if idx < len(task.host_ports) else None

    async def _probe(self, task: Task, hc: dict, env: dict[str, str]) -> tuple[bool, str | None]:
        proto = hc["protocol"]
        timeout = float(hc["timeoutSeconds"]) or 20.0
        if proto == "COMMAND":
            return await health.probe_command(hc["command"]["value"], str(task.sandbox), env, timeout)
        port = self._check_port(task, hc)
        if port is None:
            return False, "no port for this health check"
        if proto in ("TCP", "MESOS_TCP"):
            return await health.probe_tcp(port, timeout)
        scheme = "https" if proto in ("HTTPS", "MESOS_HTTPS") else "http"
        assert self.session is not None
        return await health.probe_http(self.session, f"{scheme}://{HOST}:{port}{hc.get('path', '/')}", timeout)

    async def _health_loop(self, rt: AppRuntime, task: Task, idx: int, hc: dict, env: dict[str, str]) -> None:
        res = task.health[idx]
        grace = float(hc["gracePeriodSeconds"])
        interval = float(hc["intervalSeconds"]) or 1.0
        max_failures = int(hc["maxConsecutiveFailures"])
        await asyncio.sleep(min(self.early_poll, interval) if self.early_poll else interval)
        while task.state == "TASK_RUNNING" and not task.killing:
            ok, cause = await self._probe(task, hc, env)
            if task.killing or task.state != "TASK_RUNNING":
                return
            now = iso_ms()
            in_grace = res.first_success is None and time.monotonic() - task.started_mono < grace
            if ok:
                res.checked = True
                res.consecutive_failures = 0
                res.last_success = now
                res.first_success = res.first_success or now
                if not res.alive:
                    res.alive = True
                    rt.failures = 0  # a healthy task resets the launch back-off
                    self._health_changed(task, True)
            elif not in_grace:
                res.checked = True
                res.consecutive_failures += 1
                res.last_failure = now
                res.last_failure_cause = cause
                self.bus.publish("failed_health_check_event", appId=task.app_id, taskId=task.instance_id,
                                 instanceId=task.instance_id, healthCheck=hc)
                if res.alive or res.consecutive_failures == 1:
                    res.alive = False
                    self._health_changed(task, False)
                if max_failures and res.consecutive_failures >= max_failures:
                    self.bus.publish("unhealthy_instance_kill_event", appId=task.app_id, taskId=task.id,
                                     instanceId=task.instance_id, version=task.version,
                                     reason=f"{hc['protocol']} health check failed: {cause}", host=HOST,
                                     slaveId=SLAVE_ID)
                    self.kill(rt, task, "unhealthy")
                    return
            early = res.first_success is None and (time.monotonic() - task.started_mono) < grace
            await asyncio.sleep(min(self.early_poll, interval) if early and self.early_poll else interval)

    def _health_changed(self, task: Task, alive: bool) -> None:
        self.bus.publish("health_status_changed_event", appId=task.app_id, instanceId=task.instance_id,
                         version=task.version, alive=alive)
        healthy: bool | None = all(h.alive for h in task.health) if task.health_known else (False if not alive
                                                                                               else None)
        self.bus.publish("instance_health_changed_event", instanceId=task.instance_id, runSpecId=task.app_id,
                         runSpecVersion=task.version, healthy=healthy)
        self.changed.notify()

    async def _readiness_loop(self, task: Task, specs: list[dict]) -> None:
        checks = task.app["readinessChecks"]
        names = [p.get("name") for p in specs]
        assert self.session is not None
        while not task.killing and task.state == "TASK_RUNNING":
            results, all_ready = [], True
            for rc in checks:
                port = task.host_ports[names.index(rc["portName"])]
                scheme = "https" if rc["protocol"] == "HTTPS" else "http"
                ready, last = await health.readiness_probe(
                    self.session, f"{scheme}://{HOST}:{port}{rc['path']}", float(rc["timeoutSeconds"]) or 10.0,
                    rc["httpStatusCodesForReady"])
                all_ready = all_ready and ready
                results.append({"taskId": task.id, "lastResponse": last if rc["preserveLastResponse"] else None,
                                "name": rc["name"], "ready": ready})
            task.readiness = results
            if all_ready:
                task.ready = True
                self.changed.notify()
                return
            interval = min(float(c["intervalSeconds"]) for c in checks) or 1.0
            await asyncio.sleep(min(self.early_poll * 2, interval) if self.early_poll else interval)

    # --- views ---------------------------------------------------------------------------------------
    def counts(self, rt: AppRuntime) -> dict[str, int]:
        tasks = list(rt.tasks.values())
        return {
            "tasksStaged": sum(t.state == "TASK_STAGING" for t in tasks),
            "tasksRunning": sum(t.state == "TASK_RUNNING" and not t.killing for t in tasks),
            "tasksHealthy": sum(bool(t.health) and t.healthy for t in tasks),
            "tasksUnhealthy": sum(t.state == "TASK_RUNNING" and any(h.checked and not h.alive for h in t.health)
                                  for t in tasks),
        }

    def find_task(self, task_id: str) -> tuple[AppRuntime, Task] | None:
        for rt in self.all_runtimes():
            for t in rt.tasks.values():
                if t.id == task_id or t.instance_id == task_id:
                    return rt, t
        return None

    def summary(self) -> dict[str, Any]:
        return {"apps": len(self.apps), "tasks": sum(len(rt.tasks) for rt in self.all_runtimes())}
