"""`causa status` on real PostgreSQL and Redis."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from typer.testing import CliRunner

from flows.classify import classify_batch
from tests.helpers import dead_letter, demo_rows, insert


def test_status_reports_the_queue_the_model_the_decisions_and_the_workers(
    conn: psycopg.Connection[Any], rt: Any, model: Any
) -> None:
    from worker.cli import app

    # given 50 tickets decided just now, 7 waiting for an hour, one dead-lettered
    insert(conn, demo_rows(50))
    classify_batch(rt.store, rt.models, rt.settings, worker="t", limit=1000)
    insert(conn, demo_rows(7, prefix="W"))
    conn.execute(
        "UPDATE causa.work SET received_at = now() - interval '1 hour' WHERE number LIKE 'W%'"
    )
    # causa was migrated before they came: they are work, not history
    conn.execute("UPDATE causa.meta SET classify_since = now() - interval '1 day'")
    dead_letter(conn, ["W000000"])
    rt.store.record_event("training", {"decision": "keep", "reason": "not better by 0.01"})
    rt.store.record_event("drift", {"verdict": "ok", "psi": 0.05})

    # when causa status runs
    result = CliRunner().invoke(app, ["status", "--json"])

    # then it reports each of them
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["backlog"] == 6 and report["failed"] == 1
    assert 3500 < report["oldest_pending_s"] < 3700
    assert report["classified_last_5_min"] == 50
    assert report["model"]["version"] and report["model"]["macro_f1"] > 0.5
    assert report["last_training"]["decision"] == "keep"
    assert report["drift"] == {"at": report["drift"]["at"], "verdict": "ok", "psi": 0.05}
    assert isinstance(report["workers"], list)

    table = CliRunner().invoke(app, ["status"])
    assert table.exit_code == 0 and "oldest pending ticket" in table.stdout
