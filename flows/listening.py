"""The event path's health, as the listener reports it: when it last heard a notification,
when its connection last proved alive, and a notification when it goes down. `causa status`
shows the first two; beat's poll covers whatever the event path misses meanwhile."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from flows.runtime import Runtime

log = structlog.get_logger("causa.listener")
HEARD = "causa:listener:heard"  # the time of the last notification that announced tickets
ALIVE = "causa:listener:alive"  # the time the listener's connection last proved alive


class Health:
    """What the listener calls; a failure here (the broker down) never stops listening."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def _mark(self, key: str) -> None:
        try:
            self.rt.redis.set(key, datetime.now(UTC).isoformat())
        except Exception as exc:  # the broker is down: the status goes stale, nothing else
            log.warning("could not record the listener's health", error=type(exc).__name__)

    def heard(self, tickets: int) -> None:
        self._mark(HEARD)

    def alive(self) -> None:
        self._mark(ALIVE)

    def down(self, error: str) -> None:
        self.rt.notifier.send(
            "event path down",
            "the listener lost its database connection",
            f"{error}\n\nIt reconnects with backoff; until then beat's poll classifies new"
            " tickets every CAUSA_POLL_INTERVAL seconds. Check the database and `causa status`.",
            level="warning",
            key="listener-down",
        )


def last_seen(rt: Runtime) -> dict[str, str | None]:
    """{heard_at, alive_at}: ISO times, None when the listener never reported."""
    values = rt.redis.mget([HEARD, ALIVE])
    return {
        name: value.decode() if value else None
        for name, value in zip(("heard_at", "alive_at"), values, strict=True)
    }
