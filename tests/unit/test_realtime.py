"""Supabase Realtime, tested where it can be here: the callbacks (with payloads in the shape
realtime-py delivers), and the real client against a port where nothing listens. A hosted
Realtime server cannot run on this machine; the README says how to check against a project."""

from __future__ import annotations

import threading

import structlog
from pydantic import SecretStr

from shared.settings import Settings
from tests.helpers import wait_for
from worker import realtime
from worker.listener import RECONNECT_FIRST_S, Silent


def insert_payload(record: dict[str, object]) -> dict[str, object]:
    return {
        "data": {
            "schema": "public",
            "table": "tickets",
            "type": "INSERT",
            "commit_timestamp": "2026-11-26T10:00:00Z",
            "errors": None,
            "columns": [],
            "record": record,
        },
        "ids": [1],
    }


def test_inserts_are_counted_and_labels_are_not() -> None:
    a = realtime.Announcer("causa")
    a.on_insert(insert_payload({"number": "1", "causa": None}))
    a.on_insert(insert_payload({"number": "2"}))
    a.on_insert(insert_payload({"number": "3", "causa": "Red"}))  # a person's label
    assert a.take() == 2 and a.take() == 0


def test_a_failed_channel_is_reported() -> None:
    import asyncio

    async def scenario() -> str:
        a = realtime.Announcer("causa")
        a.failed = asyncio.get_running_loop().create_future()
        a.on_state(type("S", (), {"value": "SUBSCRIBED"})(), None)
        assert a.subscribed.is_set()
        a.on_state(type("S", (), {"value": "CHANNEL_ERROR"})(), RuntimeError("gone"))
        return await a.failed

    assert asyncio.run(scenario()) == "CHANNEL_ERROR: gone"


def test_an_unreachable_realtime_server_is_said_clearly_and_retried() -> None:
    # the real supabase client, pointed at a port where nothing listens
    from worker.services import free_port

    s = Settings(
        database_url=None,
        supabase_url=f"http://127.0.0.1:{free_port()}",
        supabase_key=SecretStr("x.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.y"),
    )
    stop = threading.Event()
    down: list[str] = []
    health = type("Health", (Silent,), {"down": lambda self, error: down.append(error)})()
    with structlog.testing.capture_logs() as logs:
        thread = threading.Thread(target=realtime.run, args=(s, lambda n: 0, stop, health))
        thread.start()
        try:
            wait_for(
                lambda: sum(e["event"].startswith("realtime subscription") for e in logs) >= 2,
                timeout=60,
                what="two reported, retried attempts",
            )
        finally:
            stop.set()
            thread.join(30)
    assert not thread.is_alive()
    warning = next(e for e in logs if e["event"].startswith("realtime subscription"))
    assert "beat's poll still finds new tickets" in warning["event"]
    assert warning["retry_in_s"] == RECONNECT_FIRST_S
    assert down and "Error" in down[0], "the event path is reported down (and notified)"
