"""History is not classified by surprise: a first migration queues only tickets created after
it, and `causa backfill` queues older ones on purpose, after saying how many."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from shared import schema
from shared.settings import Settings
from tests.helpers import TABLE_DDL, demo_rows, insert
from worker.cli import app


def now(c: psycopg.Connection[Any]) -> datetime:
    row = c.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    when: datetime = row[0]
    return when


def pending_count(c: psycopg.Connection[Any]) -> dict[str, int]:
    row = c.execute("SELECT causa_pending_count()").fetchone()
    assert row is not None
    return dict(row[0])


def claimed(c: psycopg.Connection[Any], since: datetime | None = None) -> list[str]:
    """The numbers one claim takes, as a worker without CAUSA_CLASSIFY_SINCE (or with it)."""
    row = c.execute("SELECT causa_claim('test', 100, 60, 3, NULL, %s)", [since]).fetchone()
    assert row is not None
    return sorted(r["number"] for r in row[0])


def first_migration(c: psycopg.Connection[Any], settings: Settings) -> tuple[datetime, datetime]:
    """A ticket table with 5 tickets without a cause (H000000-H000004) and 1 labelled (L1)
    from before causa, then causa's first migration in this database; when it ran."""
    c.execute(TABLE_DDL)
    schema.migrate(c, settings, uninstall=True)  # what earlier tests installed
    insert(c, demo_rows(5, prefix="H"))
    c.execute("INSERT INTO tickets (number, short_description, causa) VALUES ('L1', 'x', 'Red')")
    before = now(c)
    schema.migrate(c, settings)
    return before, now(c)


@pytest.fixture
def history(database_url: str, settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as c:
        first_migration(c, settings)
        yield c


def test_history_from_before_the_first_migration_is_not_work(
    database_url: str, settings: Settings
) -> None:
    with psycopg.connect(database_url, autocommit=True) as c:
        # given a table with history; when causa is migrated for the first time
        before, after = first_migration(c, settings)
        # then the history is neither pending nor claimed
        assert pending_count(c) == {"pending": 0, "retry": 0, "claimed": 0, "estimated": False}
        assert claimed(c) == []
        # and the cut-off is the time of that migration, recorded in the database
        cutoff = c.execute("SELECT classify_since FROM causa.meta").fetchone()
        assert cutoff is not None and before <= cutoff[0] <= after
        # a ticket inserted afterwards is work
        insert(c, demo_rows(1, prefix="NEW"))
        assert pending_count(c)["pending"] == 1
        assert claimed(c) == ["NEW000000"]
        # and a person setting a historical cause back to NULL still asks for a classification
        c.execute("UPDATE tickets SET causa = NULL WHERE number = 'L1'")
        assert claimed(c) == ["L1"]


def test_running_migrate_again_does_not_move_the_cutoff(
    history: psycopg.Connection[Any], settings: Settings
) -> None:
    c = history
    first = c.execute("SELECT classify_since FROM causa.meta").fetchone()
    schema.migrate(c, settings)
    schema.migrate(c, settings)
    assert c.execute("SELECT classify_since FROM causa.meta").fetchone() == first
    assert claimed(c) == [], "the history is still not work"


def test_backfill_says_how_many_then_queues_the_history(
    history: psycopg.Connection[Any],
) -> None:
    c = history
    insert(c, demo_rows(2, prefix="NEW"))  # after the migration: work already, not history
    # when an operator backfills, non-interactively
    result = CliRunner().invoke(app, ["backfill", "--yes"])
    # then it says how many first, then that it marked them and enqueued nothing
    assert result.exit_code == 0, result.output
    said, done = result.output.find("5 ticket(s)"), result.output.find("marked 5 ticket(s)")
    assert 0 <= said < done, result.output
    assert "enqueues nothing" in result.output
    # and the history is claimable, with a received time the stall alarm sees
    assert c.execute(
        "SELECT count(*) FROM causa.work WHERE number LIKE 'H%%' AND received_at IS NOT NULL"
    ).fetchone() == (5,)
    assert pending_count(c)["pending"] == 7
    assert claimed(c) == [f"H00000{i}" for i in range(5)] + ["NEW000000", "NEW000001"]
    # and a second backfill finds nothing left
    again = CliRunner().invoke(app, ["backfill", "--yes"])
    assert again.exit_code == 0 and "0 ticket(s)" in again.output, again.output


def test_backfill_limit_and_since_bound_it(
    history: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    c = history
    # given tickets received after the first migration (E), then CAUSA_CLASSIFY_SINCE moved
    # the cut-off past them, and a ticket received after that (N)
    start = now(c)
    insert(c, demo_rows(4, prefix="E"))
    cutoff = now(c)
    monkeypatch.setenv("CAUSA_CLASSIFY_SINCE", cutoff.isoformat())
    insert(c, demo_rows(1, prefix="N"))
    runner = CliRunner()
    # when a backfill is bounded by --since (the H rows have no received time) and --limit
    bounded = runner.invoke(
        app, ["backfill", "--since", start.isoformat(), "--limit", "3", "--yes"]
    )
    # then it takes the 3 newest E tickets, nothing from before causa
    assert bounded.exit_code == 0, bounded.output
    assert "3 ticket(s)" in bounded.output and "marked 3 ticket(s)" in bounded.output
    assert claimed(c, since=cutoff) == ["E000001", "E000002", "E000003", "N000000"]
    # when a backfill is bounded by --limit alone
    limited = runner.invoke(app, ["backfill", "--limit", "2", "--yes"])
    # then it takes 2: the E ticket left (it has a received time), then the newest number
    assert limited.exit_code == 0, limited.output
    assert "marked 2 ticket(s)" in limited.output
    assert claimed(c, since=cutoff) == ["E000000", "H000004"]
    assert claimed(c, since=cutoff) == []


def test_backfill_without_yes_and_without_a_terminal_refuses(
    history: psycopg.Connection[Any],
) -> None:
    result = CliRunner().invoke(app, ["backfill"])
    assert result.exit_code != 0
    assert "5 ticket(s)" in result.output and "pass --yes" in result.output, result.output
    assert claimed(history) == [], "nothing was queued"
