"""Per-(environment, app) deploy locks: ZooKeeper (kazoo Lock recipe) or a Consul session.

Why a lock at all: Marathon only refuses a second deployment while the first is running;
it does nothing about two people writing config and PUTting the same app a second apart.
The lock is held from before the config write until the deploy (and rollback) is done.

Why these two: a ZooKeeper lock is an ephemeral node, a Consul lock a key bound to a
TTL session — either way a crashed or SIGKILLed deployer cannot leave a stale lock
behind (the problem Helm's `pending-upgrade` has). The holder's identity (user, host, pid,
$BUILD_URL, start time) is stored with the lock and shown to whoever waits or gives up.

A killed holder: its lock lives on until its session expires (the ZooKeeper session timeout,
or up to twice the Consul session TTL). `Holder.gone()` tells, on the holder's own host,
that its process no longer runs, so the message says the holder is gone and the deploy waits
that bound out (`expiry_bound()`) instead of failing on a lock nobody really holds.

Losing the lock: kazoo's `Lock.is_acquired` stays True after the session is lost, so we
listen to the connection state ourselves. SUSPENDED means "maybe lost": `check()` waits a
moment for a reconnect, then gives up; LOST (session expired) is final. The deploy calls
`check()` before every change and polls `lost` while waiting, and aborts (LockLost,
exit 3) without touching anything else. Listeners only record; the deploy loop acts.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from deploykit.durations import parse_go_duration
from deploykit.errors import DeployKitError, LockedError, UnreachableError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holder:
    """Who holds (or wants) a deploy lock."""

    user: str
    host: str
    pid: int
    build_url: str | None
    started_at: str

    @classmethod
    def current(cls, environ: Any = None) -> Holder:
        environ = os.environ if environ is None else environ
        try:
            user = getpass.getuser()
        except Exception:  # no passwd entry in some containers
            user = environ.get("USER", "unknown")
        return cls(
            user=user,
            host=socket.gethostname(),
            pid=os.getpid(),
            build_url=environ.get("BUILD_URL") or None,
            started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def parse(cls, raw: bytes | str | None) -> Holder | None:
        if not raw:
            return None
        try:
            doc = json.loads(raw)
            return cls(
                user=str(doc.get("user", "?")),
                host=str(doc.get("host", "?")),
                pid=int(doc.get("pid", 0)),
                build_url=doc.get("build_url"),
                started_at=str(doc.get("started_at", "?")),
            )
        except (ValueError, TypeError, AttributeError):
            return None

    def describe(self) -> str:
        text = f"{self.user}@{self.host} (pid {self.pid}) since {self.started_at}"
        if self.build_url:
            text += f", {self.build_url}"
        if self.gone():
            text += f"; that process is gone (pid {self.pid} no longer runs on {self.host})"
        return text

    def gone(self) -> bool:
        """True when the holder ran on this host and that process no longer runs (pid gone, a zombie,
        or reused by a later process). False when it runs, or when that cannot be told from here."""
        if self.host != socket.gethostname() or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # another user's process: it exists
        stat = _proc_stat(self.pid)
        if stat is None:
            return False
        state, started = stat
        if state in ("Z", "X"):
            return True
        try:
            since = datetime.fromisoformat(self.started_at).timestamp()
        except ValueError:
            return False
        return started > since + 1.0  # the pid now belongs to a process started after the holder
    def to_dict(self) -> dict:
        return asdict(self)


def _proc_stat(pid: int) -> tuple[str, float] | None:
    """(state letter, start time as a Unix timestamp) of a Linux process; None where /proc cannot say."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as fh:
            btime = next(float(line.split()[1]) for line in fh if line.startswith("btime "))
        return fields[0], btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


class LockHeld(LockedError):
    """Someone else holds the deploy lock; `holder` says who (None if unreadable).

    `expires_within`: when the holder is gone, the longest its session can keep the lock.
    """

    def __init__(self, message: str, holder: Holder | None, expires_within: float | None = None):
        super().__init__(message)
        self.holder = holder
        self.expires_within = expires_within

    def to_dict(self) -> dict:
        return {**super().to_dict(), "holder": self.holder.to_dict() if self.holder else None}


class LockLost(LockedError):
    """We held the lock and lost it (session expired / connection lost): stop changing things."""


class DeployLock(Protocol):
    """What the deploy needs of a lock; ZkDeployLock and ConsulDeployLock implement it."""

    name: str
    holder: Holder  # who we are: stored with the lock, shown to whoever waits for it

    def acquire(self, timeout: float) -> None: ...

    def check(self) -> None: ...

    @property
    def lost(self) -> str | None: ...

    def release(self) -> None: ...

    def current_holder(self) -> Holder | None:
        """Who holds the lock now (None: nobody, or unreadable); never takes it."""
        ...

    def expiry_bound(self) -> float:
        """The longest (seconds) a killed holder's session keeps the lock."""
        ...


def _held_error(name: str, holder: Holder | None, timeout: float, bound: Callable[[], float]) -> LockHeld:
    if holder is None:
        return LockHeld(f"deploy lock {name} is held by an unknown holder (waited {timeout:g}s)", None)
    if holder.gone():
        within = bound()
        return LockHeld(f"deploy lock {name} is held by {holder.describe()}; its session expires within "
                        f"{within:g}s (waited {timeout:g}s)", holder, within)
    return LockHeld(f"deploy lock {name} is held by {holder.describe()} (waited {timeout:g}s)", holder)


def lock_name(env_name: str, app_id: str) -> str:
    """`<env>/<app id without leading slash>`: one lock per environment and app."""
    return f"{env_name}/{app_id.strip('/')}"


class ZkDeployLock:
    """kazoo's Lock recipe under `<lock_root>/<env>/<app id>`; the node data is the holder JSON."""

    def __init__(self, client: Any, lock_root: str, env_name: str, app_id: str, holder: Holder,
                 suspend_grace: float = 5.0, session_timeout: float = 10.0):
        self._client = client
        self._session_timeout = session_timeout  # what deploykit's clients ask for (clients.zk.connect)
        self.name = lock_name(env_name, app_id)
        self.path = f"{lock_root.rstrip('/')}/{self.name}"
        self.holder = holder
        self._lock = client.Lock(self.path, identifier=holder.to_json())
        self._held = False
        self._lost: str | None = None
        self._suspended = threading.Event()
        self._suspended_at = 0.0
        self._suspend_grace = suspend_grace
        client.add_listener(self._on_state)

    # kazoo's connection thread calls this: record only.
    def _on_state(self, state: str) -> None:
        if state == "LOST":
            if self._held:
                self._lost = "the ZooKeeper session expired, so the lock's ephemeral node is gone"
        elif state == "SUSPENDED":
            self._suspended_at = time.monotonic()
            self._suspended.set()
        elif state == "CONNECTED":
            self._suspended.clear()

    def current_holder(self) -> Holder | None:
        try:
            contenders = self._lock.contenders()
        except Exception:
            return None
        return Holder.parse(contenders[0]) if contenders else None

    def acquire(self, timeout: float) -> None:
        from kazoo.exceptions import LockTimeout

        from deploykit.clients.zk import translate

        try:
            got = self._lock.acquire(blocking=timeout > 0, timeout=timeout if timeout > 0 else None)
        except LockTimeout:
            got = False
        except Exception as exc:
            raise translate(exc, f"taking the deploy lock {self.path}") from None
        if not got:
            raise _held_error(self.name, self.current_holder(), timeout, self.expiry_bound)
        self._held = True

    def expiry_bound(self) -> float:
        # ZooKeeper expires a silent session after its negotiated timeout (the one requested, within the
        # server's 2..20 ticks); a margin covers the server noticing and the node's deletion reaching us.
        return self._session_timeout + 5.0

    @property
    def lost(self) -> str | None:
        if self._lost:
            return self._lost
        # A short connection blip is not a loss (waiting changes nothing, and check() holds
        # every change until the connection is back); one longer than the grace is.
        if self._held and self._suspended.is_set() and time.monotonic() - self._suspended_at > self._suspend_grace:
            return f"connection to ZooKeeper lost for over {self._suspend_grace:g}s (the session may have expired)"
        return None

    def check(self) -> None:
        """Raise LockLost unless we still certainly hold the lock."""
        if not self._held:
            raise LockLost(f"deploy lock {self.name} is not held")
        if self._suspended.is_set():
            deadline = time.monotonic() + self._suspend_grace
            while self._suspended.is_set() and not self._lost and time.monotonic() < deadline:
                time.sleep(0.05)
        if self._lost or self._suspended.is_set():
            why = self._lost or "no connection to ZooKeeper, so the lock cannot be confirmed"
            raise LockLost(f"lost the deploy lock {self.name}: {why}; stopped before any further change")
        node = getattr(self._lock, "node", None)
        try:
            if node and self._client.exists(f"{self.path}/{node}") is None:
                self._lost = "the lock node disappeared"
        except Exception:
            self._lost = "ZooKeeper did not answer while checking the lock"
        if self._lost:
            raise LockLost(f"lost the deploy lock {self.name}: {self._lost}; stopped before any further change")

    def release(self) -> None:
        self._client.remove_listener(self._on_state)
        if self._held and not self._lost:
            with contextlib.suppress(Exception):
                self._lock.release()
        self._held = False


class ConsulDeployLock:
    """A key `<prefix>/<env>/<app id>` acquired with a TTL session renewed by a thread.

    Used where there is no ZooKeeper (a laptop's devcluster). Session behaviour "delete"
    removes the key when the session dies; lock-delay 0 so the next deployer does not
    wait 15 s after a crash.
    """

    def __init__(self, consul: Any, key_prefix: str, env_name: str, app_id: str, holder: Holder,
                 ttl: float = 10.0, poll: float = 0.25):
        self._consul = consul
        self.name = lock_name(env_name, app_id)
        self.key = f"{key_prefix.strip('/')}/{self.name}"
        self.holder = holder
        self.ttl = ttl
        self._poll = poll
        self._session: str | None = None
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_renew = 0.0

    def current_holder(self) -> Holder | None:
        try:
            entry = self._consul.get(self.key, with_meta=True)
        except DeployKitError:
            return None
        if not entry or not entry.get("Session"):
            return None  # a leftover value without a session is nobody's lock
        return Holder.parse(entry.get("Value"))

    def acquire(self, timeout: float) -> None:
        self._session = self._consul.session_create(
            name=f"deploykit lock {self.name}", ttl=self.ttl, behavior="delete", lock_delay=0
        )
        deadline = time.monotonic() + max(0.0, timeout)
        try:
            while True:
                if self._consul.acquire(self.key, self._session, self.holder.to_json().encode()):
                    break
                if time.monotonic() >= deadline:
                    raise _held_error(self.name, self.current_holder(), timeout, self.expiry_bound)
                time.sleep(self._poll)
                self._consul.session_renew(self._session)
        except BaseException:
            self._destroy()
            raise
        self._last_renew = time.monotonic()
        self._thread = threading.Thread(target=self._renew_loop, name="deploykit-lock-renew", daemon=True)
        self._thread.start()

    def expiry_bound(self) -> float:
        """Consul invalidates a session up to twice its TTL after the last renewal (the holder's own TTL)."""
        ttl = self.ttl
        with contextlib.suppress(DeployKitError, ValueError, TypeError, AttributeError):
            entry = self._consul.get(self.key, with_meta=True)
            info = self._consul.session_info(entry["Session"]) if entry and entry.get("Session") else None
            if info and info.get("TTL"):
                ttl = parse_go_duration(info["TTL"])
        return 2 * ttl + 2.0

    def _renew_loop(self) -> None:
        interval = max(0.2, self.ttl / 3)
        while not self._stop.wait(interval):
            try:
                ok = self._consul.session_renew(self._session)
            except UnreachableError:
                if time.monotonic() - self._last_renew > self.ttl:
                    self._lost = "could not renew the Consul session within its TTL"
                    return
                continue
            except DeployKitError as exc:
                self._lost = f"renewing the Consul session failed: {exc}"
                return
            if ok is False or ok is None:
                self._lost = "the Consul session was invalidated"
                return
            self._last_renew = time.monotonic()

    @property
    def lost(self) -> str | None:
        return self._lost

    def check(self) -> None:
        if self._session is None:
            raise LockLost(f"deploy lock {self.name} is not held")
        if not self._lost:
            try:
                value = self._consul.get(self.key, with_meta=True)
                if not value or value.get("Session") != self._session:
                    self._lost = "the lock key no longer belongs to our session"
            except DeployKitError as exc:
                self._lost = f"Consul did not answer while checking the lock: {exc}"
        if self._lost:
            raise LockLost(f"lost the deploy lock {self.name}: {self._lost}; stopped before any further change")

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        if self._session and not self._lost:
            # Delete the key only while it is still ours (CAS on its index), so the holder
            # identity never outlives the lock and a successor's lock is never touched.
            with contextlib.suppress(DeployKitError):
                entry = self._consul.get(self.key, with_meta=True)
                if entry and entry.get("Session") == self._session:
                    self._consul.delete(self.key, cas=entry["ModifyIndex"])
        self._destroy()

    def _destroy(self) -> None:
        if self._session:
            with contextlib.suppress(DeployKitError):
                self._consul.session_destroy(self._session)
        self._session = None
