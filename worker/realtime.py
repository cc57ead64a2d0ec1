"""The event path without a database connection: Supabase Realtime (`postgres_changes`,
INSERT on the ticket table) announces new tickets; they are gathered for a few milliseconds
and classification is enqueued, as the LISTEN path does. Events are hints: when the
subscription cannot be established the listener says so, retries with backoff, and beat's
poll keeps finding new tickets meanwhile."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import structlog

from shared.settings import Settings
from worker.listener import (
    HEARTBEAT_S,
    RECONNECT_FIRST_S,
    RECONNECT_MAX_S,
    Health,
    Silent,
    _enqueue,
)

log = structlog.get_logger("causa.realtime")
SUBSCRIBE_TIMEOUT_S = 10.0  # longer than this without SUBSCRIBED counts as a failure


class Announcer:
    """Counts announced pending tickets between flushes; callbacks run on the event loop."""

    def __init__(self, cause_column: str) -> None:
        self.cause_column = cause_column
        self.count = 0
        self.subscribed = asyncio.Event()
        self.failed: asyncio.Future[str] | None = None

    def on_insert(self, payload: Any) -> None:
        record = (payload.get("data") or {}).get("record") or {}
        # a ticket inserted with a cause is a human label, not work
        if record.get(self.cause_column) is None:
            self.count += 1

    def on_state(self, state: Any, error: Exception | None) -> None:
        name = getattr(state, "value", str(state))
        if name == "SUBSCRIBED":
            self.subscribed.set()
        elif self.failed is not None and not self.failed.done():
            self.failed.set_result(f"{name}: {error}" if error else name)

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


async def _session(
    settings: Settings, enqueue: Callable[[int], int], stop: threading.Event, health: Health
) -> None:
    # lazy: the Realtime client loads only in a listener without DATABASE_URL
    from realtime.types import RealtimePostgresChangesListenEvent

    from supabase import acreate_client

    url, key = settings.require_supabase()
    schema, _, table = settings.table.rpartition(".")
    announcer = Announcer(settings.cause_column)
    announcer.failed = asyncio.get_running_loop().create_future()
    client = await acreate_client(url, key)
    channel = client.channel("causa-pending")
    channel.on_postgres_changes(
        RealtimePostgresChangesListenEvent.Insert,
        announcer.on_insert,
        table=table,
        schema=schema or "public",
    )
    try:

        async def subscribed() -> None:
            await channel.subscribe(announcer.on_state)
            await announcer.subscribed.wait()

        await asyncio.wait_for(subscribed(), SUBSCRIBE_TIMEOUT_S)
        log.info("listening", via="supabase realtime", table=settings.table)
        health.alive()
        _enqueue(enqueue, 0)  # catch up on what arrived while we were away
        window = settings.listen_window_ms / 1000
        # realtime-py's own heartbeat ends a dead socket (the channel fails); while the
        # channel stands, it is reported alive this often
        beat = asyncio.get_running_loop().time() + HEARTBEAT_S
        while not stop.is_set() and not announcer.failed.done():
            await asyncio.sleep(max(window, 0.005))
            if announced := announcer.take():
                health.heard(announced)
                _enqueue(enqueue, announced)
            if asyncio.get_running_loop().time() >= beat:
                health.alive()
                beat += HEARTBEAT_S
        if announcer.failed.done():
            raise ConnectionError(f"realtime channel {announcer.failed.result()}")
    finally:
        await client.remove_channel(channel)


def run(
    settings: Settings,
    enqueue: Callable[[int], int],
    stop: threading.Event | None = None,
    health: Health | None = None,
) -> None:
    """Subscribe until `stop` is set; on any failure say so (to `health` too) and retry
    with backoff."""
    stop = stop or threading.Event()
    health = health or Silent()
    delay = RECONNECT_FIRST_S
    while not stop.is_set():
        try:
            asyncio.run(_session(settings, enqueue, stop, health))
            delay = RECONNECT_FIRST_S
        except Exception as exc:
            log.warning(
                "realtime subscription not established or lost; beat's poll still finds new"
                " tickets",
                error=f"{type(exc).__name__}: {exc}"[:300],
                retry_in_s=delay,
                poll_interval_s=settings.poll_interval,
            )
            health.down(f"{type(exc).__name__}: {exc}"[:300])
            stop.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
