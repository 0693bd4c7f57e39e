"""Driving a real HAProxy (2.6+, master-worker): validate, swap, reload, and the runtime API.

Why this shape:
- A config only reaches the live path after `haproxy -c` accepted it, through an atomic
  rename; the last good text is kept so a bad render can never replace a running config.
- Reloads go through the master CLI (`reload`), which hands listening sockets to the new
  worker (no dropped connections). HAProxy 2.6 answers `reload` with nothing, so the outcome
  is read from `show proc`: the master's reload counter moves and `[failed: N]` says whether
  the new config started.
- Runtime changes (server address, state) are lost by a reload unless carried over, so the
  running state is dumped with `show servers state` into the server-state-file first.
- Server moves go through the stats socket in batches (`;`-separated commands on one
  connection) so a scale-up of many tasks is one round-trip, not one per command.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deploykit.atomicfile import atomic_write
from deploykit.errors import DeployKitError, RemoteError, UnreachableError
from deploykit.pids import pid_alive

log = logging.getLogger(__name__)

# Runtime API replies that mean the command did not do what was asked (HAProxy 2.6 wording).
_ERROR_REPLY = re.compile(
    r"^(No such |Unknown command|Require |Invalid |'set server|unknown |Permission denied|"
    r"Can't |cannot |Cannot |Not enough |expects |Missing |Unexpected |Failed)",
)
# Keep one batch well under HAProxy's CLI line buffer (tune.bufsize, 16 KiB by default).
_BATCH_CHARS = 8000


class ConfigInvalid(DeployKitError):
    """`haproxy -c` refused a candidate config; the running one was left alone."""

    def __init__(self, message: str, output: str):
        super().__init__(message)
        self.output = output

    def to_dict(self) -> dict:
        return {**super().to_dict(), "haproxy_output": self.output}


class ReloadFailed(DeployKitError):
    """HAProxy's master reported a failed reload, or it never confirmed one."""

    exit_code = 1


# ---------------------------------------------------------------- sockets


def socket_command(path: str | os.PathLike, command: str, timeout: float = 5.0) -> str:
    """Send one line to an HAProxy CLI socket (stats or master) and return the whole reply.

    Half-closing the write side makes HAProxy answer and close, so no prompt parsing is needed.
    """
    data = (command.rstrip("\n") + "\n").encode()
    chunks: list[bytes] = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(os.fspath(path))
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as exc:
        raise UnreachableError(f"HAProxy socket {os.fspath(path)} did not answer: {exc}") from None
    return b"".join(chunks).decode("utf-8", "replace")


def split_replies(text: str) -> list[str]:
    """Split the reply to `a; b; c` into one reply per command (each ends with an empty line)."""
    replies: list[str] = []
    current: list[str] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        if line == "":
            replies.append("\n".join(current))
            current = []
        else:
            current.append(line)
    if current:
        replies.append("\n".join(current))
    return replies


def is_error_reply(reply: str) -> bool:
    return bool(reply) and any(_ERROR_REPLY.match(line.strip()) for line in reply.splitlines())


# ---------------------------------------------------------------- show proc


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    kind: str  # master | worker
    reloads: int
    failed: int | None  # master only: failed reloads since the last good one
    uptime: str
    version: str


@dataclass(frozen=True, slots=True)
class ProcTable:
    """Parsed `show proc` from the master CLI."""

    master: Proc
    workers: tuple[Proc, ...] = ()
    old_workers: tuple[Proc, ...] = ()


_PROC_LINE = re.compile(r"^(\d+)\s+(\w+)\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?\s+(\S+)\s*(\S*)")


def parse_show_proc(text: str) -> ProcTable:
    """Parse HAProxy 2.6's `show proc` table (master line, `# workers`, `# old workers`)."""
    section = "master"
    master: Proc | None = None
    workers: list[Proc] = []
    old: list[Proc] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            low = line.lower()
            if low.startswith("# old workers"):
                section = "old"
            elif low.startswith("# workers"):
                section = "workers"
            elif low.startswith("# programs"):
                section = "programs"
            continue
        m = _PROC_LINE.match(line)
        if not m:
            continue
        proc = Proc(
            pid=int(m.group(1)),
            kind=m.group(2),
            reloads=int(m.group(3)),
            failed=int(m.group(4)) if m.group(4) is not None else None,
            uptime=m.group(5),
            version=m.group(6),
        )
        if proc.kind == "master" and master is None:
            master = proc
        elif section == "workers":
            workers.append(proc)
        elif section == "old":
            old.append(proc)
    if master is None:
        raise RemoteError("HAProxy master CLI answered `show proc` without a master line", body=text[:500])
    return ProcTable(master=master, workers=tuple(workers), old_workers=tuple(old))


# ---------------------------------------------------------------- runtime API


@dataclass
class RuntimeResult:
    sent: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (command, reply)
    batches: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


class RuntimeApi:
    """HAProxy's runtime API on the admin stats socket; commands batched per connection."""

    def __init__(self, stats_socket: str | os.PathLike, timeout: float = 5.0):
        self.path = os.fspath(stats_socket)
        self.timeout = timeout

    def command(self, command: str) -> str:
        return socket_command(self.path, command, self.timeout)

    def run(self, commands: Sequence[str]) -> RuntimeResult:
        """Send `commands` in as few connections as fit the CLI buffer; report each failed one."""
        result = RuntimeResult()
        for batch in _batches(commands):
            reply = self.command("; ".join(batch))
            replies = split_replies(reply)
            result.batches += 1
            result.sent += len(batch)
            for i, cmd in enumerate(batch):
                text = replies[i] if i < len(replies) else ""
                if is_error_reply(text):
                    result.failed.append((cmd, text.strip()))
        return result

    def show_servers_state(self) -> str:
        return self.command("show servers state")


def _batches(commands: Sequence[str]) -> Iterable[list[str]]:
    batch: list[str] = []
    size = 0
    for cmd in commands:
        if ";" in cmd or "\n" in cmd:
            raise ValueError(f"runtime command may not contain ';' or a newline: {cmd!r}")
        if batch and size + len(cmd) + 2 > _BATCH_CHARS:
            yield batch
            batch, size = [], 0
        batch.append(cmd)
        size += len(cmd) + 2
    if batch:
        yield batch


# ---------------------------------------------------------------- server state across reloads

_SECTION = re.compile(r"^(backend|listen|frontend|global|defaults|peers|resolvers|userlist|program|cache)\s*(\S*)")


def config_servers(text: str) -> dict[tuple[str, str], tuple[str, int, bool]]:
    """(backend, server) -> (addr, port, enabled) for every `server`/`server-template` in a config."""
    servers: dict[tuple[str, str], tuple[str, int, bool]] = {}
    backend: str | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not raw[:1].isspace():
            m = _SECTION.match(line)
            backend = m.group(2) if m and m.group(1) in ("backend", "listen") else None
            continue
        if backend is None:
            continue
        words = line.split()
        if words[0] == "server" and len(words) >= 3:
            names, target, opts = [words[1]], words[2], words[3:]
        elif words[0] == "server-template" and len(words) >= 4:
            prefix, count, target, opts = words[1], words[2], words[3], words[4:]
            lo, _, hi = count.partition("-")
            try:
                first, last = (int(lo), int(hi)) if hi else (1, int(lo))
            except ValueError:
                continue
            names = [f"{prefix}{i}" for i in range(first, last + 1)]
        else:
            continue
        addr, _, port = target.rpartition(":")
        if not addr:
            addr, port = target, "0"
        enabled = "disabled" not in opts
        for name in names:
            servers[(backend, name)] = (addr, int(port) if port.isdigit() else 0, enabled)
    return servers


def filter_server_state(state: str, new_config: str) -> str:
    """Keep only state lines that agree with `new_config` (same address and port, enabled there).

    Measured on HAProxy 2.6: a state line's port and ready/maint state win over the config
    file, its address does not. A line for a server the new file moves or disables would
    therefore leave it half-moved; dropping the line lets the file decide, while unchanged
    servers keep their check results and drain/maint state across the reload.
    """
    wanted = config_servers(new_config)
    out: list[str] = []
    for line in state.splitlines():
        if not line or line.startswith("#") or line.strip() == "1":
            out.append(line)
            continue
        cols = line.split()
        if len(cols) < 19:
            continue
        be_name, srv_name, srv_addr, srv_port = cols[1], cols[3], cols[4], cols[18]
        target = wanted.get((be_name, srv_name))
        if target is None or not target[2]:
            continue
        if target[0] != srv_addr or str(target[1]) != srv_port:
            continue
        out.append(line)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- process + config management


@dataclass
class ApplyResult:
    changed: bool  # False when the text equals the running config (nothing done)
    reloaded: bool = False
    started: bool = False
    seconds: float = 0.0


class HAProxy:
    """One HAProxy instance in master-worker mode: its files, sockets and lifecycle.

    `start()` launches it when nothing answers on the master socket (so `lb run` alone is a
    working quick start); otherwise the running master is managed through its socket.
    """

    def __init__(
        self,
        config_path: str | os.PathLike,
        master_socket: str | os.PathLike,
        stats_socket: str | os.PathLike,
        state_file: str | os.PathLike | None = None,
        *,
        haproxy_bin: str = "haproxy",
        pidfile: str | os.PathLike | None = None,
        reload_timeout: float = 10.0,
    ):
        self.config_path = Path(config_path)
        self.master_socket = Path(master_socket)
        self.runtime = RuntimeApi(stats_socket)
        self.state_file = Path(state_file) if state_file else None
        self.haproxy_bin = haproxy_bin
        self.pidfile = Path(pidfile) if pidfile else self.config_path.with_name("haproxy.pid")
        self.reload_timeout = reload_timeout
        self.last_good: str | None = None
        self.started_by_us = False

    @property
    def last_good_path(self) -> Path:
        return self.config_path.with_name(self.config_path.name + ".last-good")

    # -- status

    def show_proc(self) -> ProcTable:
        return parse_show_proc(socket_command(self.master_socket, "show proc"))

    def master_alive(self) -> bool | None:
        """Whether the master in the pidfile still runs (None: no readable pidfile). Unlike `running`, a
        master busy re-executing itself for a reload (its socket refuses for a moment) counts as alive."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid_alive(pid)

    def running(self) -> bool:
        try:
            self.show_proc()
        except (UnreachableError, RemoteError):
            return False
        return True

    # -- config files

    def check(self, text: str) -> None:
        """Run `haproxy -c` on `text` in a candidate file next to the live one; ConfigInvalid if refused."""
        candidate = self._write_candidate(text)
        try:
            self._check_file(candidate)
        finally:
            candidate.unlink(missing_ok=True)

    def _write_candidate(self, text: str) -> Path:
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".candidate-", suffix=".cfg", dir=self.config_path.parent)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return Path(name)

    def _check_file(self, path: Path) -> None:
        try:
            proc = subprocess.run([self.haproxy_bin, "-c", "-f", str(path)], capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            raise UnreachableError(f"HAProxy binary {self.haproxy_bin!r} not found") from None
        except subprocess.TimeoutExpired:
            raise ConfigInvalid("haproxy -c did not finish in 60 s", "") from None
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr).replace(str(path), str(self.config_path))
            first = next((ln for ln in output.splitlines() if "ALERT" in ln), output.strip()[:300])
            raise ConfigInvalid(f"haproxy -c refused the new config: {first}", output)

    def _install(self, candidate: Path) -> None:
        os.replace(candidate, self.config_path)  # atomic on one filesystem

    def _remember_good(self, text: str) -> None:
        self.last_good = text
        atomic_write(self.last_good_path, text)

    def dump_server_state(self, new_config: str | None = None) -> None:
        """Write `show servers state` to the server-state-file so a reload keeps runtime state.

        With `new_config`, only lines for servers the new file still has at the same address
        and port, enabled, are kept (see `filter_server_state`): HAProxy 2.6 would otherwise
        let a stale state line override the port and the enabled flag the new file sets.
        """
        if self.state_file is None:
            return
        state = self.runtime.show_servers_state()
        if not state.lstrip().startswith("1"):  # version line of the state format
            raise RemoteError("unexpected `show servers state` reply", body=state[:300])
        if new_config is not None:
            state = filter_server_state(state, new_config)
        atomic_write(self.state_file, state)

    # -- lifecycle

    def start(self, text: str) -> ApplyResult:
        """Validate `text`, install it and launch HAProxy in master-worker mode (daemonised)."""
        t0 = time.monotonic()
        candidate = self._write_candidate(text)
        try:
            self._check_file(candidate)
            self._install(candidate)
        finally:
            candidate.unlink(missing_ok=True)
        self.master_socket.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.haproxy_bin,
            "-W",
            "-S",
            str(self.master_socket),
            "-f",
            str(self.config_path),
            "-D",
            "-p",
            str(self.pidfile),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise ReloadFailed(f"HAProxy did not start (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        deadline = time.monotonic() + self.reload_timeout
        while not self._has_worker():
            if time.monotonic() > deadline:
                raise ReloadFailed("HAProxy started but its master socket shows no worker")
            time.sleep(0.02)
        self.started_by_us = True
        self._remember_good(text)
        return ApplyResult(changed=True, started=True, seconds=time.monotonic() - t0)

    def _has_worker(self) -> bool:
        try:
            return bool(self.show_proc().workers)
        except (UnreachableError, RemoteError):
            return False

    def adopt(self) -> None:
        """Manage an HAProxy that was already running: its current file is the last good config."""
        with contextlib.suppress(OSError):
            self.last_good = self.config_path.read_text()

    def apply(self, text: str, *, force: bool = False) -> ApplyResult:
        """Make `text` the running config: check, dump state, swap atomically, reload, confirm.

        Never installs a config `haproxy -c` refuses (ConfigInvalid). If the master still
        reports a failed reload, the last good file is put back (ReloadFailed) so the next
        reload of any kind cannot pick the bad one up.
        """
        if text == self.last_good and not force:
            return ApplyResult(changed=False)
        t0 = time.monotonic()
        candidate = self._write_candidate(text)
        try:
            self._check_file(candidate)
            before = self.show_proc().master
            try:
                self.dump_server_state(text)
            except DeployKitError as exc:  # losing runtime state is better than not reloading
                log.warning("could not save server state before reload: %s", exc)
            self._install(candidate)
        finally:
            candidate.unlink(missing_ok=True)
        ok = self._reload_and_confirm(before)
        if not ok:
            if self.last_good is not None:
                restore = self._write_candidate(self.last_good)
                self._install(restore)
            raise ReloadFailed("HAProxy master reported the reload as failed; the previous config stays in place")
        self._remember_good(text)
        return ApplyResult(changed=True, reloaded=True, seconds=time.monotonic() - t0)

    def _reload_and_confirm(self, before: Proc) -> bool:
        socket_command(self.master_socket, "reload")
        deadline = time.monotonic() + self.reload_timeout
        while time.monotonic() < deadline:
            time.sleep(0.01)
            try:
                table = self.show_proc()
            except (UnreachableError, RemoteError):  # the master re-executes itself during a reload
                continue
            if table.master.reloads > before.reloads:
                if table.master.failed:
                    return False
                if table.workers:
                    return True
        raise ReloadFailed(f"HAProxy did not confirm the reload within {self.reload_timeout:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the master (and its workers) we started; a no-op for an adopted HAProxy."""
        if not self.started_by_us:
            return
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 15)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.05)
            os.kill(pid, 9)
        self.started_by_us = False
