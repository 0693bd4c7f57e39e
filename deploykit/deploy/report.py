"""The deploy/rollback report: what `--output json` promises, as one typed object.

The JSON document lists its keys in the order the facts became known during the run (a
dry run stops after `plan`, an interrupted wait ends before `event_stream` is filled in...),
and pipelines already parse that document. So `DeployReport` remembers the order in which
each top-level field was first set, and `to_dict()` writes them in that order: the output is
the one the dict-based report produced, key for key.

The errors a deploy raises carry the report, so a failed deploy prints it too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from deploykit.errors import EXIT_INTERRUPTED, DeployFailed, DeployKitError, LockedError, RollbackFailed

if TYPE_CHECKING:
    from deploykit.plan import Plan
    from deploykit.watch import Outcome


class _Unset:
    """A field not set yet (distinct from None, which the JSON shows as null)."""

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


def _present(obj: Any) -> dict[str, Any]:
    """A dataclass's set fields, in declaration order, as JSON values."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is not UNSET:
            out[f.metadata.get("key", f.name)] = _json(value)
    return out


def _json(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


@dataclass
class Versions:
    from_: str | None = field(default=None, metadata={"key": "from"})
    to: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _present(self)


@dataclass
class Timings:
    """Seconds per phase and the budgets the watch used (the order is the order of a full run)."""

    validate_seconds: float = UNSET
    lock_seconds: float = UNSET
    config_seconds: float = UNSET
    timeout_budget_seconds: float = UNSET
    rollback_budget_seconds: float | None = UNSET
    fail_fast_budget_seconds: float = UNSET
    deploy_wait_seconds: float = UNSET
    rollback_wait_seconds: float = UNSET
    rollback_seconds: float = UNSET
    total_seconds: float = UNSET

    def to_dict(self) -> dict[str, Any]:
        return _present(self)


@dataclass
class ConfigReport:
    prefix: str | None
    hash: str | None
    keys: int
    written: bool = UNSET
    gc_deleted: list[str] = UNSET

    def to_dict(self) -> dict[str, Any]:
        return _present(self)


@dataclass
class LockReport:
    name: str
    kind: str
    holder: dict[str, Any] | None = None  # the lock's holder: us, or whoever kept us out
    gone_holder: dict[str, Any] = UNSET  # a killed holder whose session we waited out

    def to_dict(self) -> dict[str, Any]:
        return _present(self)


@dataclass
class Failure:
    """Why the deployment did not succeed: the watch's outcome, or a reason of the deploy's own."""

    reason: str | None
    message: str
    outcome: Outcome | None = None

    @classmethod
    def of(cls, outcome: Outcome) -> Failure:
        return cls(outcome.reason, outcome.message, outcome)

    def to_dict(self) -> dict[str, Any]:
        if self.outcome is not None:
            return self.outcome.to_dict()
        return {"reason": self.reason, "message": self.message}


@dataclass
class RollbackReport:
    """The automatic rollback after a failed deployment: not attempted (why), failed (error), or its outcome."""

    attempted: bool
    why: str = UNSET
    ok: bool = UNSET
    error: str = UNSET
    deployment_id: str | None = field(default=UNSET, metadata={"key": "deploymentId"})
    version: str | None = UNSET
    outcome: Outcome = UNSET

    def to_dict(self) -> dict[str, Any]:
        return _present(self)


@dataclass
class OrphanReport:
    """A deployment deploykit started whose client is gone (killed, or it ended and left it running).

    action: "adopted" (same definition as ours: watched to the end as our own) or "waited" (seen
    through, rolled back on failure, before ours was deployed).
    """

    deployment_id: str = field(metadata={"key": "deploymentId"})
    version: str | None = None
    deployed_by: str | None = None
    age: str = ""
    action: str = ""
    result: str = UNSET  # "waited": how it ended

    def to_dict(self) -> dict[str, Any]:
        return _present(self)


@dataclass
class StreamReport:
    connects: int
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return _present(self)


# attribute -> JSON key, for the top-level fields (the order here is irrelevant: see the module doc)
_KEYS = {
    "result": "result",
    "app_id": "app_id",
    "environment": "environment",
    "deployment_id": "deploymentId",
    "versions": "versions",
    "timings": "timings",
    "errors": "errors",
    "image": "image",
    "config": "config",
    "force": "force",
    "rollback_to": "rollback_to",
    "plan": "plan",
    "lines": "lines",
    "lock": "lock",
    "orphan": "orphan",
    "deployed_version": "deployedVersion",
    "event_stream": "event_stream",
    "failure": "failure",
    "rollback_deployment_id": "rollbackDeploymentId",
    "rollback": "rollback",
    "instructions": "instructions",
    "elapsed_seconds": "elapsed_seconds",
}
_ATTRS = {key: attr for attr, key in _KEYS.items()}


class DeployReport:
    """The report of one `deploy` or `rollback` run (DESIGN §4; docs/deploy.md "Output")."""

    result: str | None
    app_id: str
    environment: str
    deployment_id: str | None
    versions: Versions
    timings: Timings
    errors: list[str]  # warnings that did not stop the run
    image: str | None
    config: ConfigReport
    force: bool
    rollback_to: str  # `deploykit rollback`: the version chosen
    plan: Plan
    lines: list[str]  # --dry-run: the plan for people
    lock: LockReport
    orphan: OrphanReport  # a deployment left by a gone client that this run saw through
    deployed_version: str | None  # the version our PUT created
    event_stream: dict[str, StreamReport]  # per phase ("deploy", "rollback")
    failure: Failure
    rollback_deployment_id: str | None
    rollback: RollbackReport
    instructions: str  # how to follow or undo a deployment left running
    elapsed_seconds: float
    started: float  # monotonic start, for total_seconds (not in the JSON)

    def __init__(self, app_id: str, environment: str, *, started: float | None = None) -> None:
        object.__setattr__(self, "_order", [])
        object.__setattr__(self, "_cause", {})
        self.started = time.monotonic() if started is None else started
        self.result = None
        self.app_id = app_id
        self.environment = environment
        self.deployment_id = None
        self.versions = Versions()
        self.timings = Timings()
        self.errors = []

    def __setattr__(self, name: str, value: Any) -> None:
        key = _KEYS.get(name)
        if key is not None and key not in self._order:
            self._order.append(key)
        object.__setattr__(self, name, value)

    def has(self, attr: str) -> bool:
        return _KEYS[attr] in self._order

    def timing(self, name: str, seconds: float) -> None:
        setattr(self.timings, name, round(seconds, 3))

    def stream(self, phase: str, connects: int, last_error: str | None) -> None:
        if not self.has("event_stream"):
            self.event_stream = {}
        self.event_stream[phase] = StreamReport(connects, last_error)

    def finish(self, result: str) -> DeployReport:
        self.result = result
        self.timing("total_seconds", time.monotonic() - self.started)
        self.elapsed_seconds = self.timings.total_seconds
        return self

    def add_cause(self, cause: Mapping[str, Any]) -> None:
        """Merge a client error's own fields (its `to_dict()` but error/message), e.g. a lock's holder."""
        for key, value in cause.items():
            if key in ("error", "message"):
                continue
            if key in _ATTRS:
                setattr(self, _ATTRS[key], value)
                continue
            if key not in self._order:
                self._order.append(key)
            self._cause[key] = value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self._order:
            value = self._cause[key] if key in self._cause else getattr(self, _ATTRS[key])
            out[key] = _json(value)
        return out


# --------------------------------------------------------------------------- errors that carry the report
class ReportedError:
    """Mixin: an error that carries the deploy report, so --output json still prints all of it.

    `report` is the DeployReport of the run; after `scrub_error` it is that report's JSON
    with secrets redacted (a plain mapping), and callers may pass such a mapping too.
    """

    report: DeployReport | Mapping[str, Any]

    def to_dict(self) -> dict:
        body = self.report.to_dict() if isinstance(self.report, DeployReport) else dict(self.report)
        return {**body, "error": type(self).__name__, "message": str(self)}


class DeployFailure(ReportedError, DeployFailed):
    def __init__(self, message: str, report: DeployReport | Mapping[str, Any]):
        super().__init__(message)
        self.report = report


class RollbackFailure(ReportedError, RollbackFailed):
    def __init__(self, message: str, report: DeployReport | Mapping[str, Any]):
        super().__init__(message)
        self.report = report


class DeployLocked(ReportedError, LockedError):
    def __init__(self, message: str, report: DeployReport | Mapping[str, Any]):
        super().__init__(message)
        self.report = report


class DeployInterrupted(ReportedError, DeployKitError):
    """Ctrl-C / SIGTERM while waiting: the deployment is left running as it is."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, message: str, report: DeployReport | Mapping[str, Any]):
        super().__init__(message)
        self.report = report


class Unreachable(ReportedError, DeployKitError):
    """A client error (unreachable, refused, rejected...) with the report of what was done so far.

    Keeps the cause's exit code and names the cause's type in `error`.
    """

    def __init__(self, cause: DeployKitError, report: DeployReport | Mapping[str, Any]):
        super().__init__(str(cause))
        self.exit_code = cause.exit_code
        self.cause_type = type(cause).__name__
        self.report = report

    def to_dict(self) -> dict:
        return {**super().to_dict(), "error": self.cause_type}


def as_reported(exc: DeployKitError, report: DeployReport) -> DeployKitError:
    """Attach the report so far to an error from a client (keeps its type's exit code)."""
    report.finish("error")
    report.errors.append(str(exc))
    err: DeployKitError = DeployLocked(str(exc), report) if isinstance(exc, LockedError) else Unreachable(exc, report)
    report.add_cause(exc.to_dict())
    err.exit_code = exc.exit_code
    return err


def scrub_error(exc: DeployKitError, secrets: list[str]) -> DeployKitError:
    """Last line of defence: a server echoing a secret back (e.g. in a 422 body) never reaches output."""
    if not secrets:
        return exc
    from deploykit.plan import redact

    def clean(text: str) -> str:
        for value in secrets:
            text = text.replace(value, redact(value))
        return text

    if exc.args and isinstance(exc.args[0], str):
        exc.args = (clean(exc.args[0]), *exc.args[1:])
    for attr in ("report", "body"):
        value = getattr(exc, attr, None)
        if isinstance(value, DeployReport):
            value = value.to_dict()
        if value is not None:
            setattr(exc, attr, json.loads(clean(json.dumps(value, default=str))))
    return exc
