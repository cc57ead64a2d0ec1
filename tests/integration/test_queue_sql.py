"""The queue functions on real PostgreSQL: claim, lease, apply, fail, human labels."""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg
import pytest

from shared import schema
from shared.settings import ConfigError
from tests.helpers import TABLE_DDL, demo_rows, insert, state, statuses


def claim(
    conn: psycopg.Connection[Any],
    batch: int = 10,
    lease: int = 60,
    max_attempts: int = 3,
    numbers: list[str] | None = None,
    since: Any = None,
) -> list[dict[str, Any]]:
    row = conn.execute(
        "SELECT causa_claim('test', %s, %s, %s, %s, %s)",
        [batch, lease, max_attempts, json.dumps(numbers) if numbers else None, since],
    ).fetchone()
    assert row is not None
    return list(row[0])


def apply(
    conn: psycopg.Connection[Any],
    rows: list[dict[str, Any]],
    status: str = "classified",
    predicted: str = "Red",
    mode: str = "apply",
) -> dict[str, int]:
    results = [
        {
            "number": r["number"],
            "claim_token": r["claim_token"],
            "status": status,
            "predicted": predicted,
            "confidence": 0.9,
            "model_version": "v1",
        }
        for r in rows
    ]
    row = conn.execute("SELECT causa_apply(%s::jsonb, %s)", [json.dumps(results), mode]).fetchone()
    assert row is not None
    return dict(row[0])


def fail(
    conn: psycopg.Connection[Any], rows: list[dict[str, Any]], max_attempts: int = 3
) -> dict[str, int]:
    failures = [
        {"number": r["number"], "claim_token": r["claim_token"], "error": "boom"} for r in rows
    ]
    row = conn.execute(
        "SELECT causa_fail(%s::jsonb, %s)", [json.dumps(failures), max_attempts]
    ).fetchone()
    assert row is not None
    return dict(row[0])


def test_concurrent_claimers_never_share_a_ticket(conn: Any, database_url: str) -> None:
    # given 3,000 pending tickets and 6 claimers on their own connections
    insert(conn, demo_rows(3000))
    claimed: list[list[str]] = [[] for _ in range(6)]

    def claimer(i: int) -> None:
        with psycopg.connect(database_url, autocommit=True) as own:
            while rows := claim(own, batch=50):
                claimed[i].extend(r["number"] for r in rows)

    # when they all claim until nothing is left
    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # then every ticket was claimed exactly once
    every = [n for part in claimed for n in part]
    assert len(every) == 3000
    assert len(set(every)) == 3000
    assert sum(1 for part in claimed if part) > 1  # the work really was shared
    assert statuses(conn) == {"claimed": 3000}


def test_an_expired_lease_is_reclaimed_alone_with_a_new_token(conn: Any) -> None:
    insert(conn, demo_rows(5))
    first = claim(conn, batch=5, lease=0)  # lease over at once
    assert len(first) == 5
    again = claim(conn, batch=5, lease=60)
    assert len(again) == 1, "a reclaimed ticket goes alone"
    assert again[0]["attempts"] == 2
    assert again[0]["claim_token"] not in {r["claim_token"] for r in first}


def test_a_running_lease_is_not_reclaimed(conn: Any) -> None:
    insert(conn, demo_rows(5))
    assert len(claim(conn, batch=5, lease=60)) == 5
    assert claim(conn, batch=5) == []


def test_apply_is_idempotent_and_writes_the_cause(conn: Any) -> None:
    insert(conn, demo_rows(3))
    rows = claim(conn)
    assert apply(conn, rows) == {"applied": 3, "stale": 0}
    assert apply(conn, rows) == {"applied": 0, "stale": 3}
    got = conn.execute(
        "SELECT causa, causa_source, causa_predicted, causa_status,"
        " causa_decided_at IS NOT NULL, causa_model_version FROM tickets"
    ).fetchall()
    assert got == [("Red", "model", "Red", "classified", True, "v1")] * 3
    # and the decision is logged once per ticket, the queue is empty
    assert conn.execute(
        "SELECT count(*), count(DISTINCT number) FROM causa.decisions"
    ).fetchone() == (3, 3)
    assert conn.execute("SELECT count(*) FROM causa.work").fetchone() == (0,)


def test_needs_review_keeps_the_prediction_but_not_the_cause(conn: Any) -> None:
    insert(conn, demo_rows(1))
    apply(conn, claim(conn), status="needs_review", predicted="Hardware")
    assert conn.execute("SELECT causa, causa_predicted, causa_status FROM tickets").fetchone() == (
        None,
        "Hardware",
        "needs_review",
    )


def test_suggest_mode_never_writes_the_cause(conn: Any) -> None:
    insert(conn, demo_rows(1))
    apply(conn, claim(conn), mode="suggest")
    assert conn.execute(
        "SELECT causa, causa_source, causa_predicted, causa_status FROM tickets"
    ).fetchone() == (None, None, "Red", "classified")


def test_a_late_write_after_the_lease_expired_changes_nothing(conn: Any) -> None:
    # given a worker whose lease expired and another that reclaimed and classified the ticket
    insert(conn, demo_rows(1))
    late = claim(conn, lease=0)
    fresh = claim(conn)
    assert apply(conn, fresh, predicted="Software")["applied"] == 1
    # when the first worker finally writes
    outcome = apply(conn, late, predicted="Red")
    # then nothing changes
    assert outcome == {"applied": 0, "stale": 1}
    assert conn.execute("SELECT causa FROM tickets").fetchone() == ("Software",)


def test_a_human_label_while_claimed_wins(conn: Any) -> None:
    insert(conn, demo_rows(2))
    rows = claim(conn)
    conn.execute("UPDATE tickets SET causa = 'Accesos' WHERE number = %s", [rows[0]["number"]])
    assert apply(conn, rows, predicted="Red") == {"applied": 1, "stale": 1}
    labelled = conn.execute(
        "SELECT causa, causa_source, causa_status FROM tickets WHERE number = %s",
        [rows[0]["number"]],
    ).fetchone()
    assert labelled == ("Accesos", "human", "labelled")
    assert state(conn, rows[0]["number"]) == "labelled"


def test_a_person_correcting_a_model_cause_makes_a_training_label(conn: Any) -> None:
    insert(conn, demo_rows(1))
    apply(conn, claim(conn), predicted="Red")
    conn.execute("UPDATE tickets SET causa = 'Software'")
    assert conn.execute("SELECT causa_source, causa_status FROM tickets").fetchone() == (
        "human",
        "labelled",
    )
    labelled = conn.execute("SELECT causa_labelled()").fetchone()
    assert labelled is not None and [r["cause"] for r in labelled[0]] == ["Software"]


def test_model_guesses_are_never_training_data(conn: Any) -> None:
    insert(conn, demo_rows(2))
    apply(conn, claim(conn))
    assert conn.execute("SELECT causa_labelled()").fetchone() == ([],)


def test_failures_retry_then_go_to_the_dead_letter(conn: Any) -> None:
    insert(conn, demo_rows(1))
    for attempt in (1, 2):
        rows = claim(conn)
        assert rows[0]["attempts"] == attempt
        assert fail(conn, rows) == {"retrying": 1, "failed": 0, "stale": 0}
    assert fail(conn, claim(conn)) == {"retrying": 0, "failed": 1, "stale": 0}
    assert conn.execute("SELECT causa_status FROM tickets").fetchone() == ("failed",)
    assert conn.execute("SELECT status, error FROM causa.outcomes").fetchone() == ("failed", "boom")
    assert claim(conn) == []


def test_expired_leases_that_used_every_attempt_become_failed(conn: Any) -> None:
    insert(conn, demo_rows(1))
    for _ in range(3):
        assert len(claim(conn, lease=0)) == 1
    assert claim(conn) == []
    status, error = conn.execute("SELECT status, error FROM causa.outcomes").fetchone()
    assert status == "failed" and state(conn, "T000000") == "failed"
    assert "lease expired 3 times" in error


def test_claim_only_among_given_numbers(conn: Any) -> None:
    insert(conn, demo_rows(5))
    rows = claim(conn, numbers=["T000001", "T000003"])
    assert sorted(r["number"] for r in rows) == ["T000001", "T000003"]


def test_classify_since_leaves_older_tickets_alone(conn: Any) -> None:
    insert(conn, demo_rows(2))
    cutoff = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    insert(conn, demo_rows(1, prefix="NEW"))
    assert [r["number"] for r in claim(conn, since=cutoff)] == ["NEW000000"]
    counts = conn.execute("SELECT causa_pending_count(%s)", [cutoff]).fetchone()[0]
    assert counts == {"pending": 0, "retry": 0, "claimed": 1, "estimated": False}


def test_pending_count_separates_fresh_retry_and_claimed(conn: Any) -> None:
    insert(conn, demo_rows(6))
    claim(conn, batch=2, lease=60)
    claim(conn, batch=1, lease=0)
    assert conn.execute("SELECT causa_pending_count()").fetchone()[0] == {
        "pending": 3,
        "retry": 1,
        "claimed": 2,
        "estimated": False,
    }


def test_a_ticket_deleted_while_claimed_is_a_stale_write(conn: Any) -> None:
    insert(conn, demo_rows(2))
    rows = claim(conn)
    conn.execute("DELETE FROM tickets WHERE number = %s", [rows[0]["number"]])
    assert apply(conn, rows) == {"applied": 1, "stale": 1}


def test_insert_with_a_cause_is_a_label_and_insert_notifies_once_with_the_count(
    conn: Any, database_url: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {schema.CHANNEL}")
        insert(conn, demo_rows(250))
        conn.execute(
            "INSERT INTO tickets (number, short_description, causa) VALUES ('L1', 'x', 'Red')"
        )
        notes = list(listener.notifies(timeout=2, stop_after=2))
    assert [n.payload for n in notes] == ["250"], "one note for the bulk insert, none for a label"
    assert conn.execute(
        "SELECT causa_status, causa_source FROM tickets WHERE number = 'L1'"
    ).fetchone() == ("labelled", "human")
    assert statuses(conn) == {"pending": 250, "labelled": 1}


def test_migration_twice_is_harmless_and_writes_no_existing_row(
    database_url: str, settings: Any
) -> None:
    with psycopg.connect(database_url, autocommit=True) as c:
        # given a table with a labelled ticket and one without a cause
        c.execute(TABLE_DDL)
        c.execute("INSERT INTO tickets VALUES ('A', 'a', NULL, 'Red'), ('B', 'b', NULL, NULL)")
        xmins = c.execute("SELECT number, xmin::text FROM tickets ORDER BY 1").fetchall()
        # when causa is migrated twice
        assert schema.migrate(c, settings) == [1, 2, 3, 4]
        assert schema.migrate(c, settings) == []
        # then no row was written (same row versions), nothing is queued, and A is a label
        assert c.execute("SELECT number, xmin::text FROM tickets ORDER BY 1").fetchall() == xmins
        assert c.execute("SELECT count(*) FROM causa.work").fetchone() == (0,)
        labelled = c.execute("SELECT causa_labelled()").fetchone()
        assert labelled is not None and [r["number"] for r in labelled[0]] == ["A"]
        # and each versioned step is recorded once
        assert c.execute("SELECT version FROM causa.migrations ORDER BY 1").fetchall() == [
            (1,),
            (2,),
            (3,),
            (4,),
        ]


def test_migration_names_what_is_missing(database_url: str, settings: Any) -> None:
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS tickets CASCADE")
        with pytest.raises(ConfigError, match="table 'tickets' not found"):
            schema.migrate(c, settings)
        c.execute("CREATE TABLE tickets (number text, title text, causa text)")
        with pytest.raises(ConfigError, match=r"short_description.*set CAUSA_TEXT_COLUMNS"):
            schema.migrate(c, settings)


def test_configured_names_work_end_to_end(database_url: str, settings: Any) -> None:
    # given the table of the project causa grew from, by settings alone
    custom = settings.model_copy(
        update={"table": "tickets_fiducia", "text_columns": "short_description,close_notes"}
    )
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS tickets_fiducia CASCADE")
        c.execute("DROP SCHEMA IF EXISTS causa CASCADE")  # one table per database: not `tickets`
        c.execute(
            "CREATE TABLE tickets_fiducia (number integer PRIMARY KEY,"
            " short_description text, close_notes text, causa text, updated_at timestamptz)"
        )
        schema.migrate(c, custom)
        c.execute(
            "INSERT INTO tickets_fiducia (number, short_description, close_notes)"
            " VALUES (7, 'VPN caída', NULL)"
        )
        rows = claim(c)
        assert rows[0]["number"] == "7" and rows[0]["text"] == "VPN caída"
        assert apply(c, rows) == {"applied": 1, "stale": 0}
        c.execute("DROP TABLE tickets_fiducia CASCADE")


def test_uninstall_removes_what_causa_added_and_nothing_else(
    database_url: str, settings: Any
) -> None:
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(TABLE_DDL)
        c.execute("CREATE INDEX mine_idx ON tickets (causa)")
        c.execute("INSERT INTO tickets VALUES ('A', 'a', NULL, 'Red'), ('B', 'b', NULL, NULL)")

        def shape() -> tuple[Any, ...]:
            columns = c.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'tickets'::regclass"
                " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ).fetchall()
            indexes = c.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'tickets' ORDER BY 1"
            ).fetchall()
            triggers = c.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'tickets'::regclass"
                " AND NOT tgisinternal"
            ).fetchall()
            functions = c.execute(
                "SELECT proname FROM pg_proc WHERE proname LIKE 'causa%'"
            ).fetchall()
            return columns, indexes, triggers, functions

        schema.migrate(c, settings, uninstall=True)  # functions other tests left in the database
        before = shape()
        schema.migrate(c, settings)
        assert shape() != before
        schema.migrate(c, settings, uninstall=True)
        schema.migrate(c, settings, uninstall=True)  # twice: harmless
        assert shape() == before
        assert c.execute("SELECT * FROM tickets ORDER BY 1").fetchall() == [
            ("A", "a", None, "Red"),
            ("B", "b", None, None),
        ]


def test_a_second_table_is_refused_and_the_first_keeps_working(
    conn: psycopg.Connection[Any], settings: Any
) -> None:
    # given causa installed for `tickets`, and a second ticket table in the same database
    conn.execute("DROP TABLE IF EXISTS other_tickets")
    conn.execute(
        "CREATE TABLE other_tickets (number text PRIMARY KEY, short_description text,"
        " description text, causa text)"
    )
    other = settings.model_copy(update={"table": "other_tickets"})
    # when someone migrates the second table
    with pytest.raises(ConfigError, match=r"installed for table tickets.*not other_tickets"):
        schema.migrate(conn, other)
    # then the second table is untouched and the first still queues and classifies
    assert conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'other_tickets'::regclass"
    ).fetchone() == (0,)
    insert(conn, demo_rows(2))
    assert apply(conn, claim(conn)) == {"applied": 2, "stale": 0}
    conn.execute("DROP TABLE other_tickets")


def test_a_number_column_that_is_not_unique_is_refused(database_url: str, settings: Any) -> None:
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS tickets CASCADE; DROP SCHEMA IF EXISTS causa CASCADE")
        c.execute(
            "CREATE TABLE tickets (number text, short_description text,"
            " description text, causa text)"
        )
        with pytest.raises(ConfigError, match="column number of table tickets is not unique"):
            schema.migrate(c, settings)
        assert c.execute("SELECT to_regnamespace('causa')").fetchone() == (None,)


def test_counts_above_the_cap_are_the_planners_estimates_and_say_so(conn: Any) -> None:
    # given more pending tickets than the cap of a count
    insert(conn, demo_rows(50))
    conn.execute("ANALYZE causa.work")
    # when they are counted with a cap of 10; then the count is an estimate, marked as such
    pending = conn.execute("SELECT causa_pending_count(NULL, 10)").fetchone()[0]
    assert pending["estimated"] is True and pending["pending"] >= 10
    counts = conn.execute("SELECT causa_status_counts(10)").fetchone()[0]
    assert counts["estimated"] == ["pending"] and counts["pending"] >= 10
    # and below the cap the counts are exact
    assert conn.execute("SELECT causa_pending_count(NULL, 100)").fetchone()[0] == {
        "pending": 50,
        "retry": 0,
        "claimed": 0,
        "estimated": False,
    }
