"""What a devcluster restarted after a crash brings back, as a Mesos agent recovers its executors.

Docker tasks outlive the server: their containers are adopted (same task id, ports, health), and every
other container labelled with this node is removed. Command tasks die with it (its reaper kills them, so
nothing leaks): each one is relaunched at the version it ran, so a deployment in progress resumes with the
old version's capacity intact. The records live in the run dir: `<task id>.container.json`, `<task id>.process.json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING

from deploykit.devcluster.appdef import host_port_specs
from deploykit.devcluster.docker_engine import SANDBOX_MOUNT
from deploykit.devcluster.docker_tasks import ContainerError, is_docker_app
from deploykit.devcluster.tasks import HealthResult, Task, task_env
from deploykit.devcluster.util import atomic_write_json

if TYPE_CHECKING:
    from deploykit.devcluster.scheduler import AppRuntime

log = logging.getLogger("deploykit.devcluster.scheduler")


class Recovery:
    """Mixed into Scheduler: the crash-recovery half (uses its run_dir, apps, docker, ports, _launch, _supervise)."""

    def _record_container(self, task: Task) -> None:
        """What a restart after a crash needs to adopt this task's container (docs/devcluster.md)."""
        doc = {"task_id": task.id, "instance_id": task.instance_id, "app_id": task.app_id, "version": task.version,
               "container_id": task.container_id, "host_ports": task.host_ports,
               "service_ports": task.service_ports, "staged_at": task.staged_at, "started_at": task.started_at}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.run_dir / f"{task.id}.container.json", doc)

    def _record_process(self, task: Task) -> None:
        """Which version a command task runs, so a restart after a crash can bring the same capacity back."""
        atomic_write_json(self.run_dir / f"{task.id}.process.json", {"app_id": task.app_id, "version": task.version})

    def _relaunch_processes(self) -> int:
        """Command tasks die with a crashed devcluster (its reaper kills them; nothing may leak). Mesos would
        have kept them running, so each one is relaunched at the version it ran: a deployment in progress
        resumes with its old tasks' capacity intact instead of with the new version alone."""
        wanted: dict[tuple[str, str], int] = {}
        for f in self.run_dir.glob("*.process.json") if self.run_dir.is_dir() else []:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                rec = json.loads(f.read_text())
                key = (rec["app_id"], rec["version"])
                wanted[key] = wanted.get(key, 0) + 1
            f.unlink(missing_ok=True)
        launched = 0
        for (app_id, version), count in sorted(wanted.items()):
            rt = self.apps.get(app_id)
            app = rt.versions.get(version) if rt is not None else None
            if app is None or is_docker_app(app):
                continue  # the app or that version is gone: the reconciler decides from the current definition
            self._launch(rt, app, count, paced=False)
            launched += count
        return launched

    async def recover(self) -> dict[str, int]:
        """After a restart: adopt the containers of tasks we recorded, remove every other one of ours.

        As a Mesos agent recovers its executors: a running container whose task record and app
        version are still known becomes that task again (same id, ports, health); anything else
        labelled with this node is removed. Call once the apps are loaded.
        """
        paused, self.paused = self.paused, True  # the reconciler must not launch a second set meanwhile
        try:
            return await self._recover()
        finally:
            self.paused = paused
            self.changed.notify()

    async def _recover(self) -> dict[str, int]:
        records = {}
        for f in self.run_dir.glob("*.container.json") if self.run_dir.is_dir() else []:
            with contextlib.suppress(OSError, ValueError):
                records[f.name[: -len(".container.json")]] = json.loads(f.read_text())
            f.unlink(missing_ok=True)
        adopted = removed = 0
        relaunched = self._relaunch_processes()
        if relaunched:
            log.info("relaunched %d command task(s) at the versions they ran before the crash", relaunched)
        if not await self.docker.version():
            return {"adopted": 0, "removed": 0, "relaunched": relaunched}
        for c in await self.docker.ours():
            rec = records.pop(c["task"] or "", None)
            rt = self.apps.get(rec["app_id"]) if rec else None
            app = rt.versions.get(rec["version"]) if rt and rec else None
            if rec and rt and app and c["state"] == "running" and rec["container_id"] == c["id"]:
                self._adopt(rt, app, rec)
                adopted += 1
            else:
                with contextlib.suppress(ContainerError):
                    await self.docker.remove(c["id"])
                removed += 1
        if adopted or removed:
            log.info("recovered containers: %d adopted, %d removed", adopted, removed)
        return {"adopted": adopted, "removed": removed, "relaunched": relaunched}

    def _adopt(self, rt: AppRuntime, app: dict, rec: dict) -> None:
        specs = host_port_specs(app)
        instance_id = rec["instance_id"]
        task = Task(instance_id=instance_id, app_id=rt.id, version=rec["version"],
                    config_version=app["versionInfo"]["lastConfigChangeAt"], app=app,
                    host_ports=list(rec["host_ports"]), service_ports=list(rec["service_ports"]),
                    sandbox=self.sandboxes / rec["task_id"], staged_at=rec["staged_at"], started_at=rec["started_at"],
                    container_id=rec["container_id"])
        task.health = [HealthResult(instance_id=instance_id) for _ in app.get("healthChecks", [])]
        self.ports.used.update(task.host_ports)
        rt.tasks[instance_id] = task
        self._record_container(task)
        env = task_env(task, app, specs, sandbox=SANDBOX_MOUNT)
        task.bg.append(asyncio.create_task(self._supervise(rt, task, specs, env, adopted=True)))
