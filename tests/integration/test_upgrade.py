"""Upgrading a database migrated by the previous release (causa 0.x kept its queue in 12
columns of the ticket table): its state moves into causa's schema and nothing is lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
from typer.testing import CliRunner

from shared import schema
from shared.settings import Settings
from tests.helpers import TABLE_DDL, demo_rows, insert, statuses
from worker.cli import app

OLD_RELEASE = Path(__file__).resolve().parents[1] / "fixtures" / "causa_0x_migration.sql"
LEGACY = ["attempts", "claim_token", "claimed_by", "claimed_until", "last_error", "received_at"]


def columns(c: psycopg.Connection[Any]) -> set[str]:
    rows = c.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'tickets'::regclass"
        " AND attnum > 0 AND NOT attisdropped"
    ).fetchall()
    return {r[0] for r in rows}


def old_call(c: psycopg.Connection[Any], sql: str, *args: Any) -> Any:
    row = c.execute(sql, [json.dumps(a) if isinstance(a, list) else a for a in args]).fetchone()
    assert row is not None
    return row[0]


def old_decide(c: psycopg.Connection[Any], number: str, status: str) -> None:
    """One ticket decided the way causa 0.x decided it: claimed, then applied or failed."""
    [claimed] = old_call(c, "SELECT causa_claim('old', 1, 600, 3, %s)", [number])
    if status == "failed":
        failure = {"number": number, "claim_token": claimed["claim_token"], "error": "boom"}
        old_call(c, "SELECT causa_fail(%s, 1)", [failure])
        return
    result = {
        "number": number,
        "claim_token": claimed["claim_token"],
        "status": status,
        "predicted": "Red",
        "confidence": 0.9,
        "model_version": "v0",
    }
    old_call(c, "SELECT causa_apply(%s)", [result])


def old_release_with_every_status(c: psycopg.Connection[Any], settings: Settings) -> None:
    """A ticket table migrated by causa 0.x, with tickets in every status it knew: history
    from before it (H), pending (P), claimed (C), classified (K), needs_review (R), failed
    (F), labelled (L), and an event."""
    c.execute(TABLE_DDL)
    schema.migrate(c, settings, uninstall=True)  # what this release installed before
    insert(c, demo_rows(1, prefix="H"))
    c.execute(OLD_RELEASE.read_text())
    insert(c, demo_rows(2, prefix="P") + demo_rows(1, prefix="C") + demo_rows(1, prefix="K"))
    insert(c, demo_rows(1, prefix="R") + demo_rows(1, prefix="F"))
    c.execute("INSERT INTO tickets (number, short_description, causa) VALUES ('L1', 'x', 'Red')")
    old_decide(c, "K000000", "classified")
    old_decide(c, "R000000", "needs_review")
    old_decide(c, "F000000", "failed")
    old_call(c, "SELECT causa_claim('old', 1, 600, 3, %s)", ["C000000"])
    old_call(c, "SELECT causa_record_event('training', '{\"decision\": \"promoted\"}')")


def test_upgrade_moves_every_status_into_causas_tables_and_loses_none(
    database_url: str, settings: Settings
) -> None:
    with psycopg.connect(database_url, autocommit=True) as c:
        # given a database migrated by the previous release, with tickets in every status
        old_release_with_every_status(c, settings)
        cutoff = old_call(c, "SELECT classify_since FROM causa_meta")
        # when this release migrates it
        assert schema.migrate(c, settings) == [1, 2, 3, 4]
        # then every ticket is where it was: queued ones are work (the claim let go, its
        # attempt kept), decided ones keep their decision, history stays history
        assert statuses(c) == {
            "pending": 3,
            "classified": 1,
            "needs_review": 1,
            "failed": 1,
            "labelled": 1,
            None: 1,
        }
        assert c.execute("SELECT number, attempts FROM causa.work ORDER BY 1").fetchall() == [
            ("C000000", 1),
            ("P000000", 0),
            ("P000001", 0),
        ]
        # and the renamed result columns hold what the old ones held; queued rows say NULL
        rows = c.execute(
            "SELECT number, causa, causa_status, causa_model_version, causa_decided_at IS NOT NULL"
            " FROM tickets WHERE number IN ('K000000', 'R000000', 'P000000') ORDER BY 1"
        ).fetchall()
        assert rows == [
            ("K000000", "Red", "classified", "v0", True),
            ("P000000", None, None, None, False),
            ("R000000", None, "needs_review", "v0", True),
        ]
        # and the cut-off, the events and the dead letter's reason came along
        assert old_call(c, "SELECT classify_since FROM causa.meta") == cutoff
        assert old_call(c, "SELECT causa_latest_events()")["training"]["payload"] == {
            "decision": "promoted"
        }
        dead = c.execute("SELECT error FROM causa.outcomes WHERE number = 'F000000'").fetchone()
        assert dead == ("boom",)
        # and the old tables, functions and indexes are gone; its other columns stay for now
        assert c.execute("SELECT to_regclass('public.causa_meta')").fetchone() == (None,)
        assert c.execute(
            "SELECT count(*) FROM pg_proc WHERE proname = 'causa_claim'"
        ).fetchone() == (1,)
        assert set(LEGACY) <= columns(c)
        # and the queue works: the model's guess K is no label, L is; H can be backfilled
        labelled = old_call(c, "SELECT causa_labelled()")
        assert [r["number"] for r in labelled] == ["L1"]
        assert old_call(c, "SELECT causa_backfill()")["tickets"] == 1


def test_drop_legacy_removes_only_the_old_queue_columns(
    database_url: str, settings: Settings
) -> None:
    with psycopg.connect(database_url, autocommit=True) as c:
        # given a database upgraded from the previous release
        old_release_with_every_status(c, settings)
        schema.migrate(c, settings)
        # when the operator drops the legacy columns, through the command
        result = CliRunner().invoke(app, ["migrate", "--drop-legacy"])
        assert result.exit_code == 0, result.output
        assert "dropped the queue columns" in result.output
        # then those six are gone, the result columns and the user's stay, nothing is lost
        assert not set(LEGACY) & columns(c)
        assert {"number", "short_description", "description", "causa", "causa_status"} <= (
            columns(c)
        )
        assert sum(statuses(c).values()) == 8
        # and an uninstall then removes causa's result columns, which it recorded as its own
        schema.migrate(c, settings, uninstall=True)
        assert columns(c) == {"number", "short_description", "description", "causa"}
        assert c.execute("SELECT count(*) FROM tickets").fetchone() == (8,)
