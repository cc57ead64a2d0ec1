"""What tests share: a fresh ticket table, a trained model, waiting for a condition."""

from __future__ import annotations

import csv
import functools
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from shared import schema
from shared.settings import Settings
from training import bootstrap, dataset
from training.registry import ModelRegistry
from worker import demodata

T = TypeVar("T")

TABLE_DDL = "DROP TABLE IF EXISTS tickets, causa_events CASCADE;" + demodata.TABLE_SQL


def fresh_table(conn: psycopg.Connection[Any], settings: Settings) -> None:
    conn.execute(TABLE_DDL)
    schema.migrate(conn, settings)


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
    bootstrap.train(examples, ModelRegistry.local(cache))
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
) -> T:
    """Poll until `condition()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {value!r}")
        time.sleep(interval)


def statuses(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute("SELECT classification_status, count(*) FROM tickets GROUP BY 1").fetchall()
    return {s: int(n) for s, n in rows}


def write_csv(path: Path, n: int, seed: int) -> Path:
    """A labelled CSV of `n` demo tickets (columns text, label), as `causa train --data` reads."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for t in demodata.generate(n, seed=seed):
            w.writerow([f"{t.short_description} {t.description}", t.cause])
    return path
