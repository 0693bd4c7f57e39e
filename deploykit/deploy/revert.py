"""`deploykit rollback`: return an app to an earlier Marathon version and watch it like a deploy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deploykit import plan as planmod
from deploykit import watch as w
from deploykit.deploy.deployment import Deployment, ProgressFn, missing_config
from deploykit.deploy.history_store import record_history
from deploykit.deploy.inputs import DeployOptions, Target, app_config_prefix
from deploykit.deploy.messages import follow_hint
from deploykit.deploy.report import DeployReport, Failure, RollbackFailure, as_reported
from deploykit.deploy.watching import Stop, put_and_watch
from deploykit.deploy.wiring import Clients, connected
from deploykit.errors import DeployKitError, Problem, ValidationError

if TYPE_CHECKING:
    from deploykit.clients.marathon import MarathonClient


def rollback(
    target: Target,
    *,
    to_version: str | None = None,
    opts: DeployOptions | None = None,
    clients: Clients | None = None,
    progress: ProgressFn | None = None,
    stop: Stop | None = None,
) -> dict:
    """`deploykit rollback`: PUT an earlier version (default: the newest that differs) and watch it."""
    opts = opts or DeployOptions(app_path="", env_name=target.environment.name)
    report = DeployReport(target.app_id, target.environment.name)
    with connected(target.environment, clients=clients) as wired:
        run = Deployment(wired, opts, report, target.app_id, target.environment, progress=progress, stop=stop)
        return roll_back_to(run, target, to_version).to_dict()


def roll_back_to(run: Deployment, target: Target, to_version: str | None) -> DeployReport:
    """PUT the chosen earlier version under the lock and watch it like a deploy."""
    report, marathon = run.report, run.clients.marathon
    try:
        current = marathon.get_app(target.app_id)
    except DeployKitError as exc:
        raise as_reported(exc, report) from None
    if current is None:
        raise ValidationError([Problem(None, "APP", f"Marathon has no app {target.app_id}")])
    report.versions.from_ = current.get("version")
    try:
        run.take_lock()
    except DeployKitError as exc:
        raise as_reported(exc, report) from None
    lock = run.lock
    try:
        chosen, definition = rollback_target(marathon, target.app_id, current, to_version)
        report.rollback_to = chosen
        cfg_hash = missing_config(run.clients.consul, app_config_prefix(target.environment, target.app_id),
                                  definition)
        if cfg_hash:
            raise ValidationError(
                [Problem(None, "--to", f"version {chosen} needs config {cfg_hash}, which is gone from Consul",
                         "deploy that version's app.yaml again instead")]
            )
        run.refuse_running(current)
        timeout = run.opts.timeout or w.default_timeout(definition)
        report.timings.timeout_budget_seconds = timeout
        rollout = put_and_watch(run, definition, timeout, force=run.opts.force, phase="deploy")
        if rollout.outcome.ok:
            report.versions.to = rollout.version
            report.finish("success")
            record_history(run.clients.consul, report, lock, result=f"rollback to {chosen}")
            return report
        report.failure = Failure.of(rollout.outcome)
        record_history(run.clients.consul, report, lock, result=f"rollback to {chosen} failed")
        raise RollbackFailure(
            f"rollback to {chosen} failed: {rollout.outcome.message}. A human is needed. "
            f"{follow_hint(target.environment.name, target.app_id, rollout.deployment_id)}",
            report.finish("failed"),
        )
    finally:
        lock.release()


def same_definition(a: dict, b: dict) -> bool:
    return planmod.make_plan(planmod.definition(a), planmod.definition(b)).unchanged


def rollback_target(marathon: MarathonClient, app_id: str, current: dict, to_version: str | None
                     ) -> tuple[str, dict]:
    versions = marathon.app_versions(app_id)
    if to_version:
        doc = marathon.app_version(app_id, to_version)
        if doc is None:
            hint = f"known: {', '.join(versions[:5])}" if versions else "see `deploykit history`"
            raise ValidationError([Problem(None, "--to", f"Marathon has no version {to_version} of {app_id}", hint)])
        return to_version, planmod.definition(doc)
    for version in versions:
        if version == current.get("version"):
            continue
        doc = marathon.app_version(app_id, version)
        if doc and not same_definition(doc, current):
            return version, planmod.definition(doc)
    raise ValidationError([Problem(None, "APP", f"{app_id} has no earlier version that differs from the current one")])
