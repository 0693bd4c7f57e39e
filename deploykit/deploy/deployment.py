"""The deploy and rollback state machine (DESIGN §4; the ordering argument is in docs/deploy.md).

validate -> Marathon answers -> plan -> lock -> plan again -> config -> PUT + wait -> success
(GC) or roll back. A `Deployment` holds what every step needs (clients, options, lock,
report, progress and stop callbacks), so each step is a short method and every exit path
leaves the report complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NoReturn

from deploykit import labels as L
from deploykit import plan as planmod
from deploykit import watch as w
from deploykit.clients.locks import Holder, LockHeld
from deploykit.deploy import orphans
from deploykit.deploy.history_store import record_history
from deploykit.deploy.inputs import DeployOptions, Prepared, app_config_prefix, prepare
from deploykit.deploy.messages import follow_hint, locked_message, still_deploying_message
from deploykit.deploy.report import (
    ConfigReport,
    DeployFailure,
    DeployInterrupted,
    DeployLocked,
    DeployReport,
    Failure,
    LockReport,
    ReportedError,
    RollbackFailure,
    RollbackReport,
    as_reported,
    scrub_error,
)
from deploykit.deploy.watching import Rollout, Stop, put_and_watch
from deploykit.deploy.wiring import Clients, connected
from deploykit.errors import DeployKitError, InternalError, Problem, ValidationError

if TYPE_CHECKING:
    from deploykit.clients.consul import ConsulClient
    from deploykit.clients.locks import DeployLock
    from deploykit.clients.marathon import MarathonClient
    from deploykit.envs import Environment

ProgressFn = Callable[[str, dict], None]


def _quiet(_phase: str, _info: dict) -> None:
    pass


def deploy(
    opts: DeployOptions,
    *,
    clients: Clients | None = None,
    environ: Mapping[str, str] | None = None,
    progress: ProgressFn | None = None,
    stop: Stop | None = None,
) -> dict:
    """Run `deploykit deploy`; returns the report's JSON, or raises an error carrying the report."""
    prep = prepare(opts, environ)
    report = DeployReport(prep.app_id, prep.environment.name, started=time.monotonic() - prep.validate_seconds)
    report.timing("validate_seconds", prep.validate_seconds)
    report.image = prep.image
    report.config = ConfigReport(prep.config_prefix, prep.config_hash, len(prep.config_items))
    report.force = opts.force
    try:
        with connected(prep.environment, environ, clients=clients) as wired:
            run = Deployment(wired, opts, report, prep.app_id, prep.environment, progress=progress, stop=stop)
            return run.deploy(prep).to_dict()
    except DeployKitError as exc:
        raise scrub_error(exc, prep.secret_values()) from None


def plan_for(prep: Prepared, consul: ConsulClient, current: dict | None) -> planmod.Plan:
    """The change from the live app (and Consul's config versions) to what `prep` would PUT."""
    cfg = None
    if prep.config_hash:
        known = {h for h, _ in consul.list_config_versions(prep.app_prefix)}
        cfg = planmod.ConfigPlan(
            prefix=prep.config_prefix or "",
            hash=prep.config_hash,
            keys=sorted(prep.config_items),
            exists=prep.config_hash in known,
        )
    return planmod.make_plan(prep.desired, current, config=cfg, secret_env=prep.secret_env)


def put_body(desired: dict, current: dict | None, plan: planmod.Plan) -> dict:
    """What to PUT. For a scale-only change the live label values are kept: Marathon restarts
    every task when a label changes, and a scale must only start or stop the difference."""
    if plan.kind != "scale" or current is None:
        return desired
    body = dict(desired)
    body["labels"] = {**desired.get("labels", {}), **(current.get("labels") or {})}
    return body


def running_deployments(app: dict | None) -> list[str]:
    return [d.get("id") for d in (app or {}).get("deployments") or [] if d.get("id")]


def missing_config(consul: ConsulClient, app_prefix: str, definition: dict) -> str | None:
    """The config hash a definition's tasks would need, when Consul no longer has it."""
    wanted = (definition.get("labels") or {}).get(L.DEPLOYKIT_CONFIG_HASH)
    if not wanted:
        return None
    try:
        known = {h for h, _ in consul.list_config_versions(app_prefix)}
    except DeployKitError:
        return None  # cannot tell; Marathon still restores the previous definition
    return None if wanted in known else wanted


def referenced_config_hashes(marathon: MarathonClient, app_id: str, limit: int = 100) -> set[str]:
    """Config hashes named by the versions Marathon still keeps (their rollback needs them)."""
    hashes: set[str] = set()
    for version in marathon.app_versions(app_id)[:limit]:
        app = marathon.app_version(app_id, version)
        label = ((app or {}).get("labels") or {}).get(L.DEPLOYKIT_CONFIG_HASH)
        if label:
            hashes.add(label)
    return hashes


class Deployment:
    """One `deploy` or `rollback` run of one app: its clients, options, lock and report."""

    def __init__(self, clients: Clients, opts: DeployOptions, report: DeployReport, app_id: str,
                 environment: Environment, *, progress: ProgressFn | None = None, stop: Stop | None = None) -> None:
        self.clients = clients
        self.opts = opts
        self.report = report
        self.app_id = app_id
        self.environment = environment
        self.progress = progress or _quiet
        self.stop = stop or Stop()
        self._lock: DeployLock | None = None

    def sibling(self, report: DeployReport, opts: DeployOptions) -> Deployment:
        """Another run on the same app under the same lock (seeing a gone client's deployment through)."""
        other = Deployment(self.clients, opts, report, self.app_id, self.environment, progress=self.progress,
                           stop=self.stop)
        other._lock = self._lock
        return other

    # ----------------------------------------------------------------------- shared steps
    @property
    def lock(self) -> DeployLock:
        if self._lock is None:
            raise InternalError("the deploy lock was used before it was taken")
        return self._lock

    def check_lock(self) -> None:
        """Before each change: stop right here (exit 3) unless we certainly still hold the lock."""
        try:
            self.lock.check()
        except DeployKitError as exc:
            self.report.failure = Failure("lock_lost", str(exc))
            raise as_reported(exc, self.report) from None

    def take_lock(self, lock: DeployLock | None = None) -> Holder | None:
        """Acquire `lock` (default: a new one for the app) within --lock-timeout; a holder that is gone
        (killed) is waited out, however long --lock-timeout is, up to its session's expiry. Returns that
        gone holder, if any."""
        lock = self._lock = lock or self.clients.lock_factory(self.app_id)
        try:
            lock.acquire(self.opts.lock_timeout)
            return None
        except LockHeld as exc:
            if exc.expires_within is None or exc.holder is None:
                raise
            self.progress("lock", {"message": f"{exc}; waiting for it to expire"})
            lock.acquire(exc.expires_within)
            return exc.holder

    def deployments_or_none(self) -> list[dict] | None:
        try:
            return self.clients.marathon.deployments()
        except DeployKitError:
            return None

    def _current(self, prep: Prepared) -> tuple[dict | None, planmod.Plan]:
        """The live app and the plan against it; Marathon (and Consul) must answer."""
        try:
            current = self.clients.marathon.get_app(prep.app_id)
            plan = plan_for(prep, self.clients.consul, current)
        except DeployKitError as exc:
            raise as_reported(exc, self.report) from None
        self.report.plan = plan
        self.report.versions.from_ = current.get("version") if current else None
        return current, plan

    def refuse_running(self, current: dict | None) -> None:
        running = running_deployments(current)
        if running and not self.opts.force:
            raise DeployLocked(locked_message(self.app_id, running, self.deployments_or_none()),
                               self.report.finish("locked"))

    def _refuse_route_conflicts(self, prep: Prepared) -> None:
        """A service port or vhost+path another app holds is refused before any change (exit 2).

        The lb daemons would keep routing the holder and reject this app (lb.claims); better to say so now
        than to deploy an app no load balancer will route.
        """
        if "HAPROXY_GROUP" not in (prep.desired.get("labels") or {}):
            return
        from deploykit.lb.model import route_conflicts

        try:
            apps = self.clients.marathon.list_apps(embed=())
        except DeployKitError as exc:
            raise as_reported(exc, self.report) from None
        http_port = prep.environment.haproxy.http_port if prep.environment.haproxy else 80
        conflicts = route_conflicts(prep.desired, apps, http_port=http_port)
        if conflicts:
            problems = [Problem(self.opts.app_path, "haproxy", c.reason,
                                hint=f"choose another one, or free it in {c.holder} first") for c in conflicts]
            raise as_reported(ValidationError(problems), self.report) from None

    # ----------------------------------------------------------------------- deploy
    def deploy(self, prep: Prepared) -> DeployReport:
        report = self.report
        self.progress("connect", {"what": "Marathon"})
        current, plan = self._current(prep)  # Marathon must answer before any change
        if self.opts.dry_run:
            report.lines = plan.lines()
            return report.finish("dry_run")
        if plan.unchanged and (plan.config is None or plan.config.exists) and not running_deployments(current):
            return self._unchanged()

        self.progress("lock", {"what": f"{prep.environment.name}{prep.app_id}"})
        t_lock = time.monotonic()
        lock = self.clients.lock_factory(prep.app_id)
        report.lock = LockReport(lock.name, type(lock).__name__)
        try:
            gone = self.take_lock(lock)
        except DeployKitError as exc:
            holder = exc.holder if isinstance(exc, LockHeld) else None
            report.lock.holder = holder.to_dict() if holder else None
            if isinstance(exc, LockHeld) and plan.unchanged:  # never "unchanged" while still being deployed
                exc = LockHeld(f"{prep.app_id} is still being deployed to this very definition (deployment(s) "
                               f"{', '.join(running_deployments(current))}); {exc}", exc.holder, exc.expires_within)
            raise as_reported(exc, report) from None
        report.timing("lock_seconds", time.monotonic() - t_lock)
        report.lock.holder = lock.holder.to_dict()
        if gone is not None:
            report.lock.gone_holder = gone.to_dict()
        try:
            self._locked_deploy(prep)
        except DeployKitError as exc:
            if isinstance(exc, ReportedError):
                record_history(self.clients.consul, report, lock)
            raise
        else:
            record_history(self.clients.consul, report, lock)
            return report
        finally:
            lock.release()

    def _unchanged(self) -> DeployReport:
        """Nothing to PUT, and no deployment running (one still running is never "unchanged")."""
        self.progress("unchanged", {"message": "nothing to change; no deployment created"})
        self.report.versions.to = self.report.versions.from_
        return self.report.finish("unchanged")

    def _unattended(self, current: dict | None, plan: planmod.Plan) -> orphans.Orphan | None:
        """A running deployment under our lock: a gone client's (returned), or someone else's (exit 3)."""
        running = running_deployments(current)
        if not running or (self.opts.force and not plan.unchanged):
            return None  # nothing running, or --force: our PUT cancels it
        orphan = orphans.find_orphan(current, running)
        if orphan is not None:
            return orphan
        if plan.unchanged:
            raise DeployLocked(still_deploying_message(self.app_id, self.report.environment, running,
                                                       self.deployments_or_none()), self.report.finish("locked"))
        self.refuse_running(current)
        return None

    def _locked_deploy(self, prep: Prepared) -> DeployReport:
        report = self.report
        current, plan = self._current(prep)  # someone may have deployed while we waited for the lock
        orphan = self._unattended(current, plan)
        self._refuse_route_conflicts(prep)
        force, replaces_failed = self.opts.force, False
        if orphan is None:
            orphans.note_unrecorded(self, current)
        elif not plan.unchanged:
            orphans.outwait(self, orphan, current)  # settle it, then deploy ours on top
            current, plan = self._current(prep)
            left = running_deployments(current)
            # it failed with nothing to roll back to (a new app): ours replaces it, and is not rolled back to it
            replaces_failed = left == [orphan.deployment_id]
            force = force or replaces_failed
            if left and not replaces_failed:
                self.refuse_running(current)
            orphan = None

        # config first: if Consul fails, Marathon is never touched
        if prep.config_prefix and not (plan.config and plan.config.exists):
            self.check_lock()
            self.progress("config", {"prefix": prep.config_prefix, "keys": len(prep.config_items)})
            t_cfg = time.monotonic()
            try:
                result = self.clients.consul.write_config_tree(prep.config_prefix, prep.config_items)
            except DeployKitError as exc:
                raise as_reported(exc, report) from None
            report.config.written = bool(result.written)
            report.timing("config_seconds", time.monotonic() - t_cfg)
        elif prep.config_prefix:
            report.config.written = False

        if orphan is not None:  # our very definition is being deployed: adopt it
            return orphans.see_through(self, orphan, current or {}, prep, "adopted")
        if plan.unchanged:
            return self._unchanged()

        previous = planmod.definition(current) if current and not replaces_failed else None
        timeout = self.opts.timeout or w.default_timeout(prep.desired)
        rb_timeout = self.opts.rollback_timeout or (w.default_timeout(previous) if previous else None)
        report.timings.timeout_budget_seconds = timeout
        report.timings.rollback_budget_seconds = rb_timeout
        report.timings.fail_fast_budget_seconds = w.fail_fast_budget(prep.desired, self.opts.max_failures)
        rollout = put_and_watch(self, put_body(prep.desired, current, plan), timeout, force=force, phase="deploy")
        if rollout.outcome.ok:
            report.versions.to = rollout.version
            self.gc(prep)
            self.progress("done", {"message": rollout.outcome.message})
            return report.finish("success")
        self.after_failure(rollout, previous, rb_timeout)

    def after_failure(self, rollout: Rollout, previous: dict | None, rb_timeout: float | None) -> NoReturn:
        """Our deployment failed: roll back to `previous`, unless that would be wrong or impossible."""
        report, outcome, env_name = self.report, rollout.outcome, self.environment.name
        report.failure = Failure.of(outcome)
        follow = follow_hint(env_name, self.app_id, rollout.deployment_id)
        if outcome.reason == w.SUPERSEDED:
            # Someone else's deployment took the app over: rolling back would clobber theirs.
            report.rollback = RollbackReport(attempted=False, why="another deployment took over the app")
            report.instructions = follow
            raise DeployLocked(
                f"{outcome.message}; not rolled back, the app now belongs to that deployment. {follow}",
                report.finish("superseded"),
            )
        if self.opts.no_rollback or previous is None:
            why = "--no-rollback given" if self.opts.no_rollback else "the app is new, there is no previous version"
            report.rollback = RollbackReport(attempted=False, why=why)
            report.instructions = follow
            raise DeployFailure(
                f"{outcome.message}; not rolled back ({why}); the deployment is left as it is. {follow}",
                report.finish("failed"),
            )
        missing = missing_config(self.clients.consul, app_config_prefix(self.environment, self.app_id), previous)
        if missing:
            report.rollback = RollbackReport(attempted=False, why=f"config version {missing} is gone from Consul")
            raise RollbackFailure(
                f"{outcome.message}; the previous version needs config {missing}, which is gone from Consul, so it "
                f"was not restored. A human is needed. {follow}",
                report.finish("rollback_failed"),
            )
        self.progress("rollback", {"reason": outcome.reason, "message": outcome.message})
        rb_started = time.monotonic()
        try:
            back = put_and_watch(self, previous, rb_timeout or 300.0, force=True, phase="rollback")
        except (DeployInterrupted, DeployLocked):
            raise
        except DeployKitError as exc:
            report.rollback = RollbackReport(attempted=True, ok=False, error=str(exc))
            raise RollbackFailure(
                f"{outcome.message}; the rollback failed too: {exc}. A human is needed. {follow}",
                report.finish("rollback_failed"),
            ) from None
        report.timing("rollback_seconds", time.monotonic() - rb_started)
        report.rollback = RollbackReport(attempted=True, ok=back.outcome.ok, deployment_id=back.deployment_id,
                                         version=back.version, outcome=back.outcome)
        if not back.outcome.ok:
            raise RollbackFailure(
                f"{outcome.message}; the rollback to {report.versions.from_} failed too: {back.outcome.message}. "
                f"A human is needed. {follow_hint(env_name, self.app_id, back.deployment_id)}",
                report.finish("rollback_failed"),
            )
        report.versions.to = back.version
        raise DeployFailure(
            f"{outcome.message}; rolled back to the previous definition (now version {back.version})",
            report.finish("rolled_back"),
        )

    def gc(self, prep: Prepared) -> None:
        """Delete old config versions, keeping the newest N and every hash a known version uses."""
        if not prep.config_hash:
            return
        consul = self.clients.consul
        try:
            self.lock.check()
            keep = prep.environment.consul.keep_versions
            if len(consul.list_config_versions(prep.app_prefix)) <= keep:
                self.report.config.gc_deleted = []
                return  # nothing could go: skip asking Marathon about every version
            referenced = referenced_config_hashes(self.clients.marathon, prep.app_id)
            referenced.add(prep.config_hash)
            self.report.config.gc_deleted = list(consul.gc_config(prep.app_prefix, keep, referenced) or [])
        except DeployKitError as exc:
            self.report.errors.append(f"config GC skipped: {exc}")
