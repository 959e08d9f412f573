"""Recent answers of database lookups on the predict path (which key, which model), so a
predict request needs no database round trip.

An answer is trusted for `ttl` seconds. A change made through this process (a key revoked,
an alias moved) clears the answers at once, after its commit; a change made through another
API process reaches this one within `ttl`. `ttl` = 0 turns the cache off.

A lookup that started before a clear may finish after it with what it read before the change;
`put` takes the generation seen before the lookup and drops a stale answer, so a clear is never
undone.
"""

from __future__ import annotations

import threading
import time
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

    def get(self, key: K) -> V | None:
        found = self._answers.get(key)
        if found is None or found[0] < time.monotonic():
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
            self._answers[key] = (time.monotonic() + self.ttl, value)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._answers.clear()
