"""The watch on real PostgreSQL and Redis, notifications to a local JSON webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from flows.watch import DEAD_LETTER_MARK, watch
from tests.helpers import dead_letter, demo_rows, insert
from tests.webhook import Receiver


@pytest.fixture
def receiver(monkeypatch: Any) -> Iterator[Receiver]:
    """Must come before `rt` in a test's arguments: the runtime reads NOTIFY_URLS once."""
    with Receiver() as r:
        monkeypatch.setenv("NOTIFY_URLS", r.url)
        yield r


def test_a_stalled_backlog_raises_the_alarm_once_per_period(
    receiver: Receiver, rt: Any, conn: psycopg.Connection[Any]
) -> None:
    # given 3 tickets queued two hours ago, and a stall alarm after one hour
    insert(conn, demo_rows(3))
    conn.execute("UPDATE causa.work SET received_at = now() - interval '2 hours'")
    settings = rt.settings.model_copy(update={"stall_after": 3600})

    # when the watch runs twice
    first = watch(rt.store, rt.notifier, rt.redis, settings)
    watch(rt.store, rt.notifier, rt.redis, settings)

    # then the backlog is stalled and the alarm goes out once
    assert first["stalled"] and first["oldest_pending_s"] > 7000
    [alarm] = receiver.titled("backlog stalled")
    assert "120 min" in alarm["title"]


def test_no_alarm_while_the_backlog_is_fresh(
    receiver: Receiver, rt: Any, conn: psycopg.Connection[Any]
) -> None:
    # given 3 tickets queued just now
    insert(conn, demo_rows(3))
    # when the watch runs, then it raises no alarm
    assert not watch(rt.store, rt.notifier, rt.redis, rt.settings)["stalled"]
    assert receiver.bodies == []


def test_dead_letters_arrive_as_one_digest_per_period(
    receiver: Receiver, rt: Any, conn: psycopg.Connection[Any]
) -> None:
    # given a watch that last reported an hour ago, and 30 tickets dead-lettered since
    insert(conn, demo_rows(30))
    dead_letter(conn, [n for n, _, _ in demo_rows(30)], error="prediction failed: boom")
    start = datetime.now(UTC)
    rt.redis.set(DEAD_LETTER_MARK, (start - timedelta(hours=1)).isoformat())
    settings = rt.settings.model_copy(update={"notify_every": 600})

    # when the watch runs, then again a minute later with 5 more failures
    first = watch(rt.store, rt.notifier, rt.redis, settings, now=start)
    insert(conn, demo_rows(5, prefix="N"))
    dead_letter(conn, [n for n, _, _ in demo_rows(5, prefix="N")])
    second = watch(rt.store, rt.notifier, rt.redis, settings, now=start + timedelta(minutes=1))
    # and once the period is over
    third = watch(rt.store, rt.notifier, rt.redis, settings, now=start + timedelta(minutes=11))

    # then one message for the 30, none a minute later, one for the 5 after the period
    assert (first["dead_lettered"], second["dead_lettered"], third["dead_lettered"]) == (30, 0, 5)
    digests = receiver.titled("tickets dead-lettered")
    assert [d["title"].split("] ")[1].split(" ")[0] for d in digests] == ["30", "5"]
    assert "prediction failed: boom" in digests[0]["message"]
    assert "causa admin requeue-failed" in digests[0]["message"]


def test_a_notification_never_carries_a_secret(settings: Any) -> None:
    from pydantic import SecretStr

    from shared.notify import Notifier

    with Receiver() as r:
        s = settings.model_copy(
            update={"notify_urls": r.url, "supabase_key": SecretStr("hunter2-very-secret")}
        )
        Notifier(s).send(
            "worker error",
            "tasks.x failed",
            "OperationalError: login to postgresql://u:pw-in-url@db/x with hunter2-very-secret",
        )
    [body] = r.bodies
    assert "hunter2-very-secret" not in body["message"] and "pw-in-url" not in body["message"]
    assert "OperationalError" in body["message"]
