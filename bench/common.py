"""What the benchmarks share: services, a fresh table, a model, the processes."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from shared import schema
from shared.settings import Settings, load_settings
from training import bootstrap, dataset, registry
from worker import demodata, processes, services
from worker.app import make_app
from worker.queue import CeleryQueue

BENCH_DATABASE = "causa_bench"  # apart from the demo's: the queue functions are per database
# A fresh ticket table and no causa: the work items, decisions and outcomes of an earlier run
# (in causa's schema, which outlives the table) go with it.
TABLE = "DROP TABLE IF EXISTS tickets CASCADE; DROP SCHEMA IF EXISTS causa CASCADE;" + (
    demodata.TABLE_SQL
)
FINAL = ("classified", "needs_review", "failed")
# Tickets decided for good: their latest decision, in causa's own table.
# How often the benchmark counts final tickets: each count is work for the database under
# test (every 0.05 s took some tenth of a core from a 50,000-ticket run); the end is seen at
# most this late (under 2 % of a 10 s run).
POLL_S = 0.2
DECIDED_SQL = "SELECT count(*) FROM causa.outcomes WHERE status = ANY(%s)"
# The same from the result columns of the ticket table (what the naive run writes).
DECIDED_ROWS_SQL = "SELECT count(*) FROM tickets WHERE causa_status = ANY(%s)"


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def parser(description: str, services: bool = True) -> argparse.ArgumentParser:
    """The options every benchmark takes; with `services`, those that choose its servers."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    if not services:
        return p
    p.add_argument(
        "--database-url",
        help="a PostgreSQL database of the benchmark's own instead of the embedded one's"
        f" {BENCH_DATABASE}: its table tickets and schema causa are dropped and made again",
    )
    p.add_argument(
        "--redis-url",
        help="a Redis database for the broker instead of the embedded Redis's database 2",
    )
    return p


@contextmanager
def environment(
    home: Path, database_url: str | None = None, redis_url: str | None = None
) -> Iterator[tuple[Settings, dict[str, str]]]:
    """The services: the given database and broker, else embedded ones (started if needed,
    stopped after if we started them) with a benchmark database of their own; settings and
    the environment for child processes."""
    embedded = database_url is None or redis_url is None
    already = services.running(home) is not None
    found = services.up(home) if embedded else None
    url = database_url or services.start_postgres(home, BENCH_DATABASE)
    broker = redis_url or (found.redis_url if found else "").rsplit("/", 1)[0] + "/2"
    # This process enqueues too: its own settings must name the same broker and database.
    os.environ.update(
        DATABASE_URL=url,
        REDIS_URL=broker,
        CAUSA_LOG_JSON="true",
        PYTHONUNBUFFERED="1",
    )
    env = dict(os.environ)
    for key in (
        "CAUSA_TABLE",
        "CAUSA_NUMBER_COLUMN",
        "CAUSA_TEXT_COLUMNS",
        "CAUSA_CAUSE_COLUMN",
        "SUPABASE_URL",
    ):
        env.pop(key, None)
    settings = load_settings(
        database_url=url,
        redis_url=env["REDIS_URL"],
        table="tickets",
        number_column="number",
        cause_column="causa",
        text_columns="short_description,description",
    )
    try:
        yield settings, env
    finally:
        if embedded and not already:
            services.down(home)


def end_to_end(
    conn: psycopg.Connection[Any],
    settings: Settings,
    env: dict[str, str],
    logdir: Path,
    tickets: int,
    concurrency: int = 2,
) -> float:
    """Tickets per second of one worker (`concurrency` processes) that classifies a fresh
    table of `tickets` pending tickets, from the enqueueing to the last final decision."""
    fresh_table(conn, settings)
    load(conn, tickets)
    conn.execute("VACUUM ANALYZE tickets")
    with running(logdir, env, worker=["worker", "--concurrency", str(concurrency)]):
        started = time.monotonic()
        enqueue(settings, tickets)
        wait_final(conn, tickets)
        return tickets / (time.monotonic() - started)


def enqueue(settings: Settings, tickets: int) -> None:
    """Enqueue the classify tasks a backlog of `tickets` needs, by name, as beat's poll would."""
    CeleryQueue(make_app(settings)).classify(math.ceil(tickets / settings.batch_size))


def model_dir(settings: Settings, home: Path) -> tuple[Path, registry.ModelInfo]:
    """The current model if there is one; else a bootstrap model on demo data, kept apart."""
    key = registry.signing_key(settings)
    info = registry.read_manifest(settings.models_dir, key)
    if info is not None:
        return settings.models_dir, info
    bench_models = home / "bench-models"
    info = registry.read_manifest(bench_models, key)
    if info is None:
        examples = [
            dataset.Example(f"H{i}", f"{t.short_description} {t.description}", t.cause)
            for i, t in enumerate(demodata.generate(1500, seed=42))
        ]
        info, _ = bootstrap.train(examples, registry.ModelRegistry.local(bench_models, key))
    return bench_models, info


def fresh_table(conn: psycopg.Connection[Any], settings: Settings) -> None:
    conn.execute(TABLE)
    schema.migrate(conn, settings)


def load(conn: psycopg.Connection[Any], n: int, seed: int = 11) -> None:
    tickets = demodata.generate(n, seed=seed)
    for i in range(0, n, 10_000):
        part = tickets[i : i + 10_000]
        conn.execute(
            "INSERT INTO tickets (number, short_description, description)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])",
            [
                [f"B{i + j:07d}" for j in range(len(part))],
                [t.short_description for t in part],
                [t.description for t in part],
            ],
        )


def wait_final(
    conn: psycopg.Connection[Any], n: int, stall_s: float = 60.0, query: str = DECIDED_SQL
) -> None:
    """Until n tickets are final (classified, needs_review or failed, counted by `query`);
    stop if none became final for `stall_s` seconds."""
    done, last_progress = -1, time.monotonic()
    while True:
        row = conn.execute(query, [list(FINAL)]).fetchone()
        now = int(row[0]) if row else 0
        if now >= n:
            return
        if now > done:
            done, last_progress = now, time.monotonic()
        elif time.monotonic() - last_progress > stall_s:
            raise SystemExit(f"stalled: {now} of {n} tickets final, none more for {stall_s:.0f} s")
        time.sleep(POLL_S)


@contextmanager
def running(
    logdir: Path, env: dict[str, str], module: str = "worker.cli", **commands: list[str]
) -> Iterator[None]:
    shutil.rmtree(logdir, ignore_errors=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, args in commands.items():
            procs[name] = processes.start(name, args, env, logdir, module)
        processes.wait_ready(logdir, procs)
        yield
    finally:
        processes.stop(list(procs.values()))


def emit(
    rows: Sequence[Sequence[str]],
    title: str,
    summary: dict[str, Any],
    as_json: bool,
    columns: Sequence[str] = ("measure", "value"),
) -> None:
    """A table of `rows` (a measure, then one cell per further column), then with `as_json`
    the summary as one JSON line."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column(columns[0])
    for column in columns[1:]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    if as_json:
        print(json.dumps(summary))
