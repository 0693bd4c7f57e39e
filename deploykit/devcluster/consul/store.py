"""The KV + session state of the Consul stand-in, and the rules Consul applies to it.

Pure and synchronous: every mutation is computed against the current state inside one
call (so it is atomic on the event loop) and expressed as a list of *changes* (full
entries written, keys deleted, sessions written/removed). The same `apply` replays those
changes from the journal at start-up, so live writes and recovery share one code path.
"""

from __future__ import annotations

import base64
import time
import uuid
from bisect import bisect_left, insort
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Entry:
    """One KV pair as Consul stores it (a DirEntry)."""

    key: str
    value: bytes
    flags: int
    create_index: int
    modify_index: int
    lock_index: int = 0
    session: str | None = None

    def to_json(self, with_value: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "LockIndex": self.lock_index,
            "Key": self.key,
            "Flags": self.flags,
            "Value": base64.b64encode(self.value).decode() if (with_value and self.value) else None,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }
        if self.session:
            doc["Session"] = self.session
        return doc

    def to_record(self) -> list[Any]:
        return [
            "p", self.key, base64.b64encode(self.value).decode(), self.flags,
            self.create_index, self.modify_index, self.lock_index, self.session,
        ]

    @classmethod
    def from_record(cls, rec: list[Any]) -> Entry:
        _, key, value, flags, create, modify, lock, session = rec
        return cls(key, base64.b64decode(value), flags, create, modify, lock, session)


@dataclass(slots=True)
class Session:
    """A session: what locks hang on. Timers live in the server, not here."""

    id: str
    name: str = ""
    node: str = "devcluster"
    lock_delay_ns: int = 15_000_000_000
    behavior: str = "release"
    ttl: str = ""
    create_index: int = 0
    modify_index: int = 0
    node_checks: list[str] = field(default_factory=list)
    service_checks: list[Any] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Name": self.name,
            "Node": self.node,
            "LockDelay": self.lock_delay_ns,
            "Behavior": self.behavior,
            "TTL": self.ttl,
            "NodeChecks": list(self.node_checks),
            "ServiceChecks": list(self.service_checks) or None,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }

    def to_record(self) -> list[Any]:
        return ["s", self.to_json()]

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Session:
        return cls(
            id=doc["ID"], name=doc.get("Name", ""), node=doc.get("Node", "devcluster"),
            lock_delay_ns=int(doc.get("LockDelay", 0)), behavior=doc.get("Behavior", "release"),
            ttl=doc.get("TTL", ""), create_index=doc.get("CreateIndex", 0), modify_index=doc.get("ModifyIndex", 0),
            node_checks=list(doc.get("NodeChecks") or []), service_checks=list(doc.get("ServiceChecks") or []),
        )


class TxnFailed(Exception):
    """One operation of a transaction failed; the message is Consul's per-op `What`."""


class Store:
    """KV entries (sorted key list for prefix scans), tombstones, sessions and the raft-like index."""

    def __init__(self) -> None:
        # Indexes start at 1, never 0: a reader of an empty store gets index 1 and blocks on it, so the
        # first write (index 2) must be above it, or that reader would sleep through it (Consul's raft
        # log likewise never starts empty).
        self.index = 1  # last index handed out (every write bumps it once)
        self.kv_index = 1  # highest index of any KV write or delete (Consul's KV table index)
        self.session_index = 1
        self.entries: dict[str, Entry] = {}
        self._keys: list[str] = []  # sorted, for prefix scans
        self.tombstones: dict[str, tuple[int, float]] = {}  # key -> (delete index, wall time)
        self._tomb_keys: list[str] = []
        self.sessions: dict[str, Session] = {}
        self._locks: dict[str, set[str]] = {}  # session id -> keys it holds
        self.lock_delay_until: dict[str, float] = {}  # key -> monotonic time; in memory only, as in Consul

    # ---- reads -------------------------------------------------------------------------------------------------
    def scan(self, prefix: str) -> Iterator[Entry]:
        i = bisect_left(self._keys, prefix)
        keys = self._keys
        while i < len(keys) and keys[i].startswith(prefix):
            yield self.entries[keys[i]]
            i += 1

    def prefix_index(self, prefix: str) -> int:
        """Consul's index for a recursive read: newest write *or delete* under the prefix, else the table index."""
        if prefix == "":
            return self.kv_index
        best = max((e.modify_index for e in self.scan(prefix)), default=0)
        i = bisect_left(self._tomb_keys, prefix)
        while i < len(self._tomb_keys) and self._tomb_keys[i].startswith(prefix):
            best = max(best, self.tombstones[self._tomb_keys[i]][0])
            i += 1
        return best or self.kv_index

    def key_index(self, key: str) -> int:
        entry = self.entries.get(key)
        return entry.modify_index if entry else self.kv_index

    def locks_of(self, session_id: str) -> set[str]:
        return set(self._locks.get(session_id, ()))

    # ---- applying changes (live and replay) --------------------------------------------------------------------
    def apply(self, index: int, changes: list[list[Any]]) -> list[str]:
        """Apply journal changes written at `index`; return the KV keys they touched."""
        touched: list[str] = []
        for ch in changes:
            kind = ch[0]
            if kind == "p":
                entry = Entry.from_record(ch)
                self._put(entry)
                touched.append(entry.key)
                self.kv_index = max(self.kv_index, index)
            elif kind == "d":
                _, key, wall = ch
                self._delete(key, index, wall)
                touched.append(key)
                self.kv_index = max(self.kv_index, index)
            elif kind == "s":
                sess = Session.from_json(ch[1])
                self.sessions[sess.id] = sess
                self.session_index = max(self.session_index, index)
            elif kind == "x":
                self.sessions.pop(ch[1], None)
                self._locks.pop(ch[1], None)
                self.session_index = max(self.session_index, index)
            else:  # pragma: no cover - a journal from a newer version
                raise ValueError(f"unknown journal change {kind!r}")
        self.index = max(self.index, index)
        return touched

    def _put(self, entry: Entry) -> None:
        old = self.entries.get(entry.key)
        if old is None:
            insort(self._keys, entry.key)
        elif old.session and old.session != entry.session:
            self._locks.get(old.session, set()).discard(entry.key)
        if entry.session:
            self._locks.setdefault(entry.session, set()).add(entry.key)
        self.entries[entry.key] = entry

    def _delete(self, key: str, index: int, wall: float) -> None:
        old = self.entries.pop(key, None)
        if old is not None:
            del self._keys[bisect_left(self._keys, key)]
            if old.session:
                self._locks.get(old.session, set()).discard(key)
        if key not in self.tombstones:
            insort(self._tomb_keys, key)
        self.tombstones[key] = (index, wall)

    def reap_tombstones(self, older_than_wall: float) -> int:
        """Forget deletes older than the tombstone TTL (Consul does too: a prefix's index may then go backwards)."""
        dead = [k for k, (_, wall) in self.tombstones.items() if wall < older_than_wall]
        for k in dead:
            del self.tombstones[k]
        if dead:
            self._tomb_keys = sorted(self.tombstones)
        return len(dead)

    # ---- snapshot ----------------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "version": 1,
            "index": self.index,
            "kv_index": self.kv_index,
            "session_index": self.session_index,
            "entries": [e.to_record() for e in self.entries.values()],
            "tombstones": [[k, i, w] for k, (i, w) in self.tombstones.items()],
            "sessions": [s.to_json() for s in self.sessions.values()],
        }

    def load_snapshot(self, snap: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]
        for rec in snap["entries"]:
            self._put(Entry.from_record(rec))
        for k, i, w in snap["tombstones"]:
            self.tombstones[k] = (i, w)
        self._tomb_keys = sorted(self.tombstones)
        for doc in snap["sessions"]:
            s = Session.from_json(doc)
            self.sessions[s.id] = s
        self.index = snap["index"]
        self.kv_index = snap["kv_index"]
        self.session_index = snap["session_index"]

    # ---- building writes ---------------------------------------------------------------------------------------
    def begin(self) -> Tx:
        return Tx(self, self.index + 1)

    def new_session_id(self) -> str:
        while True:
            sid = str(uuid.uuid4())
            if sid not in self.sessions:
                return sid


class Tx:
    """A write being prepared at index `index`: reads see its own writes; nothing touches the store until applied."""

    def __init__(self, store: Store, index: int) -> None:
        self.store = store
        self.index = index
        self.wall = time.time()
        self._overlay: dict[str, Entry | None] = {}
        self.changes: list[list[Any]] = []

    def get(self, key: str) -> Entry | None:
        if key in self._overlay:
            return self._overlay[key]
        return self.store.entries.get(key)

    def tree(self, prefix: str) -> list[Entry]:
        merged = {e.key: e for e in self.store.scan(prefix)}
        for k, e in self._overlay.items():
            if k.startswith(prefix):
                if e is None:
                    merged.pop(k, None)
                else:
                    merged[k] = e
        return [merged[k] for k in sorted(merged)]

    def _write(self, entry: Entry) -> Entry:
        self._overlay[entry.key] = entry
        self.changes.append(entry.to_record())
        return entry

    def _remove(self, key: str) -> None:
        self._overlay[key] = None
        self.changes.append(["d", key, self.wall])

    # Consul's KV verbs. Each returns (ok, entry) like Consul's state store; TxnFailed for hard errors.
    def set(self, key: str, value: bytes, flags: int) -> Entry:
        old = self.get(key)
        if old is None:
            return self._write(Entry(key, value, flags, self.index, self.index))
        # A plain set keeps CreateIndex, LockIndex and the lock holder (locks are advisory).
        return self._write(replace(old, value=value, flags=flags, modify_index=self.index))

    def cas(self, key: str, value: bytes, flags: int, index: int) -> Entry | None:
        old = self.get(key)
        if index == 0 and old is not None:
            return None
        if index != 0 and (old is None or old.modify_index != index):
            return None
        return self.set(key, value, flags)

    def lock(self, key: str, value: bytes, flags: int, session: str, now: float) -> Entry | None:
        if not session:
            raise TxnFailed("Missing session")
        if session not in self.store.sessions:
            raise TxnFailed(f'invalid session "{session}"')
        old = self.get(key)
        if old is not None and old.session:
            if old.session != session:
                return None
            return self._write(replace(old, value=value, flags=flags, modify_index=self.index))
        until = self.store.lock_delay_until.get(key)
        if until is not None:
            if now < until:
                return None
            del self.store.lock_delay_until[key]  # expired: forget it
        if old is None:
            return self._write(Entry(key, value, flags, self.index, self.index, 1, session))
        return self._write(
            replace(old, value=value, flags=flags, modify_index=self.index, lock_index=old.lock_index + 1,
                    session=session)
        )

    def unlock(self, key: str, value: bytes, flags: int, session: str) -> Entry | None:
        if not session:
            raise TxnFailed("Missing session")
        old = self.get(key)
        if old is None or old.session != session:
            return None
        return self._write(replace(old, value=value, flags=flags, modify_index=self.index, session=None))

    def delete(self, key: str) -> None:
        if self.get(key) is not None:
            self._remove(key)

    def delete_cas(self, key: str, index: int) -> bool:
        old = self.get(key)
        if old is None:
            return True  # Consul: nothing to delete counts as success
        if old.modify_index != index:
            return False
        self._remove(key)
        return True

    def delete_tree(self, prefix: str) -> None:
        for e in self.tree(prefix):
            self._remove(e.key)

    # Sessions ---------------------------------------------------------------------------------------------------
    def put_session(self, sess: Session) -> None:
        self.changes.append(sess.to_record())

    def destroy_session(self, session_id: str, now: float) -> None:
        """Invalidate: release or delete its locks (lock-delay starts for each), then forget it."""
        sess = self.store.sessions.get(session_id)
        if sess is None:
            return
        for key in sorted(self.store.locks_of(session_id)):
            entry = self.get(key)
            if entry is None or entry.session != session_id:
                continue
            if sess.behavior == "delete":
                self._remove(key)
            else:
                self._write(replace(entry, session=None, modify_index=self.index))
            if sess.lock_delay_ns:
                self.store.lock_delay_until[key] = now + sess.lock_delay_ns / 1e9
        self.changes.append(["x", session_id])
