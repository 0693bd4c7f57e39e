"""The deploy: validate -> lock -> config -> Marathon -> wait -> roll back (DESIGN §4).

Also `diff`, `status`, `history` and `rollback`, which share its pieces. The CLI only
parses options and prints what these functions return (a JSON-able report) or raise (a
deploykit error whose `to_dict()` carries the same report).

Ordering is the safety argument:
1. Every input (app.yaml, environment file, secrets, image, credentials) is checked
   before any network call; all problems at once (exit 2).
2. Marathon must answer before anything is written (exit 4, Consul untouched).
3. The per-(env, app) lock is taken; it is re-checked before each later change, and its
   loss aborts the deploy there (exit 3), leaving Marathon's deployment to a human.
4. The config tree goes to Consul first; if that fails Marathon is never touched (exit 4).
5. The event stream is subscribed *before* the PUT so a fast deployment cannot be missed;
   /v2/deployments and the app are polled as a fallback (watch.py decides).
6. On failure the previous definition is PUT back with force=true (our failed deployment
   still holds the app) and watched the same way under its own budget.
7. Old config versions are garbage-collected, keeping every hash a known version uses.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from deploykit import labels as L
from deploykit import plan as planmod
from deploykit import watch as w
from deploykit.errors import (
    EXIT_INTERRUPTED,
    DeployFailed,
    DeployKitError,
    InternalError,
    LockedError,
    Problem,
    RollbackFailed,
    ValidationError,
)

log = logging.getLogger(__name__)

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

ProgressFn = Callable[[str, dict], None]


# --------------------------------------------------------------------------- errors with reports
class _Reported:
    """Mixin: an error that carries the deploy report, so --output json still prints all of it."""

    report: dict

    def to_dict(self) -> dict:
        return {**self.report, "error": type(self).__name__, "message": str(self)}


class DeployFailure(_Reported, DeployFailed):
    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


class RollbackFailure(_Reported, RollbackFailed):
    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


class DeployLocked(_Reported, LockedError):
    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


class DeployInterrupted(_Reported, DeployKitError):
    """Ctrl-C / SIGTERM while waiting: the deployment is left running as it is."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


class Unreachable(_Reported, DeployKitError):
    """A client error (unreachable, refused, rejected...) with the report of what was done so far.

    Keeps the cause's exit code and names the cause's type in `error`.
    """

    def __init__(self, cause: DeployKitError, report: dict):
        super().__init__(str(cause))
        self.exit_code = cause.exit_code
        self.cause_type = type(cause).__name__
        self.report = report

    def to_dict(self) -> dict:
        return {**super().to_dict(), "error": self.cause_type}


# --------------------------------------------------------------------------- options and context
@dataclass
class DeployOptions:
    app_path: str
    env_name: str
    env_dir: str | None = None
    image_tag: str | None = None
    image_digest: str | None = None
    from_build: str | None = None
    timeout: float | None = None  # None: derived from the app
    rollback_timeout: float | None = None
    lock_timeout: float = 0.0
    no_rollback: bool = False
    dry_run: bool = False
    force: bool = False
    max_failures: int = 2
    poll_interval: float = 1.0
    event_heartbeat: float = 10.0  # Marathon's SSE heartbeat; 2x silence = dead stream
    rollback_on_interrupt: bool = False  # Ctrl-C/SIGTERM while waiting rolls back instead of leaving it


@dataclass
class Clients:
    """Everything that talks to the network, injected (tests pass their own)."""

    marathon: Any
    consul: Any
    lock_factory: Callable[[str], Any]  # app_id -> DeployLock
    close: Callable[[], None] = lambda: None


@dataclass
class Prepared:
    """A validated deploy: what would be PUT, where its config goes, and who is deploying."""

    environment: Any
    spec: Any
    app_id: str
    desired: dict  # with real secret values: only ever sent to Marathon
    secret_env: frozenset[str]
    image: str | None
    config_items: dict[str, bytes]
    config_hash: str | None
    config_prefix: str | None
    app_prefix: str
    deployed_by: str
    git_sha: str | None
    validate_seconds: float


class Stop:
    """Set by a signal handler (record only); the wait loop acts on it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.why: str | None = None

    def request(self, why: str) -> None:
        self.why = why
        self.event.set()


# --------------------------------------------------------------------------- validation
def _collect(problems: list[Problem], fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ValidationError as exc:
        problems.extend(exc.problems)
        return None


def prepare(opts: DeployOptions, environ: Mapping[str, str] | None = None) -> Prepared:
    """Load and check every input; no network. Raises ValidationError with all problems."""
    from deploykit.envs import load_environment
    from deploykit.render.config import config_prefix
    from deploykit.render.marathon import image_reference, render_with_config
    from deploykit.spec import load_app, resolve_secrets

    environ = os.environ if environ is None else environ
    t0 = time.monotonic()
    problems: list[Problem] = []
    environment = _collect(problems, lambda: load_environment(opts.env_name, opts.env_dir))
    if environment is None:
        # the app's own problems are still worth showing with the environment's
        _collect(problems, lambda: load_app(opts.app_path, None))
        raise ValidationError(problems)
    spec = _collect(problems, lambda: load_app(opts.app_path, opts.env_name, environment))
    if spec is None:
        raise ValidationError(problems)
    secrets = _collect(problems, lambda: resolve_secrets(spec, environ)) or {}
    record = None
    if opts.from_build:
        from deploykit.buildrecord import load_record

        record = _collect(problems, lambda: load_record(opts.from_build))
    image = _collect(problems, lambda: image_reference(spec, opts.image_tag, opts.image_digest, record))
    if environment.marathon.auth and not environment.marathon_password(environ):
        problems.append(
            Problem(
                str(environment.file),
                "default_attributes.deploykit.marathon.auth.password_env",
                f"environment variable {environment.marathon.auth.password_env} is not set",
                "export it before deploying (its value is never printed)",
            )
        )
    if environment.consul.token_env and not environment.consul_token(environ):
        log.info("%s is not set; talking to Consul without a token", environment.consul.token_env)
    if problems:
        raise ValidationError(problems)

    from deploykit.clients.locks import Holder

    holder = Holder.current(environ)
    deployed_by = f"{holder.user}@{holder.host}" + (f" {holder.build_url}" if holder.build_url else "")
    git_sha = None
    with contextlib.suppress(Exception):
        from deploykit.gitinfo import read_git_info

        info = read_git_info(spec.app_dir, environ)
        git_sha = info.sha if info else None
    # render_with_config: `deploykit render` and the deploy agree on the config prefix and hash
    desired, tree = render_with_config(
        spec, environment, image, secrets=secrets, mask_secrets=False, deployed_by=deployed_by, git_sha=git_sha
    )
    app_id = "/" + spec.id.strip("/")
    prefix = config_prefix(environment.consul.prefix, app_id, tree.hash) if tree.hash else None
    if prefix is not None and desired.get("env", {}).get(L.CONFIG_PREFIX_ENV) != prefix:
        raise InternalError(f"rendered {L.CONFIG_PREFIX_ENV} does not match config prefix {prefix}")
    return Prepared(
        environment=environment,
        spec=spec,
        app_id=app_id,
        desired=desired,
        secret_env=frozenset(spec.secrets),
        image=image,
        config_items=tree.items,
        config_hash=tree.hash,
        config_prefix=prefix,
        app_prefix=f"{environment.consul.prefix.strip('/')}/{app_id.strip('/')}",
        deployed_by=deployed_by,
        git_sha=git_sha,
        validate_seconds=round(time.monotonic() - t0, 3),
    )


# --------------------------------------------------------------------------- clients from an environment
def make_clients(environment: Any, environ: Mapping[str, str] | None = None) -> Clients:
    """Build the Marathon, Consul and lock clients an environment file describes."""
    from deploykit.clients.consul import ConsulClient
    from deploykit.clients.locks import ConsulDeployLock, Holder, ZkDeployLock
    from deploykit.clients.marathon import MarathonClient, static_leader, zk_leader_provider

    environ = os.environ if environ is None else environ
    auth = None
    if environment.marathon.auth:
        auth = (environment.marathon.auth.user, environment.marathon_password(environ) or "")
    consul = ConsulClient(environment.consul.url, token=environment.consul_token(environ))
    zk_client = None
    closers: list[Callable[[], None]] = []

    def zk() -> Any:
        nonlocal zk_client
        if zk_client is None:
            from deploykit.clients.zk import connect

            hosts = environment.zookeeper.hosts if environment.zookeeper else None
            if hosts is None and environment.marathon.zk:
                from deploykit.clients.zk import parse_zk_url

                hosts = parse_zk_url(environment.marathon.zk).hosts
            zk_client = connect(hosts)
            closers.append(lambda: (zk_client.stop(), zk_client.close()))
        return zk_client

    if environment.marathon.zk:
        from deploykit.clients.zk import parse_zk_url

        url = parse_zk_url(environment.marathon.zk)
        fallback = [u.rstrip("/") for u in environment.marathon.urls]

        def provider() -> list[str]:
            try:
                client = zk()
            except DeployKitError as exc:  # ZooKeeper down: Marathon's own URLs still work
                log.warning("no ZooKeeper for the Marathon leader (%s); using the URL list", exc)
                return fallback
            return zk_leader_provider(client, url.path, fallback)()

        marathon = MarathonClient(provider, auth=auth)
    else:
        marathon = MarathonClient(static_leader(environment.marathon.urls), auth=auth)
    closers.append(marathon.close)

    def lock_factory(app_id: str) -> Any:
        holder = Holder.current(environ)
        if environment.lock == "zookeeper":
            root = environment.zookeeper.lock_root if environment.zookeeper else "/deploykit/locks"
            return ZkDeployLock(zk(), root, environment.name, app_id, holder)
        return ConsulDeployLock(consul, "deploykit/locks", environment.name, app_id, holder)

    def close() -> None:
        for fn in reversed(closers):
            with contextlib.suppress(Exception):
                fn()

    return Clients(marathon=marathon, consul=consul, lock_factory=lock_factory, close=close)


# --------------------------------------------------------------------------- the deploy
@dataclass
class Run:
    """Mutable report being built during one deploy/rollback."""

    command: str
    app_id: str
    environment: str
    started: float = field(default_factory=time.monotonic)
    report: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.report.update(
            {
                "result": None,
                "app_id": self.app_id,
                "environment": self.environment,
                "deploymentId": None,
                "versions": {"from": None, "to": None},
                "timings": {},
                "errors": [],
            }
        )

    def timing(self, name: str, seconds: float) -> None:
        self.report["timings"][name] = round(seconds, 3)

    def finish(self, result: str) -> dict:
        self.report["result"] = result
        self.timing("total_seconds", time.monotonic() - self.started)
        self.report["elapsed_seconds"] = self.report["timings"]["total_seconds"]
        return self.report


def deploy(
    opts: DeployOptions,
    *,
    clients: Clients | None = None,
    environ: Mapping[str, str] | None = None,
    progress: ProgressFn | None = None,
    stop: Stop | None = None,
) -> dict:
    """Run `deploykit deploy`; returns the report, or raises an error carrying it."""
    progress = progress or (lambda _phase, _info: None)
    prep = prepare(opts, environ)
    run = Run("deploy", prep.app_id, prep.environment.name, started=time.monotonic() - prep.validate_seconds)
    run.timing("validate_seconds", prep.validate_seconds)
    run.report.update(
        {
            "image": prep.image,
            "config": {"prefix": prep.config_prefix, "hash": prep.config_hash, "keys": len(prep.config_items)},
            "force": opts.force,
        }
    )
    own = clients is None
    clients = clients or make_clients(prep.environment, environ)
    try:
        return _deploy(opts, prep, clients, run, progress, stop or Stop())
    except DeployKitError as exc:
        secrets = [prep.desired["env"][k] for k in prep.secret_env if prep.desired.get("env", {}).get(k)]
        raise scrub_error(exc, secrets) from None
    finally:
        if own:
            clients.close()


def scrub_error(exc: DeployKitError, secrets: list[str]) -> DeployKitError:
    """Last line of defence: a server echoing a secret back (e.g. in a 422 body) never reaches output."""
    if not secrets:
        return exc
    import json

    def clean(text: str) -> str:
        for value in secrets:
            text = text.replace(value, planmod.redact(value))
        return text

    if exc.args and isinstance(exc.args[0], str):
        exc.args = (clean(exc.args[0]), *exc.args[1:])
    for attr in ("report", "body"):
        value = getattr(exc, attr, None)
        if value is not None:
            setattr(exc, attr, json.loads(clean(json.dumps(value, default=str))))
    return exc


def _plan(prep: Prepared, clients: Clients, current: dict | None) -> planmod.Plan:
    cfg = None
    if prep.config_hash:
        known = {h for h, _ in clients.consul.list_config_versions(prep.app_prefix)}
        cfg = planmod.ConfigPlan(
            prefix=prep.config_prefix or "",
            hash=prep.config_hash,
            keys=sorted(prep.config_items),
            exists=prep.config_hash in known,
        )
    return planmod.make_plan(prep.desired, current, config=cfg, secret_env=prep.secret_env)


def diff(opts: DeployOptions, *, clients: Clients | None = None, environ: Mapping[str, str] | None = None) -> dict:
    """`deploykit diff` / `deploy --dry-run`: the exact change; touches nothing."""
    prep = prepare(opts, environ)
    own = clients is None
    clients = clients or make_clients(prep.environment, environ)
    try:
        current = clients.marathon.get_app(prep.app_id)
        plan = _plan(prep, clients, current)
    finally:
        if own:
            clients.close()
    return {
        "result": "unchanged" if plan.unchanged else "changes",
        "app_id": prep.app_id,
        "environment": prep.environment.name,
        "image": prep.image,
        "plan": plan.to_dict(),
        "lines": plan.lines(),
        "versions": {"from": current.get("version") if current else None, "to": None},
    }


def _deploy(opts: DeployOptions, prep: Prepared, clients: Clients, run: Run, progress: ProgressFn, stop: Stop) -> dict:
    marathon = clients.marathon
    progress("connect", {"what": "Marathon"})
    try:
        current = marathon.get_app(prep.app_id)  # Marathon must answer before any change
        plan = _plan(prep, clients, current)
    except DeployKitError as exc:
        raise _as_reported(exc, run) from None
    run.report["plan"] = plan.to_dict()
    run.report["versions"]["from"] = current.get("version") if current else None
    if opts.dry_run:
        run.report["lines"] = plan.lines()
        return run.finish("dry_run")
    if plan.unchanged and (plan.config is None or plan.config.exists):
        return _unchanged(current, run, progress)

    progress("lock", {"what": f"{prep.environment.name}{prep.app_id}"})
    t_lock = time.monotonic()
    lock = clients.lock_factory(prep.app_id)
    run.report["lock"] = {"name": getattr(lock, "name", None), "kind": type(lock).__name__}
    try:
        lock.acquire(opts.lock_timeout)
    except DeployKitError as exc:
        holder = getattr(exc, "holder", None)
        run.report["lock"]["holder"] = holder.to_dict() if holder else None
        raise _as_reported(exc, run) from None
    run.timing("lock_seconds", time.monotonic() - t_lock)
    holder = getattr(lock, "holder", None)
    run.report["lock"]["holder"] = holder.to_dict() if holder is not None else None
    try:
        report = _locked_deploy(opts, prep, clients, run, progress, stop, lock)
    except DeployKitError as exc:
        _record_history(clients, prep.environment.name, prep.app_id, getattr(exc, "report", None), lock)
        raise
    else:
        _record_history(clients, prep.environment.name, prep.app_id, report, lock)
        return report
    finally:
        lock.release()


HISTORY_PREFIX = "deploykit/history"


def _history_key(env_name: str, app_id: str, version: str) -> str:
    return f"{HISTORY_PREFIX}/{env_name}/{app_id.strip('/')}/{version}"


def _record_history(clients: Clients, env_name: str, app_id: str, report: dict | None, lock: Any) -> None:
    """Remember how each version we PUT ended (Marathon labels cannot: they are set before the outcome)."""
    if not report or lock.lost:
        return
    import json
    from datetime import datetime, timezone

    entries = []
    if report.get("deployedVersion"):
        entries.append((report["deployedVersion"], {
            "result": report.get("result"),
            "deploymentId": report.get("deploymentId"),
            "reason": (report.get("failure") or {}).get("reason"),
        }))
    rollback = report.get("rollback") or {}
    if rollback.get("version"):
        entries.append((rollback["version"], {
            "result": "rollback " + ("succeeded" if rollback.get("ok") else "failed"),
            "deploymentId": rollback.get("deploymentId"),
            "reason": None,
        }))
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for version, entry in entries:
        try:
            clients.consul.put(_history_key(env_name, app_id, version), json.dumps({**entry, "finished_at": now}))
        except DeployKitError as exc:
            report.setdefault("errors", []).append(f"history not recorded: {exc}")


def _body(desired: dict, current: dict | None, plan: planmod.Plan) -> dict:
    """What to PUT. For a scale-only change the live label values are kept: Marathon restarts
    every task when a label changes, and a scale must only start or stop the difference."""
    if plan.kind != "scale" or current is None:
        return desired
    body = dict(desired)
    body["labels"] = {**desired.get("labels", {}), **(current.get("labels") or {})}
    return body


def _unchanged(current: dict | None, run: Run, progress: ProgressFn) -> dict:
    """Nothing to PUT. A deployment still rolling toward this very definition is pointed out."""
    running = [d.get("id") for d in (current or {}).get("deployments") or [] if d.get("id")]
    message = "nothing to change; no deployment created"
    if running:
        note = f"a deployment to this definition is still running: {', '.join(running)}"
        run.report["errors"].append(note)
        message += f" ({note})"
    progress("unchanged", {"message": message})
    run.report["versions"]["to"] = run.report["versions"]["from"]
    return run.finish("unchanged")


def _locked_deploy(
    opts: DeployOptions, prep: Prepared, clients: Clients, run: Run, progress: ProgressFn, stop: Stop, lock: Any
) -> dict:
    marathon = clients.marathon
    try:
        # someone may have deployed while we waited for the lock: plan again
        current = marathon.get_app(prep.app_id)
        plan = _plan(prep, clients, current)
    except DeployKitError as exc:
        raise _as_reported(exc, run) from None
    run.report["plan"] = plan.to_dict()
    run.report["versions"]["from"] = current.get("version") if current else None
    running = [d.get("id") for d in (current or {}).get("deployments") or [] if d.get("id")]
    if running and not opts.force:
        raise DeployLocked(_locked_message(marathon, prep.app_id, running), _fail_report(run, "locked"))

    # config first: if Consul fails, Marathon is never touched
    if prep.config_prefix and not (plan.config and plan.config.exists):
        _check_lock(lock, run)
        progress("config", {"prefix": prep.config_prefix, "keys": len(prep.config_items)})
        t_cfg = time.monotonic()
        try:
            result = clients.consul.write_config_tree(prep.config_prefix, prep.config_items)
        except DeployKitError as exc:
            raise _as_reported(exc, run) from None
        run.report["config"]["written"] = bool(getattr(result, "written", True))
        run.timing("config_seconds", time.monotonic() - t_cfg)
    elif prep.config_prefix:
        run.report["config"]["written"] = False

    if plan.unchanged:
        return _unchanged(current, run, progress)

    previous = planmod.definition(current) if current else None
    timeout = opts.timeout or w.default_timeout(prep.desired)
    rb_timeout = opts.rollback_timeout or (w.default_timeout(previous) if previous else None)
    run.report["timings"].update(
        {
            "timeout_budget_seconds": timeout,
            "rollback_budget_seconds": rb_timeout,
            "fail_fast_budget_seconds": w.fail_fast_budget(prep.desired, opts.max_failures),
        }
    )
    outcome, dep_id, version = _put_and_watch(
        marathon, _body(prep.desired, current, plan), prep.app_id, opts, timeout, run, progress, stop, lock,
        force=opts.force, phase="deploy",
    )
    if outcome.ok:
        run.report["versions"]["to"] = version
        _gc(clients, prep, lock, run)
        progress("done", {"message": outcome.message})
        return run.finish("success")

    run.report["failure"] = outcome.to_dict()
    follow = _follow_hint(prep.environment.name, prep.app_id, dep_id)
    if outcome.reason == w.SUPERSEDED:
        # Someone else's deployment took the app over: rolling back would clobber theirs.
        run.report["rollback"] = {"attempted": False, "why": "another deployment took over the app"}
        run.report["instructions"] = follow
        raise DeployLocked(
            f"{outcome.message}; not rolled back, the app now belongs to that deployment. {follow}",
            _fail_report(run, "superseded"),
        )
    if opts.no_rollback or previous is None:
        why = "--no-rollback given" if opts.no_rollback else "the app is new, there is no previous version"
        run.report["rollback"] = {"attempted": False, "why": why}
        run.report["instructions"] = follow
        raise DeployFailure(
            f"{outcome.message}; not rolled back ({why}); the deployment is left as it is. {follow}",
            _fail_report(run, "failed"),
        )
    missing = _missing_config(clients, prep.app_prefix, previous)
    if missing:
        run.report["rollback"] = {"attempted": False, "why": f"config version {missing} is gone from Consul"}
        raise RollbackFailure(
            f"{outcome.message}; the previous version needs config {missing}, which is gone from Consul, so it "
            f"was not restored. A human is needed. {follow}",
            _fail_report(run, "rollback_failed"),
        )
    progress("rollback", {"reason": outcome.reason, "message": outcome.message})
    rb_started = time.monotonic()
    try:
        rb_outcome, rb_dep, rb_version = _put_and_watch(
            marathon, previous, prep.app_id, opts, rb_timeout or 300.0, run, progress, stop, lock, force=True,
            phase="rollback",
        )
    except (DeployInterrupted, DeployLocked):
        raise
    except DeployKitError as exc:
        run.report["rollback"] = {"attempted": True, "ok": False, "error": str(exc)}
        raise RollbackFailure(
            f"{outcome.message}; the rollback failed too: {exc}. A human is needed. {follow}",
            _fail_report(run, "rollback_failed"),
        ) from None
    run.timing("rollback_seconds", time.monotonic() - rb_started)
    run.report["rollback"] = {
        "attempted": True,
        "ok": rb_outcome.ok,
        "deploymentId": rb_dep,
        "version": rb_version,
        "outcome": rb_outcome.to_dict(),
    }
    if not rb_outcome.ok:
        raise RollbackFailure(
            f"{outcome.message}; the rollback to {run.report['versions']['from']} failed too: {rb_outcome.message}. "
            f"A human is needed. {_follow_hint(prep.environment.name, prep.app_id, rb_dep)}",
            _fail_report(run, "rollback_failed"),
        )
    run.report["versions"]["to"] = rb_version
    raise DeployFailure(
        f"{outcome.message}; rolled back to the previous definition (now version {rb_version})",
        _fail_report(run, "rolled_back"),
    )


def _put_and_watch(
    marathon: Any,
    app: dict,
    app_id: str,
    opts: DeployOptions,
    timeout: float,
    run: Run,
    progress: ProgressFn,
    stop: Stop,
    lock: Any,
    *,
    force: bool,
    phase: str,
) -> tuple[w.Outcome, str | None, str | None]:
    """Subscribe, PUT, wait. Returns (outcome, deploymentId, version)."""
    stream = marathon.events(event_types=list(WATCH_EVENTS), heartbeat_interval=opts.event_heartbeat)
    _thread, q = stream.start_thread()
    try:
        # wait briefly for the subscription so a fast deployment's events are not missed
        subscribed = False
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                item = q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if type(item).__name__ == "Connected":
                subscribed = True
                break
        if not subscribed:
            run.report["errors"].append(f"event stream not connected ({stream.last_error}); polling only")
        _check_lock(lock, run)
        progress(phase, {"message": f"PUT {app_id}" + (" (force)" if force else "")})
        t_put = time.monotonic()
        try:
            result = marathon.put_app(app, force=force)
        except DeployKitError as exc:
            if type(exc).__name__ == "MarathonLocked":
                ids = getattr(exc, "deployment_ids", [])
                raise DeployLocked(_locked_message(marathon, app_id, ids), _fail_report(run, "locked")) from None
            raise _as_reported(exc, run) from None
        dep_id, version = result.get("deploymentId"), result.get("version")
        key = "deploymentId" if phase == "deploy" else "rollbackDeploymentId"
        run.report[key] = dep_id
        if phase == "deploy":
            run.report["versions"]["to"] = version
            run.report["deployedVersion"] = version
        spec = w.WatchSpec(
            app_id=app_id,
            deployment_id=dep_id or "",
            version=version,
            instances=int(app.get("instances", 1)),
            has_health=bool(app.get("healthChecks")),
            timeout=timeout,
            max_failures=opts.max_failures,
            max_health_failures=max(3, opts.max_failures * _max_consecutive(app)),
        )
        watcher = w.DeploymentWatch(spec, started=t_put)
        outcome = _wait(marathon, watcher, q, stream, opts.poll_interval, run, progress, stop, lock, phase,
                        rollback_on_interrupt=opts.rollback_on_interrupt)
        if not outcome.ok and outcome.reason in (w.DEPLOYMENT_FAILED, w.VANISHED):
            with contextlib.suppress(DeployKitError):
                outcome = w.name_superseder(outcome, spec, marathon.deployments())
        run.timing(f"{phase}_wait_seconds", time.monotonic() - t_put)
        return outcome, dep_id, version
    finally:
        stream.stop()
        info = {"connects": stream.connects, "last_error": stream.last_error}
        run.report.setdefault("event_stream", {})[phase] = info


def _wait(
    marathon: Any,
    watcher: w.DeploymentWatch,
    q: queue.Queue,
    stream: Any,
    poll_interval: float,
    run: Run,
    progress: ProgressFn,
    stop: Stop,
    lock: Any,
    phase: str,
    rollback_on_interrupt: bool = False,
) -> w.Outcome:
    spec = watcher.spec
    next_poll = time.monotonic() + min(poll_interval, 0.5)
    last_progress = 0.0
    try:
        while True:
            now = time.monotonic()
            if stop.event.is_set():
                raise KeyboardInterrupt
            lost = lock.lost
            if lost:
                follow = _follow_hint(run.environment, spec.app_id, spec.deployment_id)
                run.report["failure"] = {"reason": "lock_lost", "message": lost}
                raise DeployLocked(
                    f"lost the deploy lock during the {phase} ({lost}); stopped without any further change. "
                    f"Deployment {spec.deployment_id} is left running. {follow}",
                    _fail_report(run, "lock_lost"),
                )
            outcome = watcher.tick(now)
            if outcome:
                return outcome
            try:
                item = q.get(timeout=max(0.01, min(0.25, next_poll - now)))
            except queue.Empty:
                item = None
            now = time.monotonic()
            if item is not None:
                if type(item).__name__ == "Connected":
                    next_poll = now  # events may have been missed: resync from the REST API
                else:
                    outcome = watcher.feed_event(item.data, now)
                    if outcome:
                        return outcome
            if now >= next_poll:
                next_poll = now + poll_interval
                try:
                    outcome = watcher.feed_deployments(marathon.deployments(), time.monotonic())
                    if outcome:
                        return outcome
                    app = marathon.get_app(spec.app_id)
                    if app is not None:
                        outcome = watcher.feed_app(app, time.monotonic())
                        if outcome:
                            return outcome
                except DeployKitError as exc:
                    # Marathon briefly away (leader election): keep waiting within the budget
                    msg = f"poll failed: {exc}"
                    if msg not in run.report["errors"] and len(run.report["errors"]) < 20:
                        run.report["errors"].append(msg)
            if now - last_progress >= 0.5:
                last_progress = now
                progress(f"{phase}_wait", {**watcher.progress(now), "timeout": spec.timeout, "id": spec.deployment_id})
    except KeyboardInterrupt:
        if rollback_on_interrupt and phase == "deploy":
            # CI cancels (Jenkins abort = SIGTERM): treat as a failure so the rollback runs;
            # a second interrupt during the rollback leaves things as they are.
            why = stop.why or "Ctrl-C"
            stop.event.clear()
            stop.why = None
            return w.Outcome(False, "interrupted", f"interrupted ({why}) while waiting for {spec.deployment_id}")
        follow = _follow_hint(run.environment, spec.app_id, spec.deployment_id)
        run.report["instructions"] = follow
        raise DeployInterrupted(
            f"interrupted ({stop.why or 'Ctrl-C'}) while waiting; deployment {spec.deployment_id} is left running. "
            f"{follow}",
            _fail_report(run, "interrupted"),
        ) from None


def _missing_config(clients: Clients, app_prefix: str, definition: dict) -> str | None:
    """The config hash a definition's tasks would need, when Consul no longer has it."""
    wanted = (definition.get("labels") or {}).get(L.DEPLOYKIT_CONFIG_HASH)
    if not wanted:
        return None
    try:
        known = {h for h, _ in clients.consul.list_config_versions(app_prefix)}
    except DeployKitError:
        return None  # cannot tell; Marathon still restores the previous definition
    return None if wanted in known else wanted


def _max_consecutive(app: dict) -> int:
    checks = app.get("healthChecks") or []
    return max(1, int(checks[0].get("maxConsecutiveFailures", 3))) if checks else 3


def _check_lock(lock: Any, run: Run) -> None:
    try:
        lock.check()
    except DeployKitError as exc:
        run.report["failure"] = {"reason": "lock_lost", "message": str(exc)}
        raise _as_reported(exc, run) from None


def _gc(clients: Clients, prep: Prepared, lock: Any, run: Run) -> None:
    """Delete old config versions, keeping the newest N and every hash a known version uses."""
    if not prep.config_hash:
        return
    try:
        lock.check()
        keep = prep.environment.consul.keep_versions
        if len(clients.consul.list_config_versions(prep.app_prefix)) <= keep:
            run.report["config"]["gc_deleted"] = []
            return  # nothing could go: skip asking Marathon about every version
        referenced = referenced_config_hashes(clients.marathon, prep.app_id)
        referenced.add(prep.config_hash)
        deleted = clients.consul.gc_config(prep.app_prefix, keep, referenced)
        run.report["config"]["gc_deleted"] = list(deleted or [])
    except DeployKitError as exc:
        run.report["errors"].append(f"config GC skipped: {exc}")


def referenced_config_hashes(marathon: Any, app_id: str, limit: int = 100) -> set[str]:
    """Config hashes named by the versions Marathon still keeps (their rollback needs them)."""
    hashes: set[str] = set()
    for version in marathon.app_versions(app_id)[:limit]:
        app = marathon.app_version(app_id, version)
        label = ((app or {}).get("labels") or {}).get(L.DEPLOYKIT_CONFIG_HASH)
        if label:
            hashes.add(label)
    return hashes


def _fail_report(run: Run, result: str) -> dict:
    return run.finish(result)


def _as_reported(exc: DeployKitError, run: Run) -> DeployKitError:
    """Attach the report so far to an error from a client (keeps its type's exit code)."""
    report = run.finish("error")
    report["errors"].append(str(exc))
    if isinstance(exc, LockedError):
        err: DeployKitError = DeployLocked(str(exc), report)
    else:
        err = Unreachable(exc, report)
    base = exc.to_dict()
    err.report.update({k: v for k, v in base.items() if k not in ("error", "message")})
    err.exit_code = exc.exit_code
    return err


def _follow_hint(env_name: str, app_id: str, dep_id: str | None) -> str:
    return (
        f"Follow it with `deploykit status {app_id} --env {env_name}`; "
        f"roll back with `deploykit rollback {app_id} --env {env_name}`"
        + (f" (deployment {dep_id})" if dep_id else "")
        + "."
    )


def _locked_message(marathon: Any, app_id: str, ids: list[str]) -> str:
    ages = []
    try:
        deployments = {d.get("id"): d for d in marathon.deployments()}
    except DeployKitError:
        deployments = {}
    for dep_id in ids:
        dep = deployments.get(dep_id) or {}
        step = f"{dep.get('currentStep', '?')}/{dep.get('totalSteps', '?')}"
        ages.append(f"{dep_id} ({_age(dep.get('version'))}, step {step})")
    return (
        f"{app_id} is locked by running deployment(s) {', '.join(ages) or 'unknown'}; "
        "wait for it, or roll it back, or pass --force to cancel it (never the default)"
    )


def _age(version: str | None) -> str:
    if not version:
        return "age unknown"
    try:
        started = datetime.fromisoformat(version.replace("Z", "+00:00"))
    except ValueError:
        return "age unknown"
    return f"started {int((datetime.now(timezone.utc) - started).total_seconds())}s ago"


# --------------------------------------------------------------------------- status / history / rollback
@dataclass
class Target:
    """`APP` of status/history/rollback: an app.yaml path or a Marathon id, plus the environment."""

    app_id: str
    environment: Any


def resolve_target(app: str, env_name: str, env_dir: str | None) -> Target:
    from deploykit.envs import load_environment

    environment = load_environment(env_name, env_dir)
    path = Path(app)
    if path.is_file() or app.endswith((".yaml", ".yml")):
        from deploykit.spec import load_app

        spec = load_app(path, env_name, environment)
        return Target("/" + spec.id.strip("/"), environment)
    if not app.startswith("/"):
        app = "/" + app
    return Target(app, environment)


def status(target: Target, *, clients: Clients | None = None) -> dict:
    own = clients is None
    clients = clients or make_clients(target.environment)
    try:
        app = clients.marathon.get_app(target.app_id)
        if app is None:
            return {"app_id": target.app_id, "environment": target.environment.name, "exists": False}
        deployments = []
        ids = {d.get("id") for d in app.get("deployments") or []}
        if ids:
            for dep in clients.marathon.deployments():
                if dep.get("id") in ids:
                    deployments.append(
                        {
                            "id": dep.get("id"),
                            "age": _age(dep.get("version")),
                            "step": f"{dep.get('currentStep')}/{dep.get('totalSteps')}",
                            "actions": sorted({a.get("action", "?") for a in dep.get("currentActions") or []}),
                        }
                    )
    finally:
        if own:
            clients.close()
    has_health = bool(app.get("healthChecks"))
    versions: dict[str, dict[str, int]] = {}
    tasks = []
    for t in app.get("tasks") or []:
        v = t.get("version") or "?"
        c = versions.setdefault(v, {"running": 0, "healthy": 0})
        healthy = w._task_healthy(t, has_health) if t.get("state") == "TASK_RUNNING" else False
        if t.get("state") == "TASK_RUNNING":
            c["running"] += 1
            c["healthy"] += int(healthy)
        tasks.append(
            {"id": t.get("id"), "state": t.get("state"), "version": v, "host": t.get("host"),
             "ports": t.get("ports"), "healthy": healthy}
        )
    labels = app.get("labels") or {}
    return {
        "app_id": target.app_id,
        "environment": target.environment.name,
        "exists": True,
        "version": app.get("version"),
        "config_version": (app.get("versionInfo") or {}).get("lastConfigChangeAt"),
        "instances": app.get("instances"),
        "running": app.get("tasksRunning"),
        "healthy": app.get("tasksHealthy"),
        "unhealthy": app.get("tasksUnhealthy"),
        "image": labels.get(L.DEPLOYKIT_IMAGE) or ((app.get("container") or {}).get("docker") or {}).get("image"),
        "config_hash": labels.get(L.DEPLOYKIT_CONFIG_HASH),
        "versions": versions,
        "tasks": tasks,
        "deployments": deployments,
        "last_task_failure": app.get("lastTaskFailure"),
    }


def history(target: Target, *, clients: Clients | None = None, limit: int = 20) -> dict:
    own = clients is None
    clients = clients or make_clients(target.environment)
    try:
        app = clients.marathon.get_app(target.app_id, embed=())
        if app is None:
            return {"app_id": target.app_id, "environment": target.environment.name, "versions": []}
        current = (app.get("versionInfo") or {}).get("lastConfigChangeAt") or app.get("version")
        outcomes = _read_history(clients, target.environment.name, target.app_id)
        rows = []
        for version in clients.marathon.app_versions(target.app_id)[:limit]:
            doc = clients.marathon.app_version(target.app_id, version) or {}
            labels = doc.get("labels") or {}
            rows.append(
                {
                    "version": version,
                    "current": version in (app.get("version"), current),
                    "image": labels.get(L.DEPLOYKIT_IMAGE)
                    or ((doc.get("container") or {}).get("docker") or {}).get("image"),
                    "git_sha": labels.get(L.DEPLOYKIT_GIT_SHA),
                    "deployed_by": labels.get(L.DEPLOYKIT_DEPLOYED_BY),
                    "config_hash": labels.get(L.DEPLOYKIT_CONFIG_HASH),
                    "instances": doc.get("instances"),
                    "spec_hash": labels.get(L.DEPLOYKIT_SPEC_HASH),
                    "result": (outcomes.get(version) or {}).get("result"),
                    "reason": (outcomes.get(version) or {}).get("reason"),
                }
            )
    finally:
        if own:
            clients.close()
    return {"app_id": target.app_id, "environment": target.environment.name, "versions": rows}


def _read_history(clients: Clients, env_name: str, app_id: str) -> dict[str, dict]:
    import json

    prefix = _history_key(env_name, app_id, "")
    try:
        tree = clients.consul.tree(prefix)
    except DeployKitError:
        return {}
    out: dict[str, dict] = {}
    for key, raw in tree.items():
        with contextlib.suppress(ValueError):
            out[key[len(prefix):]] = json.loads(raw)
    return out


def _same_definition(a: dict, b: dict) -> bool:
    return planmod.make_plan(planmod.definition(a), planmod.definition(b)).unchanged


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
    progress = progress or (lambda _phase, _info: None)
    opts = opts or DeployOptions(app_path="", env_name=target.environment.name)
    stop = stop or Stop()
    run = Run("rollback", target.app_id, target.environment.name)
    own = clients is None
    clients = clients or make_clients(target.environment)
    try:
        marathon = clients.marathon
        try:
            current = marathon.get_app(target.app_id)
        except DeployKitError as exc:
            raise _as_reported(exc, run) from None
        if current is None:
            raise ValidationError([Problem(None, "APP", f"Marathon has no app {target.app_id}")])
        run.report["versions"]["from"] = current.get("version")
        lock = clients.lock_factory(target.app_id)
        try:
            lock.acquire(opts.lock_timeout)
        except DeployKitError as exc:
            raise _as_reported(exc, run) from None
        try:
            chosen, definition = _rollback_target(marathon, target.app_id, current, to_version)
            run.report["rollback_to"] = chosen
            app_prefix = f"{target.environment.consul.prefix.strip('/')}/{target.app_id.strip('/')}"
            cfg_hash = _missing_config(clients, app_prefix, definition)
            if cfg_hash:
                raise ValidationError(
                    [Problem(None, "--to", f"version {chosen} needs config {cfg_hash}, which is gone from Consul",
                             "deploy that version's app.yaml again instead")]
                )
            running = [d.get("id") for d in current.get("deployments") or [] if d.get("id")]
            if running and not opts.force:
                raise DeployLocked(_locked_message(marathon, target.app_id, running), _fail_report(run, "locked"))
            timeout = opts.timeout or w.default_timeout(definition)
            run.report["timings"]["timeout_budget_seconds"] = timeout
            outcome, dep_id, version = _put_and_watch(
                marathon, definition, target.app_id, opts, timeout, run, progress, stop, lock,
                force=opts.force, phase="deploy",
            )
            if outcome.ok:
                run.report["versions"]["to"] = version
                report = run.finish("success")
                _record_history(clients, target.environment.name, target.app_id,
                                {**report, "result": f"rollback to {chosen}"}, lock)
                return report
            run.report["failure"] = outcome.to_dict()
            _record_history(clients, target.environment.name, target.app_id,
                            {**run.report, "result": f"rollback to {chosen} failed"}, lock)
            raise RollbackFailure(
                f"rollback to {chosen} failed: {outcome.message}. A human is needed. "
                f"{_follow_hint(target.environment.name, target.app_id, dep_id)}",
                _fail_report(run, "failed"),
            )
        finally:
            lock.release()
    finally:
        if own:
            clients.close()


def _rollback_target(marathon: Any, app_id: str, current: dict, to_version: str | None) -> tuple[str, dict]:
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
        if doc and not _same_definition(doc, current):
            return version, planmod.definition(doc)
    raise ValidationError([Problem(None, "APP", f"{app_id} has no earlier version that differs from the current one")])
