"""deploykit's exception types and the exit codes they map to (DESIGN §3).

Every library exception (requests, kazoo, consul, jenkins, subprocess) is translated
into one of these at the client boundary, so the CLI maps errors to exit codes in
one place and never shows a foreign traceback to a user.
"""

from __future__ import annotations

from typing import NamedTuple

EXIT_OK = 0
EXIT_DEPLOY_FAILED = 1  # deployment failed and was rolled back
EXIT_INVALID = 2  # invalid input; nothing was done
EXIT_LOCKED = 3  # locked or conflicting deployment
EXIT_UNREACHABLE = 4  # unreachable / timed out
EXIT_ROLLBACK_FAILED = 5  # rollback failed, a human is needed
EXIT_INTERRUPTED = 130  # Ctrl-C while waiting; the deployment is left running


class Problem(NamedTuple):
    """One validation finding: where it is, what is wrong, and how to fix it."""

    file: str | None
    path: str  # dotted key path, e.g. "health.interval" or "ports[0].container"
    message: str
    hint: str | None = None
    line: int | None = None

    def to_dict(self) -> dict:
        return self._asdict()

    def __str__(self) -> str:
        where = self.file or "<input>"
        if self.line:
            where += f":{self.line}"
        text = f"{where}: {self.path or '<root>'}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class DeployKitError(Exception):
    """Base class. `exit_code` is what the CLI exits with."""

    exit_code = EXIT_INVALID

    def to_dict(self) -> dict:
        return {"error": type(self).__name__, "message": str(self)}


class ValidationError(DeployKitError):
    """Invalid input. Carries every problem found, not just the first."""

    exit_code = EXIT_INVALID

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__(
            f"{len(self.problems)} problem(s) found:\n" + "\n".join(f"  {p}" for p in self.problems)
        )

    def to_dict(self) -> dict:
        return {
            "error": "ValidationError",
            "message": f"{len(self.problems)} problem(s) found",
            "problems": [p.to_dict() for p in self.problems],
        }


class InternalError(DeployKitError):
    """A bug in deploykit (e.g. rendered JSON that fails the Marathon schema)."""

    exit_code = 70

    def __init__(self, message: str, *, log: str | None = None):
        super().__init__(f"internal error (a bug in deploykit, please report it): {message}")
        self.log = log

    @classmethod
    def from_exception(cls, exc: BaseException, log: str | None) -> InternalError:
        """One line for an exception that escaped a command; the traceback is in the file `log`."""
        lines = str(exc).strip().splitlines()
        text = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
        where = f"; the traceback is in {log}" if log else " (the traceback could not be written to a log file)"
        return cls(text + where, log=log)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "log": self.log}


class UnreachableError(DeployKitError):
    """A server could not be reached or did not answer in time."""

    exit_code = EXIT_UNREACHABLE


class RemoteError(DeployKitError):
    """A server answered with an error. `status` and `body` are what it said."""

    exit_code = EXIT_UNREACHABLE

    def __init__(self, message: str, *, status: int | None = None, body: object = None):
        super().__init__(message)
        self.status = status
        self.body = body

    def to_dict(self) -> dict:
        return {**super().to_dict(), "status": self.status, "body": self.body}


class AuthError(RemoteError):
    """401/403 from a server: credentials missing or refused."""

    exit_code = EXIT_INVALID


class LockedError(DeployKitError):
    """Someone else holds the deploy lock, or Marathon says the app is locked."""

    exit_code = EXIT_LOCKED


class DeployFailed(DeployKitError):
    """The deployment failed and the previous version was restored."""

    exit_code = EXIT_DEPLOY_FAILED


class RollbackFailed(DeployKitError):
    """The deployment failed and so did the rollback: a human is needed."""

    exit_code = EXIT_ROLLBACK_FAILED


class BuildError(DeployKitError):
    """An image build or push failed."""

    exit_code = 1
