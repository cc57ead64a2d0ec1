"""PostgreSQL unreachable for 60 s while tickets stream in: the workers hold back (circuit
breaker, no crash loop), one notification says so, and after recovery the backlog drains;
every ticket is decided exactly once. Prints the figures the README quotes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.e2e.cluster import cluster, install_audit, writes_per_ticket
from tests.faults.outage import (
    between,
    db_now,
    decided_below,
    finish,
    last_decided_since,
    streaming,
)
from tests.helpers import statuses, wait_for
from tests.proxy import Proxy, through, upstream_of
from tests.redis_server import RedisServer
from tests.webhook import Receiver

OUTAGE_S = 60.0  # the figure
POLL_INTERVAL_S = 0.5  # beat sends a poll this often: 120 during the outage
PROBE_INTERVAL_S = 5.0
# A failing database call: 3 attempts, each waiting out the pool's 5 s. The time limit must
# cover it (else the soft limit, not the database error, ends the probe), and the lease must
# outlive the time limit; a lease shorter than the outage frees what the cut stranded.
OUTAGE_ENV = {
    "CAUSA_POLL_INTERVAL": str(POLL_INTERVAL_S),
    "CAUSA_BREAKER_PROBE_INTERVAL": str(PROBE_INTERVAL_S),
    "CAUSA_TASK_TIME_LIMIT": "25",
    "CAUSA_LEASE_SECONDS": "30",
    "CAUSA_RETRY_ATTEMPTS": "2",
    "CAUSA_RETRY_INITIAL": "0.05",
    "CAUSA_RETRY_MAX": "0.1",
    "CAUSA_RETRY_JITTER": "0",
}
# Celery's marks of a pool process that died or was killed, and of a worker (re)starting.
CRASH_MARKS = (b"WorkerLostError", b"exited with", b"Hard time limit", b"SoftTimeLimitExceeded")


@pytest.fixture
def proxy(database_url: str) -> Iterator[Proxy]:
    with Proxy(upstream_of(database_url)) as p:
        yield p


def test_a_minute_without_the_database_then_the_backlog_drains_exactly_once(
    conn: psycopg.Connection[Any],
    database_url: str,
    model: Path,
    broker: RedisServer,
    proxy: Proxy,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    install_audit(conn)
    env = {**OUTAGE_ENV, "DATABASE_URL": through(database_url, proxy.port)}
    env.update(REDIS_URL=broker.url, NOTIFY_URLS=receiver.url)
    with (
        cluster(tmp_path, model, "worker", "beat", "listener", **env) as procs,
        streaming(database_url) as stream,
    ):
        # given tickets streaming in (20/s, straight into the database) and being classified
        wait_for(lambda: decided_below(conn, 50) == 50, timeout=60, what="the flow to start")

        # when the database is cut off from causa for a minute
        proxy.cut()
        cut_at, cut_wall, before = time.monotonic(), time.time(), stream.inserted
        wait_for(
            lambda: receiver.titled("database unreachable"),
            timeout=OUTAGE_S - 5,
            what="the 'database unreachable' notification",
        )
        while time.monotonic() - cut_at < OUTAGE_S:  # the outage lasts what the issue says
            assert all(p.poll() is None for p in procs.values()), "a process died in the outage"
            time.sleep(1)
        proxy.restore()
        restored_wall, restored_db, backlog = time.time(), db_now(conn), stream.inserted
        during = backlog - before

        # then the breaker closes, and every ticket that arrived before the recovery is decided
        wait_for(
            lambda: receiver.titled("database recovered"),
            timeout=60,
            what="the 'database recovered' notification",
        )
        wait_for(
            lambda: decided_below(conn, backlog) == backlog,
            timeout=180,
            what=f"the backlog of {backlog} tickets to drain",
        )
        total = finish(conn, stream)
        alive = all(p.poll() is None for p in procs.values())

    drain_s = last_decided_since(conn, backlog, restored_db)
    # exactly once, none lost, none dead-lettered
    writes = writes_per_ticket(conn)
    assert len(writes) == total and set(writes.values()) == {1}, "each ticket written once"
    assert statuses(conn).get("failed", 0) == 0
    # no crash loop: every process lived through it, the worker started once, no pool process
    # was killed or lost
    assert alive, "a process died"
    worker_log = (tmp_path / "worker.log").read_bytes()
    assert worker_log.count(b" ready.") == 1
    # (up to the test's own stop: once, a pool process ended with SIGTERM during the warm
    # shutdown while the other one was still in a watch task's database retries)
    running = worker_log.partition(b"Warm shutdown")[0]
    assert not [m for m in CRASH_MARKS if m in running], "a pool process died or timed out"
    # one notification each way
    assert len(receiver.titled("database unreachable")) == 1
    assert len(receiver.titled("database recovered")) == 1
    # the breaker held back: of the polls beat sent during the cut, few reached the database
    logs = [tmp_path / "worker.log", tmp_path / "listener.log"]
    probes = sum(len(between(log, "poll failed", cut_wall, restored_wall)) for log in logs)
    polls = OUTAGE_S / POLL_INTERVAL_S
    assert 1 <= probes <= OUTAGE_S / PROBE_INTERVAL_S + 2, f"{probes} polls reached the database"
    print(
        f"\nRESULT database outage: {OUTAGE_S:.0f} s cut, {during} tickets arrived during it"
        f" ({total} in all); {probes} polls reached the database during it (beat sent"
        f" {polls:.0f}, probe interval {PROBE_INTERVAL_S:g} s); backlog of {backlog} drained"
        f" {drain_s:.1f} s after recovery; each ticket written once, none failed"
    )
