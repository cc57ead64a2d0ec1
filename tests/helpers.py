"""What tests share: a fresh ticket table, a trained model, waiting for a condition."""

from __future__ import annotations

import csv
import functools
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from shared import schema
from shared.settings import Settings
from shared.store import Caller
from training import bootstrap, dataset
from training.registry import ModelRegistry
from worker import demodata

T = TypeVar("T")
# The suite's model signing key: conftest sets it as CAUSA_MODEL_SIGNING_KEY for every process
# the tests start, so that they trust the models the tests sign with it.
KEY = b"causa-test-suite-model-signing-key-0123456789abcdef"

# A fresh ticket table and no causa: what earlier tests installed is removed with it.
TABLE_DDL = "DROP TABLE IF EXISTS tickets CASCADE; DROP SCHEMA IF EXISTS causa CASCADE;" + (
    demodata.TABLE_SQL
)


def fresh_table(conn: psycopg.Connection[Any], settings: Settings) -> None:
    # A process of the previous test that is still letting go of its connection may hold a
    # lock the DROP needs: PostgreSQL then cancels one side as a deadlock, and it is retried.
    for attempt in range(5):
        try:
            conn.execute(TABLE_DDL)
            break
        except psycopg.errors.DeadlockDetected:
            if not conn.autocommit:
                conn.rollback()
            if attempt == 4:
                raise
    schema.migrate(conn, settings)


@contextmanager
def integer_tickets(
    database_url: str, settings: Settings, count: int
) -> Iterator[tuple[psycopg.Connection[Any], Settings]]:
    """causa on a table whose ticket numbers are integers (`tickets_int`, tickets 1 to
    `count`), removed afterwards: a connection to it and the settings that name it."""
    custom = settings.model_copy(update={"table": "tickets_int"})
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS tickets_int CASCADE; DROP SCHEMA IF EXISTS causa CASCADE")
        c.execute(
            "CREATE TABLE tickets_int (number integer PRIMARY KEY, short_description text,"
            " description text, causa text)"
        )
        schema.migrate(c, custom)
        c.execute(
            "INSERT INTO tickets_int (number, short_description)"
            " SELECT i, 'vpn' FROM generate_series(1, %s) AS i",
            [count],
        )
        yield c, custom
        c.execute("DROP TABLE tickets_int CASCADE; DROP SCHEMA causa CASCADE")


def insert(
    conn: psycopg.Connection[Any], rows: Iterable[tuple[str, str | None, str | None]]
) -> None:
    """Pending tickets: (number, short_description, description) in one statement."""
    numbers, shorts, longs = (list(c) for c in zip(*rows, strict=True))
    conn.execute(
        "INSERT INTO tickets (number, short_description, description)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])",
        [numbers, shorts, longs],
    )


def insert_labelled(
    conn: psycopg.Connection[Any], numbers: list[str], tickets: list[demodata.DemoTicket]
) -> None:
    """Tickets people labelled (their cause set), numbered `numbers`, in one statement."""
    conn.execute(
        "INSERT INTO tickets (number, short_description, description, causa)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])",
        [
            numbers,
            [t.short_description for t in tickets],
            [t.description for t in tickets],
            [t.cause for t in tickets],
        ],
    )


def demo_rows(
    n: int, prefix: str = "T", start: int = 0
) -> list[tuple[str, str | None, str | None]]:
    return [
        (f"{prefix}{start + i:06d}", t.short_description, t.description)
        for i, t in enumerate(demodata.generate(n, seed=7, start=start))
    ]


@functools.cache
def _trained(cache: Path) -> Path:
    examples = [
        dataset.Example(f"H{i}", f"{t.short_description} {t.description}", t.cause)
        for i, t in enumerate(demodata.generate(1200, seed=42))
    ]
    bootstrap.train(examples, ModelRegistry.local(cache, KEY))
    return cache


def install_model(models_dir: Path, cache: Path) -> Path:
    """A bootstrap model trained once per session, copied to `models_dir`."""
    shutil.copytree(_trained(cache), models_dir, dirs_exist_ok=True)
    return models_dir


def wait_for(
    condition: Callable[[], T],
    timeout: float = 30.0,
    what: str = "condition",
    interval: float = 0.05,
    describe: Callable[[], object] | None = None,
) -> T:
    """Poll until `condition()` is truthy; fail with `what` (and what `describe()` says of
    the state) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            state = f"; state: {describe()!r}" if describe else ""
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}; last: {value!r}{state}"
            )
        time.sleep(interval)


# Each ticket's state: queued (pending, or claimed under a lease), else its latest decision,
# else labelled when it has a cause (a person's, from before causa), else None (history).
STATE_SQL = """
SELECT CASE WHEN w.number IS NOT NULL
            THEN CASE WHEN w.claim_token IS NULL THEN 'pending' ELSE 'claimed' END
            WHEN o.number IS NOT NULL THEN o.status
            WHEN t.causa IS NOT NULL THEN 'labelled' END AS state,
       t.number
  FROM tickets AS t
  LEFT JOIN causa.work AS w ON w.number = t.number
  LEFT JOIN causa.outcomes AS o ON o.number = t.number
"""


def queue(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """causa's work items and the database sessions of causa's calls: what a stuck test
    shows."""
    work = conn.execute(
        "SELECT number::text, attempts, claimed_by, claimed_until - now(), last_error"
        " FROM causa.work ORDER BY received_at LIMIT 20"
    ).fetchall()
    sessions = conn.execute(
        "SELECT pid, state, wait_event_type, wait_event, left(query, 60) FROM pg_stat_activity"
        " WHERE query LIKE '%%causa_%%' AND pid <> pg_backend_pid()"
    ).fetchall()
    return [*work, *sessions]


def statuses(conn: psycopg.Connection[Any]) -> dict[str | None, int]:
    """How many tickets are in each state (see STATE_SQL)."""
    rows = conn.execute(f"SELECT state, count(*) FROM ({STATE_SQL}) AS s GROUP BY 1").fetchall()
    return {s: int(n) for s, n in rows}


def state(conn: psycopg.Connection[Any], number: str) -> str | None:
    """One ticket's state (see STATE_SQL)."""
    row = conn.execute(f"SELECT state FROM ({STATE_SQL}) AS s WHERE number = %s", [number])
    found = row.fetchone()
    return None if found is None else found[0]


def caller(worker: str = "test") -> Caller:
    """Who makes a queue call in a test: `worker`, with a request id of its own."""
    return Caller(worker, uuid.uuid4().hex)


def dead_letter(conn: psycopg.Connection[Any], numbers: list[str], error: str = "boom") -> None:
    """Put pending tickets in the dead letter as causa does: claimed, then failed for good."""
    row = conn.execute(
        "SELECT causa_claim('test', %s, 60, 1, %s)", [len(numbers), Jsonb(numbers)]
    ).fetchone()
    assert row is not None and len(row[0]) == len(numbers), row
    failures = [
        {"number": r["number"], "claim_token": r["claim_token"], "error": error} for r in row[0]
    ]
    conn.execute("SELECT causa_fail(%s, 1)", [Jsonb(failures)])


def write_csv(path: Path, n: int, seed: int) -> Path:
    """A labelled CSV of `n` demo tickets (columns text, label), as `causa train --data` reads."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for t in demodata.generate(n, seed=seed):
            w.writerow([f"{t.short_description} {t.description}", t.cause])
    return path
