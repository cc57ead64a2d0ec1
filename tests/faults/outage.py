"""What the outage tests share: a stream of tickets inserted straight into the database (never
through the outage), and reading causa's JSON log lines."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from tests.helpers import demo_rows, insert, statuses, wait_for

FINAL = ("classified", "needs_review")


class Stream:
    """Inserts `per_tick` tickets every `tick_s` seconds (S000000, S000001, ...) on a
    connection of its own, until stopped. `inserted` counts what is committed."""

    def __init__(self, database_url: str, per_tick: int = 5, tick_s: float = 0.25) -> None:
        self.url = database_url
        self.per_tick = per_tick
        self.tick_s = tick_s
        self.inserted = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                next_at = time.monotonic()
                while not self._stop.is_set():
                    insert(conn, demo_rows(self.per_tick, prefix="S", start=self.inserted))
                    self.inserted += self.per_tick
                    next_at += self.tick_s
                    self._stop.wait(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # reported by stop()
            self.errors.append(exc)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(30)
        assert not self.errors, f"the ticket stream failed: {self.errors[0]!r}"
        return self.inserted

    @staticmethod
    def number(i: int) -> str:
        return f"S{i:06d}"


@contextmanager
def streaming(database_url: str) -> Iterator[Stream]:
    stream = Stream(database_url)
    stream._thread.start()
    try:
        yield stream
    finally:
        stream._stop.set()
        stream._thread.join(30)


def decided_below(conn: psycopg.Connection[Any], n: int) -> int:
    """How many of the first `n` streamed tickets have a final decision (their latest)."""
    row = conn.execute(
        "SELECT count(*) FROM causa.outcomes WHERE number < %s AND status = ANY(%s)",
        [Stream.number(n), list(FINAL)],
    ).fetchone()
    return int(row[0]) if row else 0


def events(log: Path) -> list[dict[str, Any]]:
    """causa's JSON log lines (Celery's own plain lines are skipped), each with `at`, the
    epoch seconds of its timestamp."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if "timestamp" in event:
            event["at"] = datetime.fromisoformat(event["timestamp"]).timestamp()
        out.append(event)
    return out


def between(log: Path, what: str, began: float, ended: float) -> list[dict[str, Any]]:
    return [
        e
        for e in events(log)
        if what in str(e.get("event", "")) and began <= e.get("at", 0.0) <= ended
    ]


def db_now(conn: psycopg.Connection[Any]) -> Any:
    """The database's clock: ticket times are compared with it, not the test's."""
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]


def last_decided_since(conn: psycopg.Connection[Any], n: int, since: Any) -> float:
    """Seconds from `since` (a database time) to the last decision of the first `n` streamed
    tickets, from causa's decision log."""
    row = conn.execute(
        "SELECT extract(epoch FROM max(decided_at) - %s) FROM causa.decisions"
        " WHERE number < %s AND status = ANY(%s)",
        [since, Stream.number(n), list(FINAL)],
    ).fetchone()
    assert row is not None and row[0] is not None, "no decision of the streamed tickets"
    return float(row[0])


def finish(conn: psycopg.Connection[Any], stream: Stream) -> int:
    """Stop the stream and wait until every ticket it inserted is final; how many it was."""
    total = stream.stop()
    wait_for(
        lambda: set(statuses(conn)) <= set(FINAL) and sum(statuses(conn).values()) == total,
        timeout=60,
        what="the last streamed tickets decided",
    )
    return total
