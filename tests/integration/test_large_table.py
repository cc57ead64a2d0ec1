"""Migrating a large live table: 200,000 rows while another connection keeps writing."""

from __future__ import annotations

import threading
import time

import psycopg

from shared import schema
from shared.settings import Settings
from tests.helpers import TABLE_DDL

ROWS = 200_000
# The writer's longest statement while the migration runs: the column additions take a
# brief exclusive lock, the CONCURRENTLY build none that blocks writes; no row is rewritten.
MAX_WRITER_STALL_S = 2.0


def test_migration_of_200k_rows_never_blocks_a_writer_for_long(
    database_url: str, settings: Settings
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(TABLE_DDL)
        schema.migrate(conn, settings, uninstall=True)  # functions other tests left behind
        conn.execute(
            "INSERT INTO tickets SELECT 'N' || g, 'texto ' || g, NULL,"
            " CASE WHEN g %% 2 = 0 THEN 'Red' END FROM generate_series(1, %s) g",
            [ROWS],
        )
        stop = threading.Event()
        stalls: list[float] = []
        errors: list[str] = []

        def writer() -> None:
            with psycopg.connect(database_url, autocommit=True) as w:
                i = 0
                while not stop.is_set():
                    i += 1
                    started = time.monotonic()
                    try:
                        w.execute(
                            "INSERT INTO tickets (number, short_description, causa)"
                            " VALUES (%s, 'nuevo', %s)",
                            [f"W{i}", "Red" if i % 2 else None],
                        )
                        w.execute(
                            "UPDATE tickets SET description = 'tocado' WHERE number = %s", [f"N{i}"]
                        )
                    except psycopg.Error as exc:
                        errors.append(str(exc))
                    stalls.append(time.monotonic() - started)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            time.sleep(0.2)  # the writer is running before the migration starts
            started = time.monotonic()
            schema.migrate(conn, settings)
            took = time.monotonic() - started
        finally:
            stop.set()
            thread.join(30)
        print(
            f"migration {took:.2f} s, writer statements {len(stalls)}, longest {max(stalls):.3f} s"
        )
        assert errors == []
        assert len(stalls) > 50 and max(stalls) < MAX_WRITER_STALL_S, (max(stalls), took)
        # and the history was neither written nor queued: only the writer's new tickets are work
        untouched = conn.execute(
            "SELECT count(*) FROM tickets WHERE number LIKE 'N%%' AND description IS NULL"
            " AND causa_status IS NULL"
        ).fetchone()
        assert untouched is not None and untouched[0] >= ROWS - len(stalls)
        assert conn.execute(
            "SELECT count(*) FROM causa.work WHERE number LIKE 'N%'"
        ).fetchone() == (0,)
        valid = conn.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c"
            " ON c.oid = i.indexrelid WHERE c.relname = 'causa_labelled_idx'"
        ).fetchall()
        assert valid == [("causa_labelled_idx", True)]
        conn.execute("DROP TABLE tickets CASCADE")
