"""The same notification at most once per period: Redis SET NX EX across processes, this
process's memory when there is no Redis or it fails."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import structlog

log = structlog.get_logger("causa.notify")

THROTTLE_PREFIX = "causa:notify:"


class Throttle:
    """Remembers which keys went out in their period; one per Notifier."""

    def __init__(self, redis: Any = None) -> None:
        self.redis = redis
        self._local: dict[str, float] = {}  # throttle key -> monotonic time it expires
        self._lock = threading.Lock()

    def first_in_period(self, key: str, period: float) -> bool:
        """True for the first send of `key` in the period: Redis SET NX EX across processes,
        this process's memory when there is no Redis or it fails."""
        if period <= 0:
            return True
        if self.redis is not None:
            try:
                return bool(
                    self.redis.set(THROTTLE_PREFIX + key, 1, nx=True, ex=max(1, math.ceil(period)))
                )
            except Exception as exc:  # Redis down must not silence "Redis is down"
                log.warning("notify.throttle_fallback", key=key, error=type(exc).__name__)
        now = time.monotonic()
        with self._lock:
            if self._local.get(key, 0.0) > now:
                return False
            self._local[key] = now + period
            return True
