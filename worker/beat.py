"""Exactly one beat: a scheduler that schedules only while it holds a lock in Redis.

A second beat started by mistake (or a standby on purpose) waits, scheduling nothing, and
takes over within `beat_lock_ttl` seconds after the first one stops or dies. The lock is
renewed on every tick; a beat that cannot renew it (Redis down, or it was too slow) stops
scheduling until it holds the lock again. The beat also says when the broker is unreachable
and when it is back.
"""

from __future__ import annotations

import contextlib
from typing import Any

import redis
import structlog
from celery.beat import PersistentScheduler
from redis.exceptions import LockError

from worker.bootstrap import worker_id

log = structlog.get_logger("causa.beat")
LOCK_KEY = "causa:lock:beat"


class LockedScheduler(PersistentScheduler):  # type: ignore[misc]
    def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
        rt = app.runtime  # worker.app.CausaCelery's, built for this beat process
        self.ttl: float = rt.settings.beat_lock_ttl
        self.notifier = rt.notifier
        self.lock = rt.redis.lock(LOCK_KEY, timeout=self.ttl, blocking=False, thread_local=False)
        self.holding: bool | None = None  # None: not tried yet
        self.broker_down = False
        self.me = worker_id()
        super().__init__(app, *args, **kwargs)

    def _hold(self) -> bool:
        """Acquire or renew the lock; False when another beat holds it or Redis is down."""
        try:
            held = self.lock.reacquire() if self.holding else self.lock.acquire()
        except LockError:  # it expired and another beat may have it now
            held = False
        except redis.RedisError as exc:
            self._broker(down=True, error=exc)
            held = False
        else:
            self._broker(down=False)
        if bool(held) is not self.holding:
            if held:
                log.info("beat lock acquired: this beat schedules", beat=self.me)
            else:
                log.warning(
                    "beat lock held elsewhere or lost: standing by, scheduling nothing",
                    beat=self.me,
                )
        self.holding = bool(held)
        return self.holding

    def _broker(self, *, down: bool, error: BaseException | None = None) -> None:
        if down == self.broker_down:
            return
        self.broker_down = down
        if down:
            log.error("broker unreachable", error=f"{type(error).__name__}: {error}")
            self.notifier.send(
                "broker unreachable",
                f"{type(error).__name__}",
                f"{type(error).__name__}: {error}\nNothing is scheduled until it is back;"
                " beat's polling then recovers whatever the broker lost.",
                level="failure",
            )
        else:
            log.info("broker reachable again")
            self.notifier.send("broker recovered", "Redis answers again", "", level="success")

    def tick(self, *args: Any, **kwargs: Any) -> float:
        # Renew well before the lock expires: three chances per lock period.
        renew_every = self.ttl / 3
        if not self._hold():
            return renew_every
        return float(min(super().tick(*args, **kwargs), renew_every))

    def close(self) -> None:
        if self.holding:
            with contextlib.suppress(LockError, redis.RedisError):  # it expires by itself
                self.lock.release()
            self.holding = False
        super().close()
