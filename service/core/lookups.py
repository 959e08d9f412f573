"""Recent answers of database lookups on the predict path (which key, which model), so a
predict request needs no database round trip.

An answer is trusted for `ttl` seconds. A change made through this process (a key revoked,
an alias moved) clears the answers at once, after its commit; a change made through another
API process reaches this one within `ttl`. `ttl` = 0 turns the cache off.

A lookup that started before a clear may finish after it with what it read before the change;
`put` takes the generation seen before the lookup and drops a stale answer, so a clear is never
undone. Concurrent requests that miss on one key share a single lookup (`remembered`): when an
answer expires under load, one query goes to the database, not one per waiting request.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class RecentLookups(Generic[K, V]):
    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.generation = 0
        self._answers: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()
        # Lookups in flight, by (generation, key): after a clear, a new request starts its own
        # lookup rather than join one that may have read the database before the change.
        self._pending: dict[tuple[int, K], asyncio.Future[V]] = {}

    async def remembered(self, key: K, look_up: Callable[[], Awaitable[V]]) -> V:
        """The remembered answer, else `look_up()`'s, shared with every concurrent caller
        (its exception too: a missing key is missing for all of them)."""
        if self.ttl <= 0:
            # Off: every request reads the database itself, after whatever came before it.
            return await look_up()
        value = self.get(key)
        if value is not None:
            return value
        flight = (self.generation, key)
        pending = self._pending.get(flight)
        if pending is None:
            pending = asyncio.ensure_future(self._look_up(key, look_up, flight[0]))
            self._pending[flight] = pending
            pending.add_done_callback(lambda done: self._landed(flight, done))
        # Shielded: a caller that goes away does not cancel the others' lookup.
        return await asyncio.shield(pending)

    async def _look_up(self, key: K, look_up: Callable[[], Awaitable[V]], generation: int) -> V:
        value = await look_up()
        self.put(key, value, generation)
        return value

    def _landed(self, flight: tuple[int, K], done: asyncio.Future[V]) -> None:
        self._pending.pop(flight, None)
        if not done.cancelled():
            done.exception()  # read, so one whose callers all left is not logged as lost

    def get(self, key: K) -> V | None:
        found = self._answers.get(key)
        if found is None or found[0] < monotonic():
            return None
        return found[1]

    def put(self, key: K, value: V, generation: int) -> None:
        """Remember `value`, unless a clear came since `generation` was read."""
        if self.ttl <= 0:
            return
        with self._lock:
            if generation != self.generation:
                return
            if len(self._answers) >= self.max_entries:
                # The oldest answer leaves first (dicts keep insertion order).
                self._answers.pop(next(iter(self._answers)))
            self._answers[key] = (monotonic() + self.ttl, value)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._answers.clear()
