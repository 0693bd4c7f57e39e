"""How each version we PUT ended, kept in Consul under `deploykit/history/<env>/<app id>/<version>`.

Marathon keeps every version's definition but not whether its deployment succeeded, and
labels cannot say it (they are written before the outcome is known), so the deploy records
the outcome when it finishes and `deploykit history` reads it back.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from deploykit.errors import DeployKitError

if TYPE_CHECKING:
    from deploykit.clients.consul import ConsulClient
    from deploykit.clients.locks import DeployLock
    from deploykit.deploy.report import DeployReport

HISTORY_PREFIX = "deploykit/history"


def history_key(env_name: str, app_id: str, version: str) -> str:
    return f"{HISTORY_PREFIX}/{env_name}/{app_id.strip('/')}/{version}"


def record_history(
    consul: ConsulClient, report: DeployReport, lock: DeployLock, *, result: str | None = None,
    reason: str | None = None,
) -> None:
    """Write the outcome of the version the run PUT (and of its rollback); `result`/`reason` override the report's.

    Skipped once the lock is lost: whoever holds it now may be writing their own outcome.
    """
    if lock.lost:
        return
    entries: list[tuple[str, dict[str, Any]]] = []
    if report.has("deployed_version") and report.deployed_version:
        failure = report.failure if report.has("failure") else None
        entries.append((report.deployed_version, {
            "result": result if result is not None else report.result,
            "deploymentId": report.deployment_id,
            "reason": reason if reason is not None else (failure.reason if failure else None),
        }))
    rollback = report.rollback if report.has("rollback") else None
    if rollback is not None and rollback.version:
        entries.append((rollback.version, {
            "result": "rollback " + ("succeeded" if rollback.ok else "failed"),
            "deploymentId": rollback.deployment_id,
            "reason": None,
        }))
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for version, entry in entries:
        try:
            consul.put(history_key(report.environment, report.app_id, version),
                       json.dumps({**entry, "finished_at": now}))
        except DeployKitError as exc:
            report.errors.append(f"history not recorded: {exc}")


def read_history(consul: ConsulClient, env_name: str, app_id: str) -> dict[str, dict[str, Any]]:
    """version -> the recorded outcome; empty when Consul cannot say."""
    prefix = history_key(env_name, app_id, "")
    try:
        tree = consul.tree(prefix)
    except DeployKitError:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for key, raw in tree.items():
        with contextlib.suppress(ValueError):
            out[key[len(prefix):]] = json.loads(raw)
    return out
