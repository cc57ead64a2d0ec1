"""The listener on real PostgreSQL and the poller on real Redis."""

from __future__ import annotations

import re
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


def test_the_listener_proves_its_connection_alive_and_says_when_the_path_is_down(
    conn: psycopg.Connection[Any],
    settings: Settings,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.proxy import Proxy, through, upstream_of

    class Recorder:
        """The listener's reports, as they come."""

        def __init__(self) -> None:
            self.heard: list[int] = []
            self.alive = 0
            self.down: list[str] = []

    seen = Recorder()

    class Health:
        def heard(self, tickets: int) -> None:
            seen.heard.append(tickets)

        def alive(self) -> None:
            seen.alive += 1

        def down(self, error: str) -> None:
            seen.down.append(error)

    health = Health()
    monkeypatch.setattr(listener, "HEARTBEAT_S", 0.2)
    monkeypatch.setattr(listener, "HEARTBEAT_TIMEOUT_S", 1.0)
    stop = threading.Event()
    with Proxy(upstream_of(database_url)) as proxy:
        url = SecretStr(through(database_url, proxy.port))
        proxied = settings.model_copy(update={"database_url": url})
        thread = threading.Thread(
            target=listener.run, args=(proxied, lambda n: 0, stop, health), daemon=True
        )
        thread.start()
        try:
            # given a listening listener: it reports its connection alive, again and again
            wait_for(lambda: seen.alive >= 3, what="heartbeats")
            # when tickets arrive; then it reports them heard
            insert(conn, demo_rows(3))
            wait_for(lambda: seen.heard == [3], what="3 tickets heard")
            # when the database goes away; then it says the event path is down
            proxy.cut()
            wait_for(lambda: seen.down, what="the event path reported down")
            # and when the database is back, it listens and reports alive again
            alive = seen.alive
            proxy.restore()
            wait_for(lambda: seen.alive > alive, timeout=30, what="alive after reconnecting")
            # when the connection goes half-open (nothing arrives, nothing is refused, TCP
            # looks fine); then the unanswered heartbeat ends it, and it is reported down
            down = len(seen.down)
            proxy.freeze()
            wait_for(lambda: len(seen.down) > down, timeout=15, what="half-open noticed")
            assert "closed" in seen.down[down] or "lost" in seen.down[down], seen.down[down]
            # and once the network heals, it listens again and tickets are heard
            alive = seen.alive
            proxy.restore()
            wait_for(lambda: seen.alive > alive, timeout=30, what="alive after the freeze")
            insert(conn, demo_rows(2, prefix="F"))
            wait_for(lambda: seen.heard[-1:] == [2], what="tickets heard after the freeze")
        finally:
            stop.set()
            thread.join(10)
    assert not thread.is_alive()


def test_causa_status_shows_when_the_listener_last_heard_and_was_alive(rt: Any) -> None:
    from flows.listening import Health
    from flows.status import gather
    from worker.cli.render import listener_row

    # given a listener that never reported
    rt.redis.delete("causa:listener:heard", "causa:listener:alive")
    assert "never reported" in listener_row(gather(rt)["listener"])
    # when it reports its connection alive, then tickets heard
    health = Health(rt)
    health.alive()
    assert listener_row(gather(rt)["listener"]).startswith("no event yet, alive")
    health.heard(5)
    # then the status says both
    row = listener_row(gather(rt)["listener"])
    assert re.fullmatch(r"last event \d+ s ago, alive \d+ s ago", row), row
