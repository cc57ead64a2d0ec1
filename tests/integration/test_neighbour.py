"""causa is a quiet neighbour on the user's table: one write per decision, none of the user's
columns adopted or dropped, a lost reply or a huge text never jams the queue, old records
retired in small batches."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from flows.classify import classify_batch
from flows.retention import retain
from shared import schema
from shared.contract import Status
from shared.settings import ConfigError, Settings
from shared.store import PostgresStore, Result
from tests.helpers import caller, demo_rows, insert, statuses
from tests.integration.test_store_contract import FAST
from tests.proxy import Proxy, through, upstream_of

# The user's own table: an updated_at trigger (as Supabase's moddatetime), an audit trigger,
# and columns named like causa 0.x's queue columns, which are theirs (no 0.x was installed:
# its classification_status is not taken for 0.x's).
USER_TABLE = """
DROP TABLE IF EXISTS tickets, audit CASCADE;
DROP SCHEMA IF EXISTS causa CASCADE;
CREATE TABLE tickets (
    number text PRIMARY KEY,
    short_description text,
    description text,
    causa text,
    attempts integer DEFAULT 7,
    received_at timestamptz,
    last_error text,
    model_version text,
    classification_status text DEFAULT 'theirs',
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE audit (number text, op text, at timestamptz DEFAULT clock_timestamp());
CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$;
CREATE TRIGGER touch BEFORE UPDATE ON tickets FOR EACH ROW EXECUTE FUNCTION touch();
CREATE OR REPLACE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit (number, op) VALUES (NEW.number, TG_OP); RETURN NULL; END $$;
CREATE TRIGGER audit AFTER INSERT OR UPDATE ON tickets FOR EACH ROW EXECUTE FUNCTION audit();
"""


def classify_all(rt: Any) -> None:
    while classify_batch(rt.store, rt.models, rt.settings, worker="t", limit=1000)["claimed"]:
        pass


def test_each_decided_ticket_is_written_once_and_the_users_columns_are_untouched(
    conn: psycopg.Connection[Any], rt: Any, model: Any, settings: Settings
) -> None:
    # given the user's table with its own triggers and columns, causa migrated onto it
    conn.execute(USER_TABLE)
    schema.migrate(conn, settings)
    # when 1,000 tickets arrive and are classified
    insert(conn, demo_rows(1000))
    inserted = dict(conn.execute("SELECT number, updated_at FROM tickets").fetchall())
    classify_all(rt)
    # then each was decided, with exactly one UPDATE of its row (the audit saw it)
    final = statuses(conn)
    assert set(final) <= {"classified", "needs_review"} and sum(final.values()) == 1000
    updates = conn.execute(
        "SELECT count(*), count(DISTINCT number) FROM audit WHERE op = 'UPDATE'"
    ).fetchone()
    assert updates == (1000, 1000)
    # and updated_at moved once, and the user's own columns kept their values
    after = dict(conn.execute("SELECT number, updated_at FROM tickets").fetchall())
    assert all(after[n] > inserted[n] for n in inserted)
    assert conn.execute(
        "SELECT DISTINCT attempts, received_at, last_error, model_version FROM tickets"
    ).fetchall() == [(7, None, None, None)]


def test_without_result_columns_only_the_cause_is_ever_written(
    conn: psycopg.Connection[Any], runtime_for: Any, model: Any, settings: Settings
) -> None:
    # given result columns switched off
    quiet = settings.model_copy(update={"result_columns": False})
    conn.execute(USER_TABLE)
    schema.migrate(conn, quiet)
    rt = runtime_for(quiet)
    # when tickets are classified
    insert(conn, demo_rows(300))
    classify_all(rt)
    # then the table got no causa_ column, only classified tickets were written (once), and
    # the view in causa's schema shows every decision
    assert conn.execute(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'tickets'::regclass"
        " AND attname LIKE 'causa\\_%%'"
    ).fetchone() == (0,)
    view = dict(conn.execute("SELECT status, count(*) FROM causa.tickets GROUP BY 1").fetchall())
    assert sum(view.values()) == 300 and set(view) <= {Status.CLASSIFIED, Status.NEEDS_REVIEW}
    updates = conn.execute("SELECT count(*) FROM audit WHERE op = 'UPDATE'").fetchone()
    assert updates == (view.get(Status.CLASSIFIED, 0),)


def test_the_users_columns_survive_migrate_and_uninstall(
    database_url: str, settings: Settings
) -> None:
    with psycopg.connect(database_url, autocommit=True) as c:
        # given the user's table with data in columns named like causa 0.x's
        c.execute(USER_TABLE)
        c.execute(
            "INSERT INTO tickets (number, short_description, causa, attempts, received_at,"
            " last_error, model_version) VALUES ('A', 'x', 'Red', 5, '2020-01-02', 'mine',"
            " 'theirs')"
        )
        mine = (
            "SELECT attempts, received_at::date::text, last_error, model_version,"
            " classification_status FROM tickets"
        )
        before = c.execute(mine).fetchall()
        # when causa is installed, a ticket arrives, and causa is removed again
        schema.migrate(c, settings)
        c.execute("INSERT INTO tickets (number, short_description) VALUES ('B', 'y')")
        assert c.execute(
            "SELECT received_at, attempts FROM tickets WHERE number = 'B'"
        ).fetchone() == (None, 7), "no default of causa's on the user's columns"
        schema.migrate(c, settings, uninstall=True)
        # then the user's columns and their data are all still there
        assert c.execute(mine + " WHERE number = 'A'").fetchall() == before
        assert c.execute(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'tickets'::regclass"
            " AND attname LIKE 'causa\\_%%' AND NOT attisdropped"
        ).fetchone() == (0,)


def test_a_causa_column_causa_did_not_create_is_refused_by_name(
    database_url: str, settings: Settings
) -> None:
    with psycopg.connect(database_url, autocommit=True) as c:
        # given the user's table with a column of their own named causa_status
        c.execute(USER_TABLE)
        c.execute("ALTER TABLE tickets ADD COLUMN causa_status text DEFAULT 'theirs'")
        # when causa is migrated; then it refuses, naming the column, and installs nothing
        with pytest.raises(ConfigError, match=r"column tickets\.causa_status exists"):
            schema.migrate(c, settings)
        assert c.execute("SELECT to_regnamespace('causa')").fetchone() == (None,)
        # and with result columns off it installs without touching that column
        schema.migrate(c, settings.model_copy(update={"result_columns": False}))
        schema.migrate(c, settings.model_copy(update={"result_columns": False}), uninstall=True)
        assert "causa_status" in {
            r[0]
            for r in c.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'tickets'::regclass"
                " AND NOT attisdropped"
            )
        }


def test_a_lost_reply_strands_nothing_and_burns_no_attempt(
    conn: psycopg.Connection[Any], settings: Settings, database_url: str
) -> None:
    insert(conn, demo_rows(5))
    with Proxy(upstream_of(database_url)) as proxy:
        url = SecretStr(through(database_url, proxy.port))
        store = PostgresStore(settings.model_copy(update={"database_url": url, **FAST}))
        store.pool.wait()
        who = caller("w")
        # given a claim whose reply is lost after the server claimed (the connection drops)
        proxy.drop_next_reply()
        claimed = store.claim(who, 3)
        # then the retry got the very tickets the server claimed, on their first attempt
        assert proxy.dropped == 1
        held = conn.execute(
            "SELECT number, attempts FROM causa.work WHERE claim_token IS NOT NULL ORDER BY 1"
        ).fetchall()
        assert sorted((c.number, c.attempts) for c in claimed) == held
        assert [n for n, _ in held] == ["T000000", "T000001", "T000002"]
        # when the reply of the apply is lost too
        results = [
            Result(c.number, c.claim_token, Status.CLASSIFIED, "Red", 0.9, "v1") for c in claimed
        ]
        proxy.drop_next_reply()
        # then the retry answers what the first call did, not "stale"
        assert store.apply(who, results) == {"applied": 3, "stale": 0}
        assert proxy.dropped == 2
        store.close()
    assert statuses(conn) == {"classified": 3, "pending": 2}


def test_a_thousand_tickets_of_a_megabyte_flow_through(
    conn: psycopg.Connection[Any], rt: Any, model: Any
) -> None:
    # given 1,001 tickets whose descriptions are about 1 MB each
    conn.execute(
        "INSERT INTO tickets (number, short_description, description)"
        " SELECT 'B' || lpad(g::text, 4, '0'), 'la impresora no imprime',"
        " repeat('la impresora de la planta dos no imprime nada ', 22000)"
        " FROM generate_series(0, 1000) AS g"
    )
    # when one is claimed; then its text is cut where the claim builds it
    [one] = rt.store.claim(caller(), 1)
    assert len(one.text) == rt.settings.max_text_chars
    # when the rest are classified in batches of 1,000; then all are decided, none jams
    summary = classify_batch(rt.store, rt.models, rt.settings, worker="t", limit=1000)
    assert summary["claimed"] == 1000
    final = statuses(conn)
    assert final.get("claimed") == 1 and sum(final.values()) == 1001
    assert final.get("classified", 0) + final.get("needs_review", 0) == 1000
    huge = conn.execute("SELECT min(length(description)) FROM tickets").fetchone()
    assert huge is not None and huge[0] > 1_000_000, "the text is stored as given"


def test_retention_deletes_old_records_in_batches_and_keeps_the_newest_event_of_each_kind(
    conn: psycopg.Connection[Any], rt: Any
) -> None:
    # given decisions and events from a year ago, and recent ones
    conn.execute(
        "INSERT INTO causa.decisions (number, status, source, decided_at)"
        " SELECT 'T' || g, 'classified', 'model', now() - interval '365 days'"
        " FROM generate_series(1, 12) g"
    )
    conn.execute(
        "INSERT INTO causa.decisions (number, status, source) VALUES ('NEW', 'classified', 'model')"
    )
    conn.execute(
        "INSERT INTO causa.events (kind, at) VALUES ('drift', now() - interval '300 days'),"
        " ('drift', now() - interval '200 days'), ('training', now() - interval '300 days'),"
        " ('install', now() - interval '400 days')"
    )
    # when retention runs
    deleted = retain(rt.store, rt.settings, rt.registry)
    # then the old decisions are gone, and of the old events only the one that is no longer
    # the newest of its kind
    assert deleted["decisions"] == 12 and deleted["events"] == 1
    assert conn.execute("SELECT number FROM causa.decisions").fetchall() == [("NEW",)]
    kinds = conn.execute("SELECT kind FROM causa.events ORDER BY kind").fetchall()
    assert [k for (k,) in kinds].count("drift") == 1
    assert ("install",) in kinds and ("training",) in kinds
