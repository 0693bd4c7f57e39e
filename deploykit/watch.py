"""Deciding when a Marathon deployment has succeeded or failed (a pure state machine).

Why a state machine without I/O: every way the anchors got this wrong (shpkpr, depcon and
dcos-cli calling "gone from /v2/deployments" a success, waiting the full timeout on a
version that can never be healthy, missing a force-deploy over theirs) is a question of
which evidence counts. Here the evidence is fed in — SSE events, /v2/deployments polls,
the app with its tasks, clock ticks — and each feed returns an Outcome once one is
certain, so every rule is unit-testable with made-up timelines.

Rules:
- success: `deployment_success` for our deploymentId; or, as a fallback, our deployment
  is gone from /v2/deployments AND the app confirms it (its version is ours, `instances`
  tasks running at its current config version, all healthy when it has health checks).
- failure: `deployment_failed` for ours (named "superseded" when another deployment
  touching the app was seen, with its id); too many TASK_FAILED / unhealthy kills / failed
  health checks of tasks of the NEW version (fail fast, long before the timeout); the app
  changed to a version that is not ours; gone but not confirmed within a short window;
  the timeout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Mesos terminal states that mean the task itself failed (TASK_KILLED is a normal kill).
FAILED_STATES = frozenset({"TASK_FAILED", "TASK_ERROR", "TASK_DROPPED", "TASK_GONE", "TASK_LOST"})
UNHEALTHY_KILL_EVENTS = frozenset({"unhealthy_instance_kill_event", "unhealthy_task_kill_event"})

# Failure reasons (stable strings: they appear in the JSON report).
DEPLOYMENT_FAILED = "deployment_failed"
SUPERSEDED = "superseded"
TASK_FAILED = "task_failed"
UNHEALTHY_KILL = "unhealthy_kill"
HEALTH_FAILURES = "health_failures"
TIMEOUT = "timeout"
VANISHED = "vanished"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    reason: str | None  # None on success
    message: str
    other_deployment: str | None = None
    confirmed_by: str = "event"  # "event" | "poll"

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "reason": self.reason,
            "message": self.message,
            "other_deployment": self.other_deployment,
            "confirmed_by": self.confirmed_by,
        }


@dataclass(frozen=True)
class WatchSpec:
    app_id: str
    deployment_id: str
    version: str | None  # the app version the PUT answered with; tasks of the new version carry it
    instances: int
    has_health: bool
    timeout: float  # seconds from start
    max_failures: int = 2  # TASK_FAILED + unhealthy kills of new-version tasks before giving up
    max_health_failures: int = 6  # failed health checks of new-version tasks before giving up
    confirm_window: float = 10.0  # how long "gone" may stay unconfirmed by the app's state
    appear_grace: float = 3.0  # a deployment may show up in /v2/deployments only after the PUT returned


@dataclass
class Counters:
    task_failures: int = 0
    unhealthy_kills: int = 0
    health_failures: int = 0
    last_failure: str | None = None


@dataclass
class DeploymentWatch:
    """Feed it evidence; it answers with an Outcome once the deployment's fate is certain."""

    spec: WatchSpec
    started: float
    outcome: Outcome | None = None
    counters: Counters = field(default_factory=Counters)
    seen_in_list: bool = False
    gone_since: float | None = None
    other_deployment: str | None = None
    current_step: str | None = None
    versions: dict[str, dict[str, int]] = field(default_factory=dict)
    _task_versions: dict[str, str] = field(default_factory=dict)

    # -- queries -----------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def wants_app(self) -> bool:
        """The caller should fetch the app now: our deployment is gone and needs confirming."""
        return self.outcome is None and self.gone_since is not None

    def progress(self, now: float) -> dict:
        return {
            "step": self.current_step,
            "elapsed_seconds": round(now - self.started, 3),
            "versions": {v: dict(c) for v, c in sorted(self.versions.items())},
            "new_version": self.spec.version,
            "failures": {
                "task_failed": self.counters.task_failures,
                "unhealthy_kills": self.counters.unhealthy_kills,
                "failed_health_checks": self.counters.health_failures,
                "last": self.counters.last_failure,
            },
        }

    # -- feeds ---------------------------------------------------------------------
    def feed_event(self, event: dict, now: float) -> Outcome | None:
        if self.outcome is not None:
            return self.outcome
        etype = event.get("eventType", "")
        if etype == "deployment_success" and event.get("id") == self.spec.deployment_id:
            return self._finish(True, None, f"deployment {self.spec.deployment_id} succeeded")
        if etype == "deployment_failed":
            if event.get("id") == self.spec.deployment_id:
                return self._failed_event(event)
            return None
        if etype in ("deployment_info", "deployment_step_success", "deployment_step_failure"):
            plan = event.get("plan") or {}
            self._note_plan(plan.get("id"), _plan_apps(plan))
            if plan.get("id") == self.spec.deployment_id:
                self.current_step = _step_name(event.get("currentStep"))
            return None
        if etype == "status_update_event" and event.get("appId") == self.spec.app_id:
            return self._task_status(event, now)
        if etype in UNHEALTHY_KILL_EVENTS and event.get("appId") == self.spec.app_id:
            if self._is_new(event.get("version"), event.get("instanceId") or event.get("taskId")):
                self.counters.unhealthy_kills += 1
                self.counters.last_failure = f"unhealthy task killed: {event.get('reason') or 'health checks failed'}"
                return self._check_thresholds(UNHEALTHY_KILL)
            return None
        if etype == "failed_health_check_event" and event.get("appId") == self.spec.app_id:
            if self._is_new(None, event.get("taskId") or event.get("instanceId")):
                self.counters.health_failures += 1
                check = event.get("healthCheck") or {}
                what = check.get("path") or check.get("protocol") or "health check"
                self.counters.last_failure = f"health check {what} failed"
                return self._check_thresholds(HEALTH_FAILURES)
            return None
        is_ours = etype == "instance_changed_event" and event.get("runSpecId") == self.spec.app_id
        if is_ours and event.get("instanceId") and event.get("runSpecVersion"):
            self._task_versions[event["instanceId"]] = event["runSpecVersion"]
        return None

    def feed_deployments(self, deployments: list[dict], now: float) -> Outcome | None:
        """One GET /v2/deployments answer (the fallback when events are late or lost)."""
        if self.outcome is not None:
            return self.outcome
        ours = None
        for dep in deployments:
            apps = set(dep.get("affectedApps") or [])
            if dep.get("id") == self.spec.deployment_id:
                ours = dep
            elif self.spec.app_id in apps:
                self.other_deployment = dep.get("id")
        if ours is not None:
            self.seen_in_list = True
            self.gone_since = None
            actions = ours.get("currentActions") or []
            if actions:
                step = ", ".join(sorted({a.get("action", "?") for a in actions}))
                self.current_step = f"{step} ({ours.get('currentStep')}/{ours.get('totalSteps')})"
            return None
        if (self.seen_in_list or now - self.started >= self.spec.appear_grace) and self.gone_since is None:
            self.gone_since = now
        return self.tick(now)

    def feed_app(self, app: dict, now: float) -> Outcome | None:
        """The app with its tasks (GET /v2/apps/{id}): progress, and confirmation of a vanished deployment."""
        if self.outcome is not None:
            return self.outcome
        tasks = app.get("tasks") or []
        versions: dict[str, dict[str, int]] = {}
        for t in tasks:
            v = t.get("version") or "?"
            if t.get("id"):
                self._task_versions[t["id"]] = v
            c = versions.setdefault(v, {"running": 0, "healthy": 0})
            if t.get("state") == "TASK_RUNNING":
                c["running"] += 1
                if _task_healthy(t, self.spec.has_health):
                    c["healthy"] += 1
        self.versions = versions
        failure = app.get("lastTaskFailure") or {}
        if failure and self._is_new(failure.get("version"), failure.get("taskId")):
            self.counters.last_failure = f"{failure.get('state', 'task failed')}: {failure.get('message', '')}".strip()
        if self.gone_since is None:
            return self.tick(now)
        return self._confirm(app, tasks, now)

    def tick(self, now: float) -> Outcome | None:
        if self.outcome is not None:
            return self.outcome
        if now - self.started >= self.spec.timeout:
            return self._finish(
                False,
                TIMEOUT,
                f"deployment {self.spec.deployment_id} did not finish within {self.spec.timeout:g}s"
                + (f" (last failure: {self.counters.last_failure})" if self.counters.last_failure else ""),
            )
        if self.gone_since is not None and now - self.gone_since >= self.spec.confirm_window:
            return self._finish(
                False,
                VANISHED,
                f"deployment {self.spec.deployment_id} left /v2/deployments without deployment_success "
                "and the app does not show the new version running healthy",
                confirmed_by="poll",
            )
        return None

    # -- internals -----------------------------------------------------------------
    def _finish(self, ok: bool, reason: str | None, message: str, *, confirmed_by: str = "event") -> Outcome:
        other = self.other_deployment if reason in (SUPERSEDED, DEPLOYMENT_FAILED, VANISHED) else None
        self.outcome = Outcome(ok, reason, message, other, confirmed_by)
        return self.outcome

    def _failed_event(self, event: dict) -> Outcome:
        why = event.get("reason")
        if self.other_deployment:
            return self._finish(
                False,
                SUPERSEDED,
                f"deployment {self.spec.deployment_id} was superseded by deployment {self.other_deployment}",
            )
        text = f"deployment {self.spec.deployment_id} failed" + (f": {why}" if why else "")
        return self._finish(False, DEPLOYMENT_FAILED, text)

    def _note_plan(self, plan_id: str | None, apps: set[str]) -> None:
        if plan_id and plan_id != self.spec.deployment_id and self.spec.app_id in apps:
            self.other_deployment = plan_id

    def _task_status(self, event: dict, now: float) -> Outcome | None:
        task_id = event.get("taskId")
        version = event.get("version")
        if task_id and version:
            self._task_versions[task_id] = version
        if event.get("taskStatus") in FAILED_STATES and self._is_new(version, task_id):
            self.counters.task_failures += 1
            msg = event.get("message") or ""
            self.counters.last_failure = f"{event.get('taskStatus')}: {msg}".strip().rstrip(":")
            return self._check_thresholds(TASK_FAILED)
        return None

    def _check_thresholds(self, reason: str) -> Outcome | None:
        c = self.counters
        if c.task_failures + c.unhealthy_kills >= self.spec.max_failures:
            return self._finish(
                False,
                reason if reason != HEALTH_FAILURES else UNHEALTHY_KILL,
                f"new version failing: {c.task_failures} task failure(s), {c.unhealthy_kills} unhealthy kill(s)"
                f" (limit {self.spec.max_failures}); last: {c.last_failure}",
            )
        if c.health_failures >= self.spec.max_health_failures:
            return self._finish(
                False,
                HEALTH_FAILURES,
                f"new version failing health checks: {c.health_failures} failure(s)"
                f" (limit {self.spec.max_health_failures}); last: {c.last_failure}",
            )
        return None

    def _version_of(self, task_id: str | None) -> str | None:
        if not task_id:
            return None
        if task_id in self._task_versions:
            return self._task_versions[task_id]
        # Marathon 1.10 task ids extend their instance id ("<instance>._app.<n>"): match either way.
        for known, version in self._task_versions.items():
            if task_id.startswith(known + ".") or known.startswith(task_id + "."):
                return version
        return None

    def _is_new(self, version: str | None, task_id: str | None) -> bool:
        if self.spec.version is None:
            return True
        version = version or self._version_of(task_id)
        return version == self.spec.version

    def _confirm(self, app: dict, tasks: list[dict], now: float) -> Outcome | None:
        app_version = app.get("version")
        config_version = (app.get("versionInfo") or {}).get("lastConfigChangeAt") or app_version
        if self.spec.version and app_version and app_version != self.spec.version and app_version > self.spec.version:
            other = self.other_deployment or "unknown"
            return self._finish(
                False,
                SUPERSEDED,
                f"app {self.spec.app_id} moved on to version {app_version} (deployment {other}) "
                f"before ours ({self.spec.version}) completed",
                confirmed_by="poll",
            )
        target = self.spec.instances
        at_target = [t for t in tasks if t.get("version") in (config_version, self.spec.version)]
        running = [t for t in at_target if t.get("state") == "TASK_RUNNING"]
        healthy = [t for t in running if _task_healthy(t, self.spec.has_health)]
        stale = [t for t in tasks if t not in at_target]
        if len(healthy) == target and len(running) == target and not stale:
            return self._finish(
                True,
                None,
                f"deployment {self.spec.deployment_id} finished; {target}/{target} tasks healthy at the new version",
                confirmed_by="poll",
            )
        return self.tick(now)


def name_superseder(outcome: Outcome, spec: WatchSpec, deployments: list[dict]) -> Outcome:
    """A failure whose cause is another deployment now running on the app becomes SUPERSEDED, naming it.

    Marathon's `deployment_failed` for a deployment cancelled by a forced one does not say
    which one; /v2/deployments right afterwards does.
    """
    if outcome.ok or outcome.reason not in (DEPLOYMENT_FAILED, VANISHED) or outcome.other_deployment:
        return outcome
    others = [d.get("id") for d in deployments
              if d.get("id") != spec.deployment_id and spec.app_id in (d.get("affectedApps") or [])]
    if not others:
        return outcome
    return Outcome(False, SUPERSEDED, f"deployment {spec.deployment_id} was superseded by deployment {others[0]}",
                   others[0], outcome.confirmed_by)


def _task_healthy(task: dict, has_health: bool) -> bool:
    if not has_health:
        return True
    results = task.get("healthCheckResults") or []
    return bool(results) and all(r.get("alive") for r in results)


def _plan_apps(plan: dict) -> set[str]:
    apps: set[str] = set()
    for step in plan.get("steps") or []:
        for action in step.get("actions") or []:
            if action.get("app"):
                apps.add(action["app"])
    return apps


def _step_name(step: Any) -> str | None:
    if not isinstance(step, dict):
        return None
    actions = step.get("actions") or []
    names = sorted({a.get("action", "?") for a in actions if isinstance(a, dict)})
    return ", ".join(names) or None


def default_timeout(app: dict) -> float:
    """A deploy budget from the app itself: rolling batches x (grace + checks + launch), >= 60 s.

    Marathon replaces at most `maxCapacity - minHealthy` instances at a time (at least one),
    each needing its grace period plus a few check intervals to turn healthy and ready.
    """
    instances = max(1, int(app.get("instances", 1) or 1))
    strategy = app.get("upgradeStrategy") or {}
    min_hc = float(strategy.get("minimumHealthCapacity", 1.0))
    max_oc = float(strategy.get("maximumOverCapacity", 1.0))
    min_healthy = math.ceil(instances * min_hc)
    max_capacity = math.floor(instances * (1 + max_oc))
    batch = max(1, max_capacity - min_healthy)
    batches = math.ceil(instances / batch)
    checks = app.get("healthChecks") or []
    per_task = 10.0  # launch + fetch
    if checks:
        hc = checks[0]
        per_task += float(hc.get("gracePeriodSeconds", 300)) + 2 * float(hc.get("intervalSeconds", 60))
    for rc in app.get("readinessChecks") or []:
        per_task += 2 * float(rc.get("intervalSeconds", 30))
    return max(60.0, round(30.0 + batches * per_task, 1))


def fail_fast_budget(app: dict, max_failures: int) -> float | None:
    """Roughly when a version that never turns healthy is given up on (reported, not enforced)."""
    checks = app.get("healthChecks") or []
    if not checks:
        return None
    hc = checks[0]
    one = (
        float(hc.get("gracePeriodSeconds", 300))
        + float(hc.get("intervalSeconds", 60)) * max(1, int(hc.get("maxConsecutiveFailures", 3)))
        + float(app.get("backoffSeconds", 1))
    )
    return round(one * max(1, max_failures), 1)
