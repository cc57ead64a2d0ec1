"""On Supabase only the service role may call the queue functions, even though Supabase's
default privileges grant EXECUTE on new functions to anon and authenticated."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from shared import schema
from shared.settings import Settings
from tests.helpers import TABLE_DDL

ROLES = ("anon", "authenticated", "service_role")


@pytest.fixture
def supabase_roles(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """The three roles of a Supabase project, with its default privileges, in the suite's
    throwaway database; dropped afterwards (roles belong to the whole server)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for role in ROLES:
            conn.execute(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}')"
                f" THEN CREATE ROLE {role} NOLOGIN; END IF; END $$"
            )
        conn.execute("GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role")
        conn.execute(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS"
            " TO anon, authenticated, service_role"
        )
        conn.execute(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES"
            " TO anon, authenticated, service_role"
        )
        yield conn
        for role in ROLES:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_only_the_service_role_may_call_the_queue(
    supabase_roles: psycopg.Connection[Any], settings: Settings
) -> None:
    conn = supabase_roles
    conn.execute(TABLE_DDL)
    # the migration drops and re-creates nothing: functions made here get the defaults above
    conn.execute(
        "DROP FUNCTION IF EXISTS causa_claim, causa_apply, causa_fail,"
        " causa_pending_count, causa_status_counts, causa_labelled"
    )
    schema.migrate(conn, settings)
    for role in ("anon", "authenticated"):
        with conn.transaction():
            conn.execute(f"SET LOCAL ROLE {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT causa_pending_count()")
            raise_rollback(conn)
        # nor read causa's schema (PostgREST does not expose it; the grants say the same)
        with conn.transaction():
            conn.execute(f"SET LOCAL ROLE {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT count(*) FROM causa.work")
            raise_rollback(conn)
    # the user's application, signed in, inserts a ticket: causa's trigger queues it anyway
    with conn.transaction():
        conn.execute("SET LOCAL ROLE authenticated")
        conn.execute("INSERT INTO tickets (number, short_description) VALUES ('A1', 'vpn')")
    with conn.transaction():
        conn.execute("SET LOCAL ROLE service_role")
        row = conn.execute("SELECT causa_pending_count()").fetchone()
        assert row == ({"pending": 1, "retry": 0, "claimed": 0, "estimated": False},)
        claimed = conn.execute("SELECT causa_claim('w', 10, 60)").fetchone()
        assert claimed is not None and [r["number"] for r in claimed[0]] == ["A1"]


def raise_rollback(conn: psycopg.Connection[Any]) -> None:
    raise psycopg.Rollback()
