"""The read-only commands: `diff`, `status` and `history`. They change nothing anywhere."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deploykit import labels as L
from deploykit import watch as w
from deploykit.deploy.deployment import plan_for
from deploykit.deploy.history_store import read_history
from deploykit.deploy.inputs import DeployOptions, Target, prepare
from deploykit.deploy.messages import deployment_age
from deploykit.deploy.orphans import deployment_client
from deploykit.deploy.wiring import Clients, connected
from deploykit.errors import DeployKitError, Problem, ValidationError


def diff(opts: DeployOptions, *, clients: Clients | None = None, environ: Mapping[str, str] | None = None) -> dict:
    """`deploykit diff` / `deploy --dry-run`: the exact change; touches nothing."""
    prep = prepare(opts, environ)
    with connected(prep.environment, environ, clients=clients) as wired:
        current = wired.marathon.get_app(prep.app_id)
        plan = plan_for(prep, wired.consul, current)
    return {
        "result": "unchanged" if plan.unchanged else "changes",
        "app_id": prep.app_id,
        "environment": prep.environment.name,
        "image": prep.image,
        "plan": plan.to_dict(),
        "lines": plan.lines(),
        "versions": {"from": current.get("version") if current else None, "to": None},
    }


def _image(app: dict) -> Any:
    return (app.get("labels") or {}).get(L.DEPLOYKIT_IMAGE) or ((app.get("container") or {}).get("docker") or {}).get(
        "image")


def status(target: Target, *, clients: Clients | None = None) -> dict:
    """`deploykit status`: the live app, its tasks per version and its running deployments."""
    with connected(target.environment, clients=clients) as wired:
        app = wired.marathon.get_app(target.app_id)
        if app is None:
            return {"app_id": target.app_id, "environment": target.environment.name, "exists": False}
        deployments = []
        ids = {d.get("id") for d in app.get("deployments") or []}
        if ids:
            client = _deployment_client(wired, target.app_id, app)
            for dep in wired.marathon.deployments():
                if dep.get("id") in ids:
                    deployments.append(
                        {
                            "id": dep.get("id"),
                            "age": deployment_age(dep.get("version")),
                            "step": f"{dep.get('currentStep')}/{dep.get('totalSteps')}",
                            "actions": sorted({a.get("action", "?") for a in dep.get("currentActions") or []}),
                            "client": client,
                        }
                    )
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
    config_version = (app.get("versionInfo") or {}).get("lastConfigChangeAt") or app.get("version")
    # During a rollout Marathon's tasksHealthy counts the old tasks too: the headline numbers are the
    # tasks of the current definition (started at or after its lastConfigChangeAt; scaling keeps it).
    current = [c for v, c in versions.items() if config_version is None or v >= config_version]
    return {
        "app_id": target.app_id,
        "environment": target.environment.name,
        "exists": True,
        "version": app.get("version"),
        "config_version": config_version,
        "instances": app.get("instances"),
        "running": sum(c["running"] for c in current),
        "healthy": sum(c["healthy"] for c in current),
        "running_all_versions": app.get("tasksRunning"),
        "healthy_all_versions": app.get("tasksHealthy"),
        "unhealthy": app.get("tasksUnhealthy"),
        "image": _image(app),
        "config_hash": labels.get(L.DEPLOYKIT_CONFIG_HASH),
        "versions": versions,
        "tasks": tasks,
        "deployments": deployments,
        "last_task_failure": app.get("lastTaskFailure"),
    }


def _deployment_client(wired: Clients, app_id: str, app: dict) -> dict[str, Any]:
    """Who watches the app's running deployment: a live deploy client, a gone one, or nobody deploykit knows."""
    try:
        lock = wired.lock_factory(app_id)
    except DeployKitError as exc:
        return {"state": "unknown", "holder": None, "message": f"the deploy lock cannot be read: {exc}"}
    try:
        return deployment_client(lock, app)
    finally:
        lock.release()


def history(target: Target, *, clients: Clients | None = None, limit: int = 20) -> dict:
    """`deploykit history`: Marathon's versions (newest first) with their labels and recorded outcome."""
    with connected(target.environment, clients=clients) as wired:
        app = wired.marathon.get_app(target.app_id, embed=())
        if app is None:
            raise _unknown_app(wired, target)
        current = (app.get("versionInfo") or {}).get("lastConfigChangeAt") or app.get("version")
        settled = not app.get("deployments") and (app.get("tasksHealthy") or 0) >= (app.get("instances") or 0)
        outcomes = read_history(wired.consul, target.environment.name, target.app_id)
        rows = []
        for version in wired.marathon.app_versions(target.app_id)[:limit]:
            doc = wired.marathon.app_version(target.app_id, version) or {}
            labels = doc.get("labels") or {}
            outcome = outcomes.get(version) or {}
            is_current = version in (app.get("version"), current)
            if outcome.get("result") == "interrupted" and is_current and settled:
                # The deploy stopped watching (Ctrl-C), Marathon carried on and finished: say how it ended.
                outcome = {"result": "success", "reason": "finished after the deploy was interrupted"}
            rows.append(
                {
                    "version": version,
                    "current": is_current,
                    "image": _image(doc),
                    "git_sha": labels.get(L.DEPLOYKIT_GIT_SHA),
                    "deployed_by": labels.get(L.DEPLOYKIT_DEPLOYED_BY),
                    "config_hash": labels.get(L.DEPLOYKIT_CONFIG_HASH),
                    "instances": doc.get("instances"),
                    "spec_hash": labels.get(L.DEPLOYKIT_SPEC_HASH),
                    "result": outcome.get("result"),
                    "reason": outcome.get("reason"),
                }
            )
    return {"app_id": target.app_id, "environment": target.environment.name, "versions": rows}


def _unknown_app(wired: Clients, target: Target) -> ValidationError:
    """No such app: exit 2 with the nearest ids Marathon knows (an empty table would look like "no history")."""
    from deploykit.hints import did_you_mean

    try:
        ids = [a.get("id") for a in wired.marathon.list_apps(embed=()) if isinstance(a.get("id"), str)]
    except DeployKitError:  # the hint is a courtesy: the answer is still "no such app"
        ids = []
    hint = did_you_mean(target.app_id, ids, fallback=None) or (
        f"none of Marathon's {len(ids)} app(s) is close; app ids look like /shop/cart" if ids
        else "Marathon runs no apps in this environment")
    return ValidationError([Problem(None, "APP", f"no app {target.app_id} in Marathon ({target.environment.name})",
                                    hint)])
