"""Who is waiting on what: blocking queries park a future here, and a write wakes only its own watchers.

Watchers are indexed by exact key and by prefix. A change to key K wakes the exact
watchers of K and the prefix watchers of every prefix of K; only prefix *lengths* that
someone is watching are tried, so a write costs O(distinct watched prefix lengths) dict
look-ups, whatever the number of waiters. An idle waiter is just a future and a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class WatchHub:
    def __init__(self) -> None:
        self._exact: dict[str, set[asyncio.Future]] = {}
        self._prefix: dict[str, set[asyncio.Future]] = {}
        self._prefix_lengths: dict[int, int] = {}  # length -> number of watched prefixes of that length
        self.wakeups = 0

    def watch(self, target: str, *, prefix: bool) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        table = self._prefix if prefix else self._exact
        waiters = table.get(target)
        if waiters is None:
            waiters = table[target] = set()
            if prefix:
                self._prefix_lengths[len(target)] = self._prefix_lengths.get(len(target), 0) + 1
        waiters.add(fut)
        return fut

    def unwatch(self, target: str, fut: asyncio.Future, *, prefix: bool) -> None:
        table = self._prefix if prefix else self._exact
        waiters = table.get(target)
        if waiters is None:
            return
        waiters.discard(fut)
        if not waiters:
            self._drop(table, target, prefix)

    def _drop(self, table: dict[str, set[asyncio.Future]], target: str, prefix: bool) -> None:
        del table[target]
        if prefix:
            n = self._prefix_lengths[len(target)] - 1
            if n:
                self._prefix_lengths[len(target)] = n
            else:
                del self._prefix_lengths[len(target)]

    def notify(self, keys: Iterable[str]) -> None:
        """Wake the watchers of these keys and of every watched prefix of them."""
        woken: set[asyncio.Future] = set()
        for key in keys:
            waiters = self._exact.pop(key, None)
            if waiters:
                woken |= waiters
            for length in list(self._prefix_lengths):
                if length > len(key):
                    continue
                p = key[:length]
                waiters = self._prefix.get(p)
                if waiters:
                    woken |= waiters
                    self._drop(self._prefix, p, True)
        for fut in woken:
            if not fut.done():
                fut.set_result(None)
        self.wakeups += len(woken)

    def wake_all(self) -> None:
        """Release every waiter (shutdown: blocking queries answer now instead of holding the server open)."""
        woken = [f for table in (self._exact, self._prefix) for waiters in table.values() for f in waiters]
        self._exact.clear()
        self._prefix.clear()
        self._prefix_lengths.clear()
        for fut in woken:
            if not fut.done():
                fut.set_result(None)

    def waiting(self) -> int:
        return sum(len(s) for s in self._exact.values()) + sum(len(s) for s in self._prefix.values())
