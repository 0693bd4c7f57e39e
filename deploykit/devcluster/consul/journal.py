"""Durability for the Consul stand-in: a write-ahead log, compacted into an atomic snapshot.

Every write is applied in memory, appended to `consul.wal` and fsynced *before* the HTTP
response is sent; a kill -9 can therefore lose only writes nobody was told about. Writes
that arrive while a flush is in progress are grouped into the next flush (group commit),
and the file I/O runs on one worker thread so the shared event loop never blocks on disk.

Record framing: 4-byte big-endian length, 4-byte CRC32, JSON payload `{"i": index, "c": changes}`.
A torn record at the tail (a crash mid-write: never acknowledged) is cut off at start-up.
When the log passes `compact_bytes`, the whole state is written to a temp file next to it,
fsynced, renamed over `consul.snapshot` (atomic), the directory fsynced, and the log
truncated; replay skips log records at or below the snapshot's index.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from deploykit.atomicfile import atomic_write

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")
WAL_NAME = "consul.wal"
SNAPSHOT_NAME = "consul.snapshot"


def _frame(record: dict[str, Any]) -> bytes:
    payload = json.dumps(record, separators=(",", ":")).encode()
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_state(state_dir: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The snapshot (or None) and the log records after it; cuts a torn tail off the log."""
    snap = None
    snap_path = state_dir / SNAPSHOT_NAME
    if snap_path.exists():
        snap = json.loads(snap_path.read_bytes())
    floor = snap["index"] if snap else 0
    records: list[dict[str, Any]] = []
    wal = state_dir / WAL_NAME
    if not wal.exists():
        return snap, records
    data = wal.read_bytes()
    pos = 0
    while pos + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, pos)
        start, end = pos + _HEADER.size, pos + _HEADER.size + length
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            break
        rec = json.loads(data[start:end])
        if rec["i"] > floor:
            records.append(rec)
        pos = end
    if pos != len(data):
        log.warning("consul journal: cutting %d bytes of a torn record at the end of %s", len(data) - pos, wal)
        with open(wal, "r+b") as f:
            f.truncate(pos)
            f.flush()
            os.fsync(f.fileno())
    return snap, records


class Journal:
    """Append-and-fsync with group commit; compaction into a snapshot when the log grows."""

    def __init__(self, state_dir: Path, *, compact_bytes: int = 16 * 1024 * 1024, fsync: bool = True) -> None:
        self.state_dir = state_dir
        self.compact_bytes = compact_bytes
        self.fsync = fsync
        self._pending: list[bytes] = []
        self._waiters: list[asyncio.Future] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="consul-journal")
        self._fd: int | None = None
        self._size = 0
        self._snapshot_source: Any = None  # callable returning the state to snapshot
        self._closing = False
        self.flushes = 0
        self.compactions = 0

    def open(self, snapshot_source: Any) -> None:
        """Open the log for appending (call after read_state). `snapshot_source()` gives the state to compact."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._snapshot_source = snapshot_source
        self._fd = os.open(self.state_dir / WAL_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="consul-journal")

    def append(self, index: int, changes: list[list[Any]]) -> asyncio.Future:
        """Queue a record; the future resolves once it is on disk (fsynced)."""
        fut = asyncio.get_running_loop().create_future()
        self._pending.append(_frame({"i": index, "c": changes}))
        self._waiters.append(fut)
        if self._wake is None:
            fut.set_exception(RuntimeError("consul journal is not running"))
        else:
            self._wake.set()
        return fut

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, waiters = self._pending, self._waiters
                self._pending, self._waiters = [], []
                try:
                    await loop.run_in_executor(self._pool, self._write, b"".join(batch))
                except Exception as exc:  # disk full, I/O error: tell every writer of this batch
                    log.exception("consul journal: write failed")
                    for w in waiters:
                        if not w.done():
                            w.set_exception(exc)
                    continue
                self.flushes += 1
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
                if self._size >= self.compact_bytes:
                    try:
                        await self.compact()
                    except Exception:  # the log is still complete; try again after the next flush
                        log.exception("consul journal: compaction failed")
            if self._closing:
                return

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        if self.fsync:
            os.fsync(self._fd)
        self._size += len(data)

    async def compact(self) -> None:
        """Write the current state as the new snapshot and empty the log (see module doc for why it is safe)."""
        state = self._snapshot_source()  # taken on the loop: consistent with everything applied so far
        await asyncio.get_running_loop().run_in_executor(self._pool, self._write_snapshot, state)
        self.compactions += 1

    def _write_snapshot(self, state: dict[str, Any]) -> None:
        atomic_write(self.state_dir / SNAPSHOT_NAME, json.dumps(state, separators=(",", ":")), fsync=True)
        _fsync_dir(self.state_dir)
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.fsync(self._fd)
        self._size = 0

    async def close(self) -> None:
        """Flush what is queued, stop the writer, close the file."""
        if self._task is not None and self._wake is not None:
            self._closing = True
            self._wake.set()
            await self._task
            self._task = None
        self._pool.shutdown(wait=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
