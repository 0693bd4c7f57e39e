"""Deployments: plans of steps that move apps from their original to their target definition.

A plan is computed per app as Marathon does (new app: StartApplication then ScaleApplication;
config change: RestartApplication; instances only: ScaleApplication; delete: StopApplication;
no change: no steps). RestartApplication follows TaskReplaceActor's rules for
upgradeStrategy (minimumHealthCapacity, maximumOverCapacity). A deployment never times out:
new tasks that never become healthy keep being replaced until it is rolled back or forced.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from deploykit.devcluster.appdef import capacity
from deploykit.devcluster.errors import ApiError, locked
from deploykit.devcluster.events import EventBus
from deploykit.devcluster.scheduler import AppRuntime, Scheduler
from deploykit.devcluster.store import AppStore
from deploykit.devcluster.util import VersionClock, new_uuid

log = logging.getLogger(__name__)


@dataclass
class Deployment:
    id: str
    version: str
    steps: list[list[dict]]
    original: dict[str, dict | None]
    target: dict[str, dict | None]
    current_step: int = 0
    runner: asyncio.Task | None = None
    suspended: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def affected_apps(self) -> list[str]:
        return sorted(self.target)

    def to_doc(self) -> dict:
        return {"id": self.id, "version": self.version, "steps": self.steps, "original": self.original,
                "target": self.target}

    def plan_json(self) -> dict:
        return {"id": self.id, "steps": [{"actions": s} for s in self.steps], "version": self.version}

    def step_json(self) -> dict:
        idx = max(self.current_step - 1, 0)
        return {"actions": self.steps[idx] if self.steps else []}


def plan_steps(original: dict | None, target: dict | None) -> list[list[dict]]:
    """Marathon's per-app step list for going from `original` to `target`."""
    if original is None and target is None:
        return []
    if original is None:
        assert target is not None
        steps = [[{"action": "StartApplication", "app": target["id"]}]]
        if target["instances"] > 0:
            steps.append([{"action": "ScaleApplication", "app": target["id"]}])
        return steps
    if target is None:
        return [[{"action": "StopApplication", "app": original["id"]}]]
    if original["versionInfo"]["lastConfigChangeAt"] != target["versionInfo"]["lastConfigChangeAt"]:
        return [[{"action": "RestartApplication", "app": target["id"]}]]
    if original["instances"] != target["instances"]:
        return [[{"action": "ScaleApplication", "app": target["id"]}]]
    return []


class DeploymentManager:
    """Starts, runs, cancels and rolls back deployments; owns app definitions and versions."""

    def __init__(self, scheduler: Scheduler, store: AppStore, bus: EventBus, clock: VersionClock,
                 start_delay: float = 0.0) -> None:
        self.sched = scheduler
        self.store = store
        self.bus = bus
        self.clock = clock
        self.start_delay = start_delay
        self.deployments: dict[str, Deployment] = {}

    # --- queries -------------------------------------------------------------------------------------
    def for_app(self, app_id: str) -> list[Deployment]:
        return [d for d in self.deployments.values() if app_id in d.target]

    def to_json(self, dep: Deployment) -> dict:
        actions = []
        if dep.steps and dep.current_step:
            for a in dep.steps[dep.current_step - 1]:
                rt = self.sched.apps.get(a["app"]) or self.sched.zombies.get(a["app"])
                results = [r for t in (rt.tasks.values() if rt else []) for r in t.readiness
                           if t.config_version == (rt.config_version if rt else None) and not t.ready]
                actions.append({**a, "readinessCheckResults": results})
        return {"id": dep.id, "version": dep.version, "affectedApps": dep.affected_apps, "affectedPods": [],
                "steps": [{"actions": s} for s in dep.steps], "currentActions": actions,
                "currentStep": dep.current_step, "totalSteps": len(dep.steps)}

    # --- starting --------------------------------------------------------------------------------------
    def deploy(self, targets: dict[str, dict | None], *, force: bool, version: str | None = None) -> Deployment:
        """Apply new definitions (None = delete) and start the deployment that realises them.

        Raises 409 if an affected app is locked by a running deployment and `force` is not set.
        """
        conflicting = {d.id: d for app_id in targets for d in self.for_app(app_id)}
        if conflicting and not force:
            raise locked(sorted(conflicting))
        for dep in conflicting.values():
            self.cancel(dep, reason="Deployment was superseded by a forced deployment")
        version = version or self.clock.next()
        original: dict[str, dict | None] = {}
        steps_by_app = []
        for app_id, target in targets.items():
            rt = self.sched.apps.get(app_id)
            original[app_id] = rt.app if rt else None
            steps_by_app.append(plan_steps(original[app_id], target))
        steps: list[list[dict]] = []
        for per_app in steps_by_app:
            for i, step in enumerate(per_app):
                if i >= len(steps):
                    steps.append([])
                steps[i].extend(step)
        dep = Deployment(id=new_uuid(), version=version, steps=steps, original=original, target=dict(targets))
        for app_id, target in targets.items():
            self._apply(app_id, target, dep)
        self.deployments[dep.id] = dep
        self.store.save_deployment(dep.to_doc())
        self.bus.publish("group_change_success", groupId="/", version=version)
        # Runs after the HTTP response is on its way, as Marathon starts the plan asynchronously.
        loop = asyncio.get_running_loop()
        loop.call_later(self.start_delay, lambda: self._launch_runner(dep))
        return dep

    def _launch_runner(self, dep: Deployment) -> None:
        if dep.id in self.deployments and dep.runner is None and not dep.suspended:
            dep.runner = asyncio.create_task(self._run(dep))

    def _apply(self, app_id: str, target: dict | None, dep: Deployment) -> None:
        rt = self.sched.apps.get(app_id)
        if target is None:
            if rt is not None:
                rt.deleted = True
                rt.owner = dep.id
                self.sched.apps.pop(app_id)
                self.sched.zombies[app_id] = rt
                self.store.delete(app_id)
            return
        if rt is None:
            rt = AppRuntime(target, {target["version"]: target})
            rt.plan_targets = {rt.config_version: 0}
            self.sched.apps[app_id] = rt
        else:
            if rt.config_version != target["versionInfo"]["lastConfigChangeAt"]:
                rt.failures = 0  # a new config resets the launch back-off
                rt.next_launch = 0.0
            rt.app = target
            rt.versions[target["version"]] = target
        rt.owner = dep.id
        rt.versions = self.store.save(app_id, target, rt.versions)

    # --- running -----------------------------------------------------------------------------------------
    async def _run(self, dep: Deployment) -> None:
        try:
            for i, step in enumerate(dep.steps):
                dep.current_step = i + 1
                self.bus.publish("deployment_info", plan=dep.plan_json(), currentStep=dep.step_json())
                await asyncio.gather(*(self._action(dep, a) for a in step))
                self.bus.publish("deployment_step_success", plan=dep.plan_json(), currentStep=dep.step_json())
            self.bus.publish("deployment_success", id=dep.id, plan=dep.plan_json())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("deployment %s failed", dep.id)
            self.bus.publish("deployment_failed", id=dep.id, plan=dep.plan_json(), reason=str(exc))
        finally:
            if not dep.suspended:
                self._release(dep)

    def _release(self, dep: Deployment, forget: bool = True) -> None:
        """Drop a finished/cancelled deployment (`forget=False`: keep it on disk for the next leader)."""
        self.deployments.pop(dep.id, None)
        if forget:
            self.store.delete_deployment(dep.id)
        for app_id in dep.target:
            rt = self.sched.apps.get(app_id)
            if rt is not None and rt.owner == dep.id:
                rt.owner = None
                rt.plan_targets = None
        dep.done.set()
        self.sched.changed.notify()

    async def _action(self, dep: Deployment, action: dict) -> None:
        name, app_id = action["action"], action["app"]
        if name == "StopApplication":
            rt = self.sched.zombies.get(app_id)
            while rt is not None and rt.tasks:
                self.sched.reconcile(rt)
                await self.sched.changed.wait(0.5)
            self.bus.publish("app_terminated_event", appId=app_id)
            return
        rt = self.sched.apps[app_id]
        if name == "StartApplication":
            rt.plan_targets = {rt.config_version: 0}
        elif name == "ScaleApplication":
            await self._scale(rt)
        elif name == "RestartApplication":
            await self._restart(rt, dep)

    async def _scale(self, rt: AppRuntime) -> None:
        rt.plan_targets = None
        while True:
            self.sched.reconcile(rt)
            alive = rt.alive()
            if len(alive) == rt.app["instances"] and all(t.healthy and t.ready for t in alive):
                return
            await self.sched.changed.wait(0.5)

    async def _restart(self, rt: AppRuntime, dep: Deployment) -> None:
        """TaskReplaceActor: keep minHealthy healthy instances, never exceed maxCapacity."""
        app = rt.app
        n = app["instances"]
        min_healthy, max_capacity = capacity(app)
        if min_healthy == max_capacity and len(rt.alive()) >= max_capacity:
            max_capacity += 1  # one temporary extra instance, as for non-resident apps
        new_cv = rt.config_version
        while True:
            alive = rt.alive()
            old = [t for t in alive if t.config_version != new_cv]
            new = [t for t in alive if t.config_version == new_cv]
            new_ok = [t for t in new if t.healthy and t.ready]
            if not old and len(new_ok) >= n and len(new) == n:
                return
            keep = max(0, min_healthy - len(new_ok))
            healthy_old = sorted((t for t in old if t.healthy), key=lambda t: t.staged_at)
            # old tasks whose health is not known yet (relaunched after a devcluster crash, still in their grace
            # period) count towards the capacity to keep: killing them would leave the app below minHealthy
            pending_old = sorted((t for t in old if not t.healthy and not t.killing and t.state in
                                  ("TASK_STAGING", "TASK_RUNNING") and not any(h.checked for h in t.health)),
                                 key=lambda t: t.staged_at)
            kept = (healthy_old + pending_old)[:keep]
            for t in old:
                if t not in kept:
                    self.sched.kill(rt, t, "upgrade")
            rt.plan_targets = {new_cv: max(0, min(n, max_capacity - len(kept)))}
            self.sched.reconcile(rt)
            await self.sched.changed.wait(0.5)

    # --- stopping ----------------------------------------------------------------------------------------
    def cancel(self, dep: Deployment, reason: str | None = None) -> None:
        """Stop a running deployment where it is (no revert) and report it failed."""
        if dep.runner is not None:
            dep.runner.cancel()
        self._release(dep)
        fields = {"reason": reason} if reason else {}
        self.bus.publish("deployment_failed", id=dep.id, plan=dep.plan_json(), **fields)

    def rollback(self, dep_id: str, force: bool) -> Deployment | None:
        """DELETE /v2/deployments/{id}: force=true cancels; otherwise a new deployment reverts the plan."""
        dep = self.deployments.get(dep_id)
        if dep is None:
            raise ApiError(404, f"DeploymentPlan {dep_id} does not exist")
        if force:
            self.cancel(dep)
            return None
        revert = {app_id: orig for app_id, orig in dep.original.items()}
        return self.deploy(revert, force=True)

    async def suspend(self) -> None:
        """Leadership suspended: stop driving deployments but remember them (resumed from step 1)."""
        runners = []
        for dep in self.deployments.values():
            dep.suspended = True
            if dep.runner is not None:
                dep.runner.cancel()
                runners.append(dep.runner)
                dep.runner = None
        if runners:
            await asyncio.wait(runners, timeout=5)

    def resume(self) -> None:
        for dep in self.deployments.values():
            dep.suspended = False
            self._launch_runner(dep)

    def restore(self) -> int:
        """On election: resume the deployments a previous leader left on disk (from their first step)."""
        count = 0
        for doc in self.store.load_deployments():
            if doc["id"] in self.deployments:
                continue
            dep = Deployment(id=doc["id"], version=doc["version"], steps=doc["steps"], original=doc["original"],
                             target=doc["target"])
            self.deployments[dep.id] = dep
            for app_id in dep.target:
                rt = self.sched.apps.get(app_id)
                if rt is not None:
                    rt.owner = dep.id
            self._launch_runner(dep)
            count += 1
        return count

    async def stop_all(self) -> None:
        """Stop driving every deployment; they stay on disk and the next leader resumes them."""
        for dep in list(self.deployments.values()):
            dep.suspended = True  # so the runner's own cleanup keeps the file
            if dep.runner is not None:
                dep.runner.cancel()
                await asyncio.wait({dep.runner}, timeout=5)
            self._release(dep, forget=False)
