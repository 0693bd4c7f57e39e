"""The sentences deploy errors and progress use to name deployments and say what to do next."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def follow_hint(env_name: str, app_id: str, dep_id: str | None) -> str:
    """How to follow or undo a deployment the deploy leaves running."""
    return (
        f"Follow it with `deploykit status {app_id} --env {env_name}`; "
        # --force: the deployment left running holds the app, and a rollback without it is refused (exit 3)
        f"roll back with `deploykit rollback {app_id} --env {env_name} --force` (cancels it)"
        + (f" (deployment {dep_id})" if dep_id else "")
        + "."
    )


def describe_deployments(ids: list[str], deployments: list[dict[str, Any]] | None) -> str:
    """`<id> (started 12s ago, step 1/2), ...` (`deployments`: /v2/deployments, when it answered)."""
    by_id = {d.get("id"): d for d in deployments or []}
    ages = []
    for dep_id in ids:
        dep = by_id.get(dep_id) or {}
        step = f"{dep.get('currentStep', '?')}/{dep.get('totalSteps', '?')}"
        ages.append(f"{dep_id} ({deployment_age(dep.get('version'))}, step {step})")
    return ", ".join(ages) or "unknown"


def locked_message(app_id: str, ids: list[str], deployments: list[dict[str, Any]] | None) -> str:
    """Names the deployments holding the app, with their age and step."""
    return (
        f"{app_id} is locked by running deployment(s) {describe_deployments(ids, deployments)}; "
        "wait for it, or roll it back, or pass --force to cancel it (never the default)"
    )


def still_deploying_message(app_id: str, env_name: str, ids: list[str], deployments: list[dict[str, Any]] | None
                            ) -> str:
    """A definition that is still being deployed is never "unchanged": say who is deploying it."""
    return (
        f"{app_id} is still being deployed to this very definition by deployment(s) "
        f"{describe_deployments(ids, deployments)}, which deploykit did not start; it is not unchanged until "
        f"that ends. Wait for it (`deploykit status {app_id} --env {env_name}`) and deploy again"
    )


def deployment_age(version: str | None) -> str:
    """`started 12s ago` from a deployment's version timestamp."""
    if not version:
        return "age unknown"
    try:
        started = datetime.fromisoformat(version.replace("Z", "+00:00"))
    except ValueError:
        return "age unknown"
    return f"started {int((datetime.now(timezone.utc) - started).total_seconds())}s ago"
