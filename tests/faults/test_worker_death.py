"""Workers killed mid-batch: leases expire, tickets are reclaimed, nothing is written twice,
and a ticket that kills its worker every time ends in the dead letter."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path
from typing import Any

import psycopg

from tests.e2e.cluster import (
    FAST_RECOVERY,
    attempts_per_ticket,
    cluster,
    install_audit,
    writes_per_ticket,
)
from tests.helpers import demo_rows, insert, queue, statuses, wait_for
from worker import processes

# The test holds this advisory lock; a trigger makes chosen result writes (of the ticket row)
# wait for it, so a worker can be caught in the middle of a batch: claimed, predicted, writing.
HOLD = 4242
BLOCK_WRITES = """
CREATE OR REPLACE FUNCTION causa_test_block() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.number LIKE %(pattern)s THEN
        PERFORM pg_advisory_xact_lock(%(key)s);
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER causa_test_block BEFORE UPDATE ON tickets FOR EACH ROW
    WHEN (NEW.causa_status IN ('classified', 'needs_review'))
    EXECUTE FUNCTION causa_test_block();
"""


def blocked_writers(conn: psycopg.Connection[Any]) -> list[int]:
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND wait_event = 'advisory' AND query LIKE '%%causa_apply%%'"
    ).fetchall()
    return [r[0] for r in rows]


def claimed_pids(conn: psycopg.Connection[Any], pattern: str) -> set[int]:
    rows = conn.execute(
        "SELECT DISTINCT claimed_by FROM causa.work WHERE number LIKE %s"
        " AND claim_token IS NOT NULL",
        [pattern],
    ).fetchall()
    return {int(r[0].rsplit(":", 1)[1]) for r in rows if r[0]}


def kill_writers(conn: psycopg.Connection[Any], pattern: str) -> int:
    """SIGKILL the worker processes stuck writing, and end their database sessions, as a
    dead machine's would end."""
    backends = blocked_writers(conn)
    if not backends:
        return 0
    for pid in claimed_pids(conn, pattern):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for backend in backends:
        conn.execute("SELECT pg_terminate_backend(%s)", [backend])
    return len(backends)


def test_sigkill_mid_batch_then_every_ticket_is_classified_exactly_once(
    conn: psycopg.Connection[Any], database_url: str, model: Path, redis_url: str, tmp_path: Path
) -> None:
    install_audit(conn)
    conn.execute(BLOCK_WRITES % {"pattern": "'%'", "key": HOLD})
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [HOLD])
        with cluster(tmp_path, model, "worker", "beat", **FAST_RECOVERY) as procs:
            # given a worker in the middle of a batch: claimed, predicted, writing
            insert(conn, demo_rows(300))
            wait_for(lambda: blocked_writers(conn), what="a worker blocked in its write")
            stuck = statuses(conn).get("claimed", 0)
            assert stuck > 0
            # when the whole worker (main process and pool) is killed with SIGKILL
            processes.kill(procs.pop("worker"))
            for backend in blocked_writers(conn):
                conn.execute("SELECT pg_terminate_backend(%s)", [backend])
            holder.execute("SELECT pg_advisory_unlock(%s)", [HOLD])
            # then a new worker reclaims the tickets once their lease expires
            with cluster(tmp_path / "second", model, "worker", **FAST_RECOVERY):
                wait_for(
                    lambda: set(statuses(conn)) <= {"classified", "needs_review"},
                    timeout=180,
                    what="every ticket final after the crash",
                )
    writes = writes_per_ticket(conn)
    assert len(writes) == 300 and set(writes.values()) == {1}, "no ticket written twice"
    retried = [n for n, attempts in attempts_per_ticket(conn).items() if attempts == 2]
    assert len(retried) >= 1, "the killed batch was reclaimed"


def test_a_ticket_that_kills_its_worker_every_time_ends_failed_and_the_rest_flow(
    conn: psycopg.Connection[Any], database_url: str, model: Path, redis_url: str, tmp_path: Path
) -> None:
    install_audit(conn)
    conn.execute(BLOCK_WRITES % {"pattern": "'POISON'", "key": HOLD})
    stop = threading.Event()
    kills = []

    def assassin() -> None:
        with psycopg.connect(database_url, autocommit=True) as watcher:
            while not stop.is_set():
                kills.append(kill_writers(watcher, "POISON"))
                stop.wait(0.1)

    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [HOLD])
        killer = threading.Thread(target=assassin)
        killer.start()
        try:
            with cluster(tmp_path, model, "worker", "beat", **FAST_RECOVERY):
                insert(conn, [("POISON", "la impresora", "no imprime"), *demo_rows(200)])
                wait_for(
                    lambda: set(statuses(conn)) <= {"classified", "needs_review", "failed"},
                    timeout=180,
                    what="every ticket final, the poison one failed",
                    describe=lambda: (statuses(conn), sum(kills), queue(conn)),
                )
                # more tickets keep flowing after the poison is dead-lettered
                insert(conn, demo_rows(50, prefix="AFTER"))
                wait_for(
                    lambda: set(statuses(conn)) <= {"classified", "needs_review", "failed"},
                    timeout=60,
                    what="later tickets classified",
                )
        finally:
            stop.set()
            killer.join(10)
    # the poison ticket: claimed three times, then dead-lettered once its last lease expired
    poison = conn.execute(
        "SELECT status, error FROM causa.outcomes WHERE number = 'POISON'"
    ).fetchone()
    assert poison is not None
    assert poison[0] == "failed" and attempts_per_ticket(conn)["POISON"] == 3
    assert "lease expired 3 times" in poison[1]
    logged = conn.execute(
        "SELECT status, error FROM causa.decisions WHERE number = 'POISON'"
    ).fetchall()
    assert [d[0] for d in logged] == ["failed"] and "lease expired 3 times" in logged[0][1]
    # killed by the test, or by the task's hard time limit first on a slow machine
    assert sum(kills) >= 1
    others = statuses(conn)
    assert others.get("failed") == 1 and sum(others.values()) == 251
    assert set(writes_per_ticket(conn).values()) == {1}
