"""The listener on real PostgreSQL and the poller on real Redis."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import redis
from pydantic import SecretStr

from shared.settings import ConfigError, Settings
from tasks import classify
from tests.helpers import demo_rows, insert, wait_for
from worker import listener


def test_the_listener_announces_inserts_in_one_gathered_call(
    conn: psycopg.Connection[Any], settings: Settings
) -> None:
    announced: list[int] = []

    def announce(n: int) -> int:
        announced.append(n)
        return 0

    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(settings, announce, stop))
    thread.start()
    try:
        wait_for(lambda: announced == [0], what="the catch-up call on connect")
        insert(conn, demo_rows(30))
        insert(conn, demo_rows(12, prefix="U"))
        wait_for(lambda: sum(announced) == 42, what="42 tickets announced")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_the_listener_refuses_the_transaction_pooler(settings: Settings) -> None:
    pooled = settings.model_copy(
        update={"database_url": SecretStr("postgresql://u:p@host:6543/postgres")}
    )
    with pytest.raises(ConfigError, match="direct or session-mode URL") as refused:
        listener.run(pooled, lambda n: 0)
    assert "u:p@" not in str(refused.value)


def test_poll_enqueues_one_task_per_batch_less_those_queued(
    conn: psycopg.Connection[Any],
    redis_url: str,
    settings: Settings,
    runtime_for: Callable[..., Any],
) -> None:
    # given 250 queued tickets and batches of 100
    runtime_for(settings, batch_size=100)
    insert(conn, demo_rows(250))
    # when beat polls twice
    first = classify.poll_pending()
    second = classify.poll_pending()
    # then the first poll sends three tasks (exact counts, far below the estimate's cap)
    # and the second none
    assert first == {"pending": 250, "retry": 0, "claimed": 0, "estimated": False, "enqueued": 3}
    assert second["enqueued"] == 0, "three tasks already wait for the same tickets"
    assert redis.Redis.from_url(redis_url).llen("causa") == 3
