"""The circuit breaker with real Redis and the real poll task: while the database is cut off,
concurrent polls send one probe at a time to it and skip at once; when it is back, the next
probe closes the breaker and enqueues. Each change is notified once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from shared.settings import Settings
from tasks.classify import poll_pending
from tests.helpers import demo_rows, insert, wait_for
from tests.proxy import Proxy, through, upstream_of
from tests.redis_server import RedisServer
from tests.webhook import Receiver

PROBE_INTERVAL_S = 1.0
POLLERS = 4  # threads polling at once, as beat and the listener of several machines would
POLL_EVERY_S = 0.1
SKIP_FAST_S = 0.5  # a poll held back by the breaker returns at once, it never waits


@pytest.fixture
def proxy(database_url: str) -> Iterator[Proxy]:
    with Proxy(upstream_of(database_url)) as p:
        yield p


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def breaker_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own for the breaker: no other test run can flush its state."""
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def rt(
    conn: psycopg.Connection[Any],
    database_url: str,
    settings: Settings,
    proxy: Proxy,
    receiver: Receiver,
    breaker_redis: RedisServer,
    runtime_for: Callable[..., Any],
) -> Any:
    """A runtime reaching the database through the proxy, with its breaker in a private Redis
    (tasks still go to the suite's broker). One attempt per call (no retries), so a probe of
    a dead database ends after the pool's wait."""
    return runtime_for(
        settings,
        database_url=SecretStr(through(database_url, proxy.port)),
        redis_url=SecretStr(breaker_redis.url),
        breaker_probe_interval=PROBE_INTERVAL_S,
        retry_attempts=0,
        notify_urls=receiver.url,
    )


class Probes:
    """Wraps the store's pending_count: how many calls reached the database, and the most
    that were in flight at once."""

    def __init__(self, store: Any) -> None:
        self.real = store.pending_count
        self.calls = 0
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, int]:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            result: dict[str, int] = self.real()
            return result
        finally:
            with self._lock:
                self.running -= 1


def test_while_the_database_is_down_one_probe_at_a_time_then_it_closes_and_enqueues(
    conn: psycopg.Connection[Any],
    proxy: Proxy,
    receiver: Receiver,
    rt: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    insert(conn, demo_rows(30))  # directly, not through the proxy
    probes = Probes(rt.store)
    monkeypatch.setattr(rt.store, "pending_count", probes)
    assert rt.store.pending_count()["pending"] == 30, "the database answers through the proxy"

    # given the database cut off (its host does not answer: each probe waits out its
    # timeout, longer than the probe interval), and the failure that opens the breaker
    proxy.cut(blackhole=True)
    assert poll_pending()["skipped"] == "the database is unreachable"
    assert rt.breaker.is_open()
    wait_for(lambda: receiver.titled("database unreachable"), what="the outage notification")

    # when several pollers keep polling while it stays down
    results: list[tuple[dict[str, Any], float]] = []
    stop = threading.Event()
    probes.calls = 0

    def poller() -> None:
        while not stop.is_set():
            began = time.monotonic()
            results.append((poll_pending(), time.monotonic() - began))
            stop.wait(POLL_EVERY_S)

    threads = [threading.Thread(target=poller) for _ in range(POLLERS)]
    down_began = time.monotonic()
    for t in threads:
        t.start()
    # (the first probes may fail fast on pooled connections the cut broke; later ones wait)
    wait_for(lambda: probes.calls >= 4, timeout=60, what="four probes")
    # then exactly one probe at a time reaches the database; the others skip at once
    assert probes.most == 1, "two probes overlapped"
    skipped = [took for r, took in results if r.get("skipped", "").endswith("another poll probes")]
    assert len(skipped) > 10 * probes.calls
    assert max(skipped) < SKIP_FAST_S
    down_s = time.monotonic() - down_began
    assert probes.calls <= down_s / PROBE_INTERVAL_S + 1

    # when the database is back, the next probe closes the breaker and enqueues
    calls_down = probes.calls
    proxy.restore()
    wait_for(lambda: not rt.breaker.is_open(), timeout=30, what="the breaker to close")
    stop.set()
    for t in threads:
        t.join(30)
    recovered = [r for r, _ in results if "pending" in r]
    assert recovered and (recovered[0]["pending"], recovered[0]["enqueued"]) == (30, 1)
    wait_for(lambda: receiver.titled("database recovered"), what="the recovery notification")
    assert len(receiver.titled("database unreachable")) == 1
    assert len(receiver.titled("database recovered")) == 1
    print(
        f"\nbreaker: {len(results)} polls while down ({down_s:.1f} s, {POLLERS} pollers),"
        f" {calls_down} reached the database, one at a time"
    )
