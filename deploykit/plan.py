"""What a deploy would change: desired app JSON vs what Marathon runs now (pure, no I/O).

`deploykit diff`, `deploy --dry-run` and the deploy itself ("nothing to change, no
deployment") all use this one comparison, so what a person previews is what runs.

Marathon echoes an app back with fields it owns (version, versionInfo, task counts,
deployments, tasks...) and with server-side defaults filled in (backoffFactor,
upgradeStrategy, portDefinitions[].labels...). Those are not changes: server-owned
fields are dropped, and a key present only on the server side counts as a change only
when its value differs from Marathon's default (we PUT the full definition, so a
non-default leftover really would be reset).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from deploykit.marathon_fields import SERVER_OWNED_FIELDS

# Top-level defaults Marathon 1.10 fills in (RAML AppDefinition). A key missing from the
# desired JSON whose live value equals one of these is not a change.
MARATHON_DEFAULTS: dict[str, Any] = {
    "instances": 1,
    "cpus": 1.0,
    "mem": 128.0,
    "disk": 0.0,
    "gpus": 0,
    "backoffFactor": 1.15,
    "backoffSeconds": 1,
    "maxLaunchDelaySeconds": 300,
    "executor": "",
    "requirePorts": False,
    "killSelection": "YOUNGEST_FIRST",
    "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0},
    "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0},
    "role": "*",
    "networks": [{"mode": "host"}],
    "portDefinitions": [{"port": 0, "protocol": "tcp", "name": "default", "labels": {}}],
}

# Provenance labels: who deployed from which commit. A redeploy of an identical app by
# someone else, or from a newer commit that changed nothing here, is still "no change".
# The spec hash is derived from the rest: it changes exactly when something real does.
IGNORED_PATHS = frozenset({"labels.DEPLOYKIT_DEPLOYED_BY", "labels.DEPLOYKIT_GIT_SHA", "labels.DEPLOYKIT_SPEC_HASH"})

# Defaults Marathon fills in inside nested objects, per top-level field (RAML types).
NESTED_DEFAULTS: dict[str, dict[str, Any]] = {
    "healthChecks": {
        "protocol": "HTTP",
        "ipProtocol": "IPv4",
        "delaySeconds": 15,
        "gracePeriodSeconds": 300,
        "intervalSeconds": 60,
        "timeoutSeconds": 20,
        "maxConsecutiveFailures": 3,
        "ignoreHttp1xx": False,
        "path": "/",
        "portIndex": 0,
    },
    "readinessChecks": {
        "name": "readinessCheck",
        "protocol": "HTTP",
        "path": "/",
        "intervalSeconds": 30,
        "timeoutSeconds": 10,
        "httpStatusCodesForReady": [200],
        "preserveLastResponse": False,
    },
    "fetch": {"executable": False, "extract": True, "cache": False},
    "portDefinitions": {"protocol": "tcp", "labels": {}},
    "container": {"type": "DOCKER", "forcePullImage": False, "privileged": False, "protocol": "tcp"},
    "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0},
}
# Port numbers Marathon assigns when the definition says 0 (or nothing): not a change.
ASSIGNED_PORT_KEYS = frozenset({"servicePort", "port"})
_ANY_LEVEL_DEFAULTS: dict[str, Any] = {"labels": {}, "protocol": "tcp", "hostPort": 0, "servicePort": 0}


@dataclass(frozen=True)
class Change:
    """One leaf difference. `path` is a JSON path like `env.LOG_LEVEL` or `healthChecks[0].path`."""

    path: str
    op: str  # "add" | "remove" | "change"
    old: Any = None
    new: Any = None


@dataclass(frozen=True)
class ConfigPlan:
    """The Consul config version a deploy points at and whether it must be written."""

    prefix: str
    hash: str
    keys: list[str]
    exists: bool  # already in Consul: the write is skipped


@dataclass
class Plan:
    app_id: str
    exists: bool  # the app is already in Marathon
    changes: list[Change] = field(default_factory=list)
    config: ConfigPlan | None = None
    secret_env: frozenset[str] = frozenset()

    @property
    def unchanged(self) -> bool:
        """True when a PUT would create no deployment (a missing config tree is written anyway)."""
        return self.exists and not self.changes

    @property
    def kind(self) -> str:
        if not self.exists:
            return "create"
        if self.unchanged:
            return "unchanged"
        if self.changes and all(c.path == "instances" for c in self.changes):
            return "scale"
        return "update"

    def to_dict(self) -> dict:
        return {
            "app_id": self.app_id,
            "kind": self.kind,
            "changes": [
                {"path": c.path, "op": c.op, "old": self._show(c.path, c.old), "new": self._show(c.path, c.new)}
                for c in self.changes
            ],
            "config": None
            if self.config is None
            else {
                "prefix": self.config.prefix,
                "hash": self.config.hash,
                "exists": self.config.exists,
                "keys": list(self.config.keys),
            },
        }

    def _show(self, path: str, value: Any) -> Any:
        return redact_value(path, value, self.secret_env)

    def lines(self) -> list[str]:
        """Human-readable diff lines (+ added, - removed, ~ changed), secrets redacted."""
        out: list[str] = []
        if not self.exists:
            out.append(f"+ app {self.app_id} (new)")
        for c in self.changes:
            old = json.dumps(self._show(c.path, c.old), sort_keys=True)
            new = json.dumps(self._show(c.path, c.new), sort_keys=True)
            if c.op == "add":
                out.append(f"+ {c.path}: {new}")
            elif c.op == "remove":
                out.append(f"- {c.path}: {old}")
            else:
                out.append(f"~ {c.path}: {old} -> {new}")
        if self.config is not None:
            state = "exists" if self.config.exists else f"new, {len(self.config.keys)} key(s)"
            out.append(f"{'=' if self.config.exists else '+'} config {self.config.prefix} ({state})")
            if not self.config.exists:
                out.extend(f"+   {k}" for k in self.config.keys)
        if self.unchanged:
            out.append("no change")
        return out


def redact(value: str) -> str:
    """Stand-in for a secret: shows that it changed without showing it (8 hex of sha256)."""
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"<redacted:sha256:{digest}>"


def redact_value(path: str, value: Any, secret_env: frozenset[str] | set[str]) -> Any:
    """Redact env values of secret variables wherever they sit in a change."""
    if not secret_env or value is None:
        return value
    if path.startswith("env."):
        name = path[len("env.") :]
        if name in secret_env:
            return redact(value) if isinstance(value, str) else "<redacted>"
        return value
    if path == "env" and isinstance(value, dict):
        return {k: (redact(v) if k in secret_env and isinstance(v, str) else v) for k, v in value.items()}
    return value


def definition(app: dict) -> dict:
    """An app as Marathon returned it, reduced to its definition (server-owned fields dropped)."""
    return {k: v for k, v in app.items() if k not in SERVER_OWNED_FIELDS}


def _is_default(key: str, value: Any, root: str | None) -> bool:
    """Is `value` what Marathon fills in for `key` (inside top-level field `root`, None at the top)?"""
    if value is None or (not isinstance(value, bool) and value in ([], {}, "")):
        return True
    if key in ASSIGNED_PORT_KEYS and root in ("portDefinitions", "container"):
        return True  # Marathon picked it because we did not
    if root is None:
        return key in MARATHON_DEFAULTS and _equal(MARATHON_DEFAULTS[key], value)
    nested = NESTED_DEFAULTS.get(root, {})
    if key in nested:
        return _equal(nested[key], value)
    return key in _ANY_LEVEL_DEFAULTS and _equal(_ANY_LEVEL_DEFAULTS[key], value)


def _equal(a: Any, b: Any) -> bool:
    # Marathon returns 1.0 where we sent 1; numbers compare by value, bools stay bools.
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b


def diff(desired: Any, current: Any, path: str = "", *, root: str | None = None) -> list[Change]:
    """Leaf-level differences from `current` to `desired`, with Marathon's defaults as noise."""
    if isinstance(desired, dict) and isinstance(current, dict):
        changes: list[Change] = []
        for key in desired:
            sub = f"{path}.{key}" if path else key
            if key not in current:
                changes.append(Change(sub, "add", None, desired[key]))
            else:
                changes.extend(diff(desired[key], current[key], sub, root=root if path else key))
        for key in current:
            if key in desired:
                continue
            if _is_default(key, current[key], root if path else None):
                continue
            sub = f"{path}.{key}" if path else key
            changes.append(Change(sub, "remove", current[key], None))
        return changes
    if isinstance(desired, list) and isinstance(current, list):
        changes = []
        for i, item in enumerate(desired):
            sub = f"{path}[{i}]"
            if i < len(current):
                changes.extend(diff(item, current[i], sub, root=root))
            else:
                changes.append(Change(sub, "add", None, item))
        for i in range(len(desired), len(current)):
            changes.append(Change(f"{path}[{i}]", "remove", current[i], None))
        return changes
    if _equal(desired, current):
        return []
    leaf = path.rsplit(".", 1)[-1]
    if leaf in ASSIGNED_PORT_KEYS and root in ("portDefinitions", "container") and desired == 0:
        return []
    return [Change(path, "change", current, desired)]


def make_plan(
    desired: dict,
    current: dict | None,
    *,
    config: ConfigPlan | None = None,
    secret_env: set[str] | frozenset[str] = frozenset(),
) -> Plan:
    """Compare the app JSON we would PUT with the live app (None when it does not exist yet)."""
    app_id = desired.get("id", "")
    if current is None:
        return Plan(app_id, False, [], config, frozenset(secret_env))
    want = definition(desired)
    have = definition(current)
    have.pop("id", None)
    want_cmp = {k: v for k, v in want.items() if k != "id"}
    changes = [c for c in diff(want_cmp, have) if c.path not in IGNORED_PATHS]
    return Plan(app_id, True, changes, config, frozenset(secret_env))
