"""1,000 tickets classified by real worker and beat processes that reach the database only
through the Supabase adapter (the real `supabase` client against tests/postgrest.py, the
PostgREST RPC stand-in: the hosted service cannot run here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from tests.e2e.cluster import cluster, install_audit, writes_per_ticket
from tests.helpers import demo_rows, insert, statuses, wait_for
from tests.integration.test_store_contract import SERVICE_KEY
from tests.postgrest import PostgREST


def test_a_thousand_tickets_through_the_rest_adapter(
    conn: psycopg.Connection[Any],
    database_url: str,
    model: Path,
    redis_url: str,
    tmp_path: Path,
) -> None:
    install_audit(conn)
    with (
        PostgREST(database_url, SERVICE_KEY) as server,
        cluster(
            tmp_path,
            model,
            "worker",
            "beat",
            DATABASE_URL="",
            SUPABASE_URL=server.url,
            SUPABASE_SERVICE_ROLE_KEY=SERVICE_KEY,
            CAUSA_POLL_INTERVAL="0.5",
        ),
    ):
        for i in range(10):
            insert(conn, demo_rows(100, start=i * 100))
        wait_for(
            lambda: (
                set(statuses(conn)) <= {"classified", "needs_review"}
                and sum(statuses(conn).values()) == 1000
            ),
            timeout=120,
            what="1,000 tickets classified through the REST adapter",
        )
        calls = list(server.calls)
        log = (tmp_path / "worker.log").read_text() + (tmp_path / "beat.log").read_text()
    assert set(writes_per_ticket(conn).values()) == {1}
    assert calls.count("causa_apply") <= calls.count("causa_claim")
    assert calls.count("causa_apply") < 100, "batches, not one request per ticket"
    assert SERVICE_KEY not in log
