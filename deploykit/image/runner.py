"""The one place deploykit runs image tools (buildah, docker, git) as subprocesses.

Why one runner: every call gets the same treatment — output captured (and optionally
streamed line by line to the user), a hard timeout that kills the whole process group,
and failures turned into deploykit.errors.BuildError carrying the *last lines* of the
tool's output, which is where buildah/docker print the failing step. Command lines are
built so they never contain secrets (credentials travel in private auth files), so the
runner may log them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from deploykit.errors import BuildError

log = logging.getLogger(__name__)

TAIL_LINES = 30


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    output: str  # stdout and stderr interleaved, as the tool printed them
    seconds: float

    def tail(self, n: int = TAIL_LINES) -> str:
        return "\n".join(self.output.splitlines()[-n:])


class CommandFailed(BuildError):
    """A tool exited non-zero (or timed out). `tail` is the end of its output."""

    def __init__(self, message: str, *, argv: Sequence[str], returncode: int | None, tail: str):
        super().__init__(f"{message}\n--- last lines of output ---\n{tail}" if tail else message)
        self.argv = tuple(argv)
        self.returncode = returncode
        self.tail = tail

    def to_dict(self) -> dict:
        return {**super().to_dict(), "command": self.argv[0] if self.argv else None,
                "returncode": self.returncode, "output_tail": self.tail}


class Runner:
    """Runs commands with captured output and a timeout.

    `echo`, when given, receives each output line as it arrives (the CLI streams build
    logs to stderr so a long build shows progress); the captured text is kept either way.
    """

    def __init__(self, *, echo: Callable[[str], None] | None = None, default_timeout: float = 1800.0):
        self.echo = echo
        self.default_timeout = default_timeout

    def run(
        self,
        argv: Sequence[str],
        *,
        what: str,
        timeout: float | None = None,
        cwd: str | os.PathLike | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        stream: bool = False,
        discard_stderr: bool = False,
    ) -> Result:
        """Run `argv`; raise CommandFailed when it fails and `check` is set.

        `what` names the step for the error message ("build", "push 127.0.0.1:5000/x:1").
        `discard_stderr` keeps `output` to stdout alone (for commands whose stdout is data, e.g. git).
        """
        timeout = self.default_timeout if timeout is None else timeout
        log.debug("run %s (cwd=%s, timeout=%ss)", " ".join(argv), cwd, timeout)
        full_env = None if env is None else {**os.environ, **env}
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                list(argv), cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL if discard_stderr else subprocess.STDOUT, start_new_session=True, text=True,
                errors="replace",
            )
        except FileNotFoundError:
            raise BuildError(f"{what}: {argv[0]!r} is not installed or not on PATH") from None
        except PermissionError as exc:
            raise BuildError(f"{what}: cannot run {argv[0]!r}: {exc.strerror}") from None
        timed_out = threading.Event()

        def _kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, _kill)
        timer.daemon = True
        timer.start()
        lines: list[str] = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if stream and self.echo is not None:
                    self.echo(line.rstrip("\n"))
            proc.wait()
        except BaseException:
            _kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
        result = Result(tuple(argv), proc.returncode, "".join(lines), time.monotonic() - start)
        if timed_out.is_set():
            raise CommandFailed(f"{what}: timed out after {timeout:g}s", argv=argv, returncode=None,
                                tail=result.tail())
        if check and proc.returncode != 0:
            raise CommandFailed(f"{what} failed (exit {proc.returncode})", argv=argv, returncode=proc.returncode,
                                tail=result.tail())
        return result

