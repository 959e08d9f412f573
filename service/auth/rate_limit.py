"""Requests per API key: a token bucket per key, in this API process.

A key may burst up to `burst` requests, then gets `rate` per second. Past that the request
is answered 429 with `Retry-After`, before any work is done. Buckets live in memory, so the
limit holds per API process (run N processes and a key gets N times the rate).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, rate: float, burst: int, clock=time.monotonic) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def acquire(self, key_id: str) -> float:
        """Take one request for `key_id`: 0.0 when allowed, else the seconds to wait."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate


def retry_after_header(wait_seconds: float) -> str:
    # Retry-After takes whole seconds; round up so a client that obeys it is let through.
    return str(max(1, math.ceil(wait_seconds)))
