"""A thread-safe requests-per-second ceiling shared by the worker threads of one vendor."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Spaces calls at least ``1 / rate`` seconds apart (``rate`` ≤ 0 means no ceiling)."""

    def __init__(self, rate_per_s: float):
        self.interval = 1.0 / rate_per_s if rate_per_s and rate_per_s > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)
