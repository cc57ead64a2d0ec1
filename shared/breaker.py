"""A circuit breaker for the database, shared by every process through Redis.

While the database fails, new batches are not enqueued and queued ones do not claim: one
probe at a time (at most one per `breaker_probe_interval`) checks whether it is back, instead
of every task piling up its own retries. Opening and closing are each notified once.
Without Redis there is nothing to share: the breaker lets everything through.

Why not pybreaker (whose CircuitRedisStorage shares its state through Redis): its move from
open to half-open is a read-then-write in each process, and in half-open it lets every caller
through, so several processes probe a dead database at once. The tested promise here is one
probe at a time across every process, held until the probe's outcome; that takes the two
atomic Redis keys below (SET NX PX), which is all this module is.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

import redis
import structlog

from shared.notify import Notify

log = structlog.get_logger("causa.breaker")
OPEN = "causa:breaker:{name}:open"
PROBE = "causa:breaker:{name}:probe"
# The open state lasts this long without a new failure, so that a breaker whose every
# process died cannot stay open forever; a failing probe renews it.
OPEN_TTL_S = 3600


class Breaker:
    def __init__(
        self, client: Any, notifier: Notify, *, probe_interval: float, name: str = "database"
    ) -> None:
        self.redis = client
        self.notifier = notifier
        self.probe_interval = probe_interval
        self.name = name
        self._open, self._probe = OPEN.format(name=name), PROBE.format(name=name)

    def allow(self, hold: float = 0.0) -> Literal["closed", "probe"] | None:
        """ "closed" when the call may go ahead as usual, "probe" when the breaker is open and
        this caller won the right to probe (one at a time, across every process), None when
        it must wait. The right is held until the probe reports its outcome (`failure(...,
        probe=True)` or `success()`), or for `hold` seconds at most (the longest a probe can
        take: a task's time limit), so a slow probe never overlaps the next one."""
        try:
            if not self.redis.exists(self._open):
                return "closed"
            held = max(hold, self.probe_interval)
            won = self.redis.set(self._probe, "1", nx=True, px=int(held * 1000))
        except redis.RedisError:
            return "closed"
        return "probe" if won else None

    def is_open(self) -> bool:
        try:
            return bool(self.redis.exists(self._open))
        except redis.RedisError:
            return False

    def failure(self, exc: BaseException, *, probe: bool = False) -> None:
        """The database failed (after the retries of one call): open, or stay open. The next
        probe may start one probe interval from now: a failed probe hands its right on that
        way; any other failure only arms it when no probe is armed or running."""
        error = f"{type(exc).__name__}: {exc}"[:300]
        state = json.dumps({"since": time.time(), "error": error})
        try:
            opened = self.redis.set(self._open, state, nx=True, ex=OPEN_TTL_S)
            if not opened:
                self.redis.expire(self._open, OPEN_TTL_S)
            self.redis.set(self._probe, "1", nx=not probe, px=int(self.probe_interval * 1000))
        except redis.RedisError:
            return
        if opened:
            log.error("circuit open: the database is unreachable", breaker=self.name, error=error)
            self.notifier.send(
                f"{self.name} unreachable",
                error,
                f"{error}\nNew batches are held back; one probe every"
                f" {self.probe_interval:g} s checks whether it is back.",
                level="failure",
            )

    def success(self) -> None:
        """The database answered: close (the one process that closes it notifies)."""
        try:
            state = self.redis.getdel(self._open)
            if state is not None:  # closed already: one round trip per batch, no more
                self.redis.delete(self._probe)
        except redis.RedisError:
            return
        if state is not None:
            since = json.loads(state)["since"]
            log.info("circuit closed: the database answers again", breaker=self.name)
            self.notifier.send(
                f"{self.name} recovered",
                f"after {time.time() - since:.0f} s",
                f"unreachable for {time.time() - since:.0f} s; the backlog drains now.",
                level="success",
            )
