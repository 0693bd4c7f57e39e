"""PUT a definition and wait for its deployment: the I/O loop that feeds deploykit/watch.py.

The event stream is subscribed *before* the PUT so a fast deployment cannot be missed;
/v2/deployments and the app are polled as a fallback and right after every reconnect. All
the rules about success and failure live in `watch.DeploymentWatch`; this loop only feeds it,
and acts on what signal handlers and lock listeners recorded (a stop request, a lost lock).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deploykit import watch as w
from deploykit.clients.marathon import MarathonLocked
from deploykit.clients.marathon_events import Connected
from deploykit.deploy.messages import follow_hint, locked_message
from deploykit.deploy.report import (
    DeployInterrupted,
    DeployLocked,
    Failure,
    as_reported,
)
from deploykit.errors import DeployKitError

if TYPE_CHECKING:
    from deploykit.deploy.deployment import Deployment

WATCH_EVENTS = (
    "deployment_success",
    "deployment_failed",
    "deployment_info",
    "deployment_step_success",
    "deployment_step_failure",
    "status_update_event",
    "instance_changed_event",
    "failed_health_check_event",
    "unhealthy_instance_kill_event",
    "unhealthy_task_kill_event",
    "health_status_changed_event",
)

class Stop:
    """Set by a signal handler (record only); the wait loop acts on it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.why: str | None = None

    def request(self, why: str) -> None:
        self.why = why
        self.event.set()


@dataclass(frozen=True)
class Rollout:
    """What a PUT-and-wait ended with."""

    outcome: w.Outcome
    deployment_id: str | None
    version: str | None


@contextlib.contextmanager
def subscribed(run: Deployment, phase: str) -> Iterator[queue.Queue]:
    """The event stream, connected (or given up on after 3 s: then the watch polls only)."""
    stream = run.clients.marathon.events(event_types=list(WATCH_EVENTS), heartbeat_interval=run.opts.event_heartbeat)
    _thread, q = stream.start_thread()
    try:
        subscribed = False
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                item = q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if isinstance(item, Connected):
                subscribed = True
                break
        if not subscribed:
            run.report.errors.append(f"event stream not connected ({stream.last_error}); polling only")
        yield q
    finally:
        stream.stop()
        run.report.stream(phase, stream.connects, stream.last_error)


def put_and_watch(run: Deployment, app: dict, timeout: float, *, force: bool, phase: str) -> Rollout:
    """Subscribe, PUT, wait (phase "deploy" or "rollback": which report fields and budget it uses)."""
    marathon = run.clients.marathon
    with subscribed(run, phase) as q:
        run.check_lock()
        run.progress(phase, {"message": f"PUT {run.app_id}" + (" (force)" if force else "")})
        t_put = time.monotonic()
        try:
            result = marathon.put_app(app, force=force)
        except MarathonLocked as exc:
            raise DeployLocked(locked_message(run.app_id, exc.deployment_ids, run.deployments_or_none()),
                               run.report.finish("locked")) from None
        except DeployKitError as exc:
            raise as_reported(exc, run.report) from None
        return _watch(run, q, app, result.get("deploymentId"), result.get("version"), timeout, phase, t_put)


def watch_existing(run: Deployment, deployment_id: str, version: str | None, app: dict, timeout: float) -> Rollout:
    """Wait for a deployment already running (one a gone client started) as if we had PUT `app` now."""
    with subscribed(run, "deploy") as q:
        run.check_lock()
        return _watch(run, q, app, deployment_id, version, timeout, "deploy", time.monotonic())


def _watch(run: Deployment, q: queue.Queue, app: dict, dep_id: str | None, version: str | None, timeout: float,
           phase: str, started: float) -> Rollout:
    if phase == "deploy":
        run.report.deployment_id = dep_id
        run.report.versions.to = version
        run.report.deployed_version = version
    else:
        run.report.rollback_deployment_id = dep_id
    spec = w.WatchSpec(
        app_id=run.app_id,
        deployment_id=dep_id or "",
        version=version,
        instances=int(app.get("instances", 1)),
        has_health=bool(app.get("healthChecks")),
        timeout=timeout,
        max_failures=run.opts.max_failures,
        max_health_failures=max(3, run.opts.max_failures * _max_consecutive(app)),
    )
    outcome = wait(run, w.DeploymentWatch(spec, started=started), q, phase)
    if not outcome.ok and outcome.reason in (w.DEPLOYMENT_FAILED, w.VANISHED):
        with contextlib.suppress(DeployKitError):
            outcome = w.name_superseder(outcome, spec, run.clients.marathon.deployments())
    run.report.timing(f"{phase}_wait_seconds", time.monotonic() - started)
    return Rollout(outcome, dep_id, version)


def _max_consecutive(app: dict) -> int:
    checks = app.get("healthChecks") or []
    return max(1, int(checks[0].get("maxConsecutiveFailures", 3))) if checks else 3


def wait(run: Deployment, watcher: w.DeploymentWatch, q: queue.Queue, phase: str) -> w.Outcome:
    """Feed the watcher until it is certain; a stop request or a lost lock ends the wait with an error."""
    spec = watcher.spec
    poll_interval = run.opts.poll_interval
    next_poll = time.monotonic() + min(poll_interval, 0.5)
    last_progress = 0.0
    try:
        while True:
            now = time.monotonic()
            if run.stop.event.is_set():
                raise KeyboardInterrupt
            lost = run.lock.lost
            if lost:
                follow = follow_hint(run.report.environment, spec.app_id, spec.deployment_id)
                run.report.failure = Failure("lock_lost", lost)
                raise DeployLocked(
                    f"lost the deploy lock during the {phase} ({lost}); stopped without any further change. "
                    f"Deployment {spec.deployment_id} is left running. {follow}",
                    run.report.finish("lock_lost"),
                )
            outcome = watcher.tick(now)
            if outcome:
                return outcome
            try:
                item = q.get(timeout=max(0.01, min(0.25, next_poll - now)))
            except queue.Empty:
                item = None
            now = time.monotonic()
            if isinstance(item, Connected):
                next_poll = now  # events may have been missed: resync from the REST API
            elif item is not None:
                outcome = watcher.feed_event(item.data, now)
                if outcome:
                    return outcome
            if now >= next_poll:
                next_poll = now + poll_interval
                outcome = _poll(run, watcher)
                if outcome:
                    return outcome
            if now - last_progress >= 0.5:
                last_progress = now
                run.progress(f"{phase}_wait",
                             {**watcher.progress(now), "timeout": spec.timeout, "id": spec.deployment_id})
    except KeyboardInterrupt:
        if run.opts.rollback_on_interrupt and phase == "deploy":
            # CI cancels (Jenkins abort = SIGTERM): treat as a failure so the rollback runs;
            # a second interrupt during the rollback leaves things as they are.
            why = run.stop.why or "Ctrl-C"
            run.stop.event.clear()
            run.stop.why = None
            return w.Outcome(False, "interrupted", f"interrupted ({why}) while waiting for {spec.deployment_id}")
        follow = follow_hint(run.report.environment, spec.app_id, spec.deployment_id)
        run.report.instructions = follow
        raise DeployInterrupted(
            f"interrupted ({run.stop.why or 'Ctrl-C'}) while waiting; deployment {spec.deployment_id} is left "
            f"running. {follow}",
            run.report.finish("interrupted"),
        ) from None


def _poll(run: Deployment, watcher: w.DeploymentWatch) -> w.Outcome | None:
    """The REST fallback: /v2/deployments, then the app with its tasks."""
    marathon = run.clients.marathon
    try:
        outcome = watcher.feed_deployments(marathon.deployments(), time.monotonic())
        if outcome:
            return outcome
        app = marathon.get_app(watcher.spec.app_id)
        if app is not None:
            return watcher.feed_app(app, time.monotonic())
    except DeployKitError as exc:
        # Marathon briefly away (leader election): keep waiting within the budget
        msg = f"poll failed: {exc}"
        if msg not in run.report.errors and len(run.report.errors) < 20:
            run.report.errors.append(msg)
    return None
