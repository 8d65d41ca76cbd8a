"""Token-bucket rate limits keyed by caller (an API key's fingerprint or a client IP)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_TRACKED_KEYS = 10_000


@dataclass
class TokenBucket:
    """``capacity`` requests at once, refilled at ``rate_per_s``."""

    capacity: float
    rate_per_s: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last call."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate_per_s)
        self.stamp = now

    def take(self, now: float) -> float:
        """Spend one token: 0.0 when allowed, else the seconds until one is available."""
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate_per_s


class RateLimiter:
    """One token bucket per key, allowing ``per_minute`` requests a minute (burst: as many)."""

    def __init__(
        self,
        per_minute: int,
        *,
        max_keys: int = MAX_TRACKED_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def retry_after(self, key: str) -> int:
        """Spend one request for ``key``: 0 when allowed, else whole seconds to wait (≥ 1)."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._prune(now)
            bucket = TokenBucket(self.per_minute, self.per_minute / 60.0, self.per_minute, now)
            self._buckets[key] = bucket
        wait = bucket.take(now)
        return 0 if wait <= 0.0 else max(1, math.ceil(wait))

    def _prune(self, now: float) -> None:
        """Forget full (idle) buckets, then the oldest, when too many keys are tracked."""
        if len(self._buckets) < self._max_keys:
            return
        for key, bucket in list(self._buckets.items()):
            bucket.refill(now)
            if bucket.tokens >= bucket.capacity:
                del self._buckets[key]
        while len(self._buckets) >= self._max_keys:
            oldest = min(self._buckets, key=lambda k: self._buckets[k].stamp)
            del self._buckets[oldest]
