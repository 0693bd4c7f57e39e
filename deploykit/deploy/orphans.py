"""Deployments left behind by a deploy client that is gone (issue 18 items 5 and 7).

A `deploykit deploy` killed during its wait (kill -9, a lost CI agent) leaves its Marathon
deployment running with nobody watching it: no rollback, no recorded outcome. Such a
deployment is recognised from its app's deploykit labels plus the deploy lock: once we hold
the lock, the client that PUT it cannot be watching any more (a live deploy holds the lock
until its deployment and rollback are over). The next deploy then
- adopts it when it deploys our very definition: watches it to the end as its own, rolling
  back on failure like any deploy (so a retried deploy of a broken release never reports
  "unchanged"), or
- sees it through first (watch; roll back on failure) when our definition differs, and then
  deploys ours from the settled app.
Either way the outcome is recorded in history, and `--force` is never needed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deploykit import labels as L
from deploykit import plan as planmod
from deploykit import watch as w
from deploykit.deploy.history_store import history_key, read_history, record_history
from deploykit.deploy.messages import deployment_age
from deploykit.deploy.report import (
    DeployFailure,
    DeployReport,
    OrphanReport,
    RollbackFailure,
)
from deploykit.deploy.watching import watch_existing
from deploykit.errors import DeployKitError

if TYPE_CHECKING:
    from deploykit.clients.locks import DeployLock
    from deploykit.deploy.deployment import Deployment
    from deploykit.deploy.inputs import Prepared


@dataclass(frozen=True)
class Orphan:
    """A running deployment of a deploykit-labelled definition."""

    deployment_id: str
    version: str | None  # the app version it deploys
    deployed_by: str | None
    definition: dict  # what it deploys, as Marathon has it

    def describe(self, deployments: list[dict] | None) -> str:
        dep = next((d for d in deployments or [] if d.get("id") == self.deployment_id), {})
        by = f" by {self.deployed_by}" if self.deployed_by else ""
        return f"deployment {self.deployment_id} ({deployment_age(dep.get('version'))}{by})"


def started_by_deploykit(app: dict) -> bool:
    labels = app.get("labels") or {}
    return bool(labels.get(L.DEPLOYKIT_SPEC_HASH) or labels.get(L.DEPLOYKIT_DEPLOYED_BY))


def find_orphan(current: dict | None, running: list[str]) -> Orphan | None:
    """The one running deployment of a deploykit-labelled app; the caller holds the deploy lock."""
    if current is None or len(running) != 1 or not started_by_deploykit(current):
        return None
    return Orphan(running[0], current.get("version"), (current.get("labels") or {}).get(L.DEPLOYKIT_DEPLOYED_BY),
                  planmod.definition(current))


def deployment_client(lock: DeployLock, app: dict) -> dict[str, Any]:
    """For `status`: is anyone watching the app's running deployment? (Reads the lock, never takes it.)"""
    holder = lock.current_holder()
    if holder is not None:
        state = "gone" if holder.gone() else "watching"
        message = (f"its deploy client is gone ({holder.describe()}); the lock's session expires within "
                   f"{lock.expiry_bound():g}s, then the next deploy adopts or waits for it"
                   if state == "gone" else f"watched by the deploy client {holder.describe()}")
        return {"state": state, "holder": holder.to_dict(), "message": message}
    if started_by_deploykit(app):
        return {"state": "gone", "holder": None,
                "message": "started by deploykit, but no deploy client holds the app's lock: nobody is watching "
                           "it; the next `deploykit deploy` adopts it (same definition) or waits for it"}
    return {"state": "not_deploykit", "holder": None, "message": "not started by deploykit"}


def _ended_well(outcome: dict[str, Any]) -> bool:
    result = str(outcome.get("result") or "")
    if result.startswith("rollback to "):
        return not result.endswith(" failed")
    return result in ("success", "rollback succeeded", "unknown")


def earlier_definition(run: Deployment, current: dict) -> tuple[str | None, dict | None]:
    """What served before `current`: the newest earlier version that differs from it and did not
    end badly by history (the version a failed rollback was leaving is no place to go back to)."""
    from deploykit.deploy.revert import same_definition

    marathon = run.clients.marathon
    outcomes = read_history(run.clients.consul, run.report.environment, run.app_id)
    for version in marathon.app_versions(run.app_id):
        if version == current.get("version") or (version in outcomes and not _ended_well(outcomes[version])):
            continue
        doc = marathon.app_version(run.app_id, version)
        if doc and not same_definition(doc, current):
            return version, planmod.definition(doc)
    return None, None  # a new app: nothing to go back to


def see_through(run: Deployment, orphan: Orphan, current: dict, prep: Prepared | None, action: str
                ) -> DeployReport:
    """Watch `orphan` to the end in `run` (its report says what happened), rolling back on failure."""
    report = run.report
    report.orphan = OrphanReport(orphan.deployment_id, orphan.version, orphan.deployed_by,
                                 deployment_age(_started(run, orphan)), action)
    run.progress("adopt", {"message": f"{orphan.describe(run.deployments_or_none())} has no deploy client any "
                                      "more; watching it to the end"})
    previous_version, previous = earlier_definition(run, current)
    if previous_version:
        report.versions.from_ = previous_version
    timeout = run.opts.timeout or w.default_timeout(orphan.definition)
    rb_timeout = run.opts.rollback_timeout or (w.default_timeout(previous) if previous else None)
    report.timings.timeout_budget_seconds = timeout
    report.timings.rollback_budget_seconds = rb_timeout
    report.timings.fail_fast_budget_seconds = w.fail_fast_budget(orphan.definition, run.opts.max_failures)
    rollout = watch_existing(run, orphan.deployment_id, orphan.version, orphan.definition, timeout)
    if rollout.outcome.ok:
        report.versions.to = rollout.version
        if prep is not None:
            run.gc(prep)
        run.progress("done", {"message": rollout.outcome.message})
        return report.finish("success")
    run.after_failure(rollout, previous, rb_timeout)


def outwait(run: Deployment, orphan: Orphan, current: dict) -> None:
    """Before deploying a different definition: see the orphan through in a report of its own."""
    sub = run.sibling(DeployReport(run.app_id, run.report.environment),
                      dataclasses.replace(run.opts, no_rollback=False, timeout=None))
    try:
        see_through(sub, orphan, current, None, "waited")
    except DeployFailure:
        pass  # it failed and was rolled back (or, a new app, left failed): ours replaces it next
    except RollbackFailure as exc:
        run.report.orphan = sub.report.orphan
        run.report.orphan.result = sub.report.result or "rollback_failed"
        raise RollbackFailure(f"a deployment left by a gone deploy client failed, and so did its rollback: {exc}",
                              run.report.finish("rollback_failed")) from None
    finally:
        record_history(run.clients.consul, sub.report, run.lock)
    run.report.orphan = sub.report.orphan
    run.report.orphan.result = sub.report.result or "?"


def note_unrecorded(run: Deployment, current: dict | None) -> None:
    """The current version was deployed by a client that died before it recorded how it ended
    (the deployment finished meanwhile): record what Marathon shows now."""
    if current is None or not current.get("version") or not started_by_deploykit(current):
        return
    key = history_key(run.report.environment, run.app_id, current["version"])
    try:
        if run.clients.consul.get(key) is not None:
            return
    except DeployKitError:
        return
    tasks = [t for t in current.get("tasks") or [] if t.get("state") == "TASK_RUNNING"]
    has_health = bool(current.get("healthChecks"))
    healthy = [t for t in tasks if t.get("version") == current["version"] and w._task_healthy(t, has_health)]
    result = "success" if len(healthy) >= int(current.get("instances") or 0) else "unknown"
    note = DeployReport(run.app_id, run.report.environment)
    note.deployed_version = current["version"]
    note.result = result
    record_history(run.clients.consul, note, run.lock, reason="its deploy client was gone before it ended")


def _started(run: Deployment, orphan: Orphan) -> str | None:
    for dep in run.deployments_or_none() or []:
        if dep.get("id") == orphan.deployment_id:
            return dep.get("version")
    return None
