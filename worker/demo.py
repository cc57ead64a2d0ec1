"""`causa demo`: everything on embedded services, with a live view.

Starts the embedded PostgreSQL and Redis, prepares a demo ticket table, seeds labelled
history, trains a first model if there is none, starts a worker, beat and the listener as
separate processes, streams new tickets in and shows them being classified. The summary
covers this run's tickets only. Ctrl-C stops every process it started; the tickets stay in
the database, and the next run's worker finishes whatever this one left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flows import keys
from shared import queries, schema
from shared.settings import Settings, load_settings
from shared.store import PostgresStore
from training import bootstrap, dataset
from training.registry import ModelRegistry
from worker import demodata, processes, services

HISTORY = 1500  # labelled tickets the demo keeps in its table: enough for a useful first model
INSERT_TICK_S = 0.05  # tickets are inserted in small statements this often
FINAL = ("classified", "needs_review", "failed")
STATUSES = ("pending", "claimed", *FINAL)

SQL = queries.load("worker.demodata", "demo.sql")


def demo_settings(home: Path) -> tuple[Settings, dict[str, str]]:
    found = services.up(home)
    env = {
        **os.environ,
        "DATABASE_URL": found.database_url,
        "REDIS_URL": found.redis_url,
        "CAUSA_TABLE": "tickets",
        "CAUSA_NUMBER_COLUMN": "number",
        "CAUSA_TEXT_COLUMNS": "short_description,description",
        "CAUSA_CAUSE_COLUMN": "causa",
        "CAUSA_LOG_JSON": "true",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("SUPABASE_URL", None)
    settings = load_settings(
        database_url=found.database_url,
        redis_url=found.redis_url,
        table="tickets",
        number_column="number",
        text_columns="short_description,description",
        cause_column="causa",
    )
    return settings, env


def prepare(settings: Settings, conn: psycopg.Connection[Any], console: Console) -> None:
    conn.execute(demodata.TABLE_SQL + SQL["truth_table"])
    schema.migrate(conn, settings)
    row = conn.execute(SQL["history_count"]).fetchone()
    have = int(row[0]) if row else 0
    if have < HISTORY:
        history = demodata.generate(HISTORY - have, seed=42, start=have)
        with conn.cursor() as cur:
            cur.executemany(
                SQL["insert_history"],
                [
                    (f"H{have + i:06d}", t.short_description, t.description, t.cause)
                    for i, t in enumerate(history)
                ],
            )
        console.print(f"seeded {len(history)} labelled tickets of history")
    models = ModelRegistry.from_settings(settings)
    if models.current() is None:
        store = PostgresStore(settings)
        info, _ = bootstrap.train(dataset.from_store(store.labelled()), models)
        store.close()
        console.print(f"trained a first model {info.version}: holdout {info.metrics}")


def counts(conn: psycopg.Connection[Any], run: str) -> dict[str, int]:
    rows = conn.execute(SQL["run_statuses"], [run]).fetchall()
    found = {status: int(n) for status, n in rows}
    return {s: found.get(s, 0) for s in STATUSES}


def serve_desk(
    settings: Settings, env: dict[str, str], logdir: Path, port: int, run_id: str, console: Console
) -> subprocess.Popen[bytes]:
    """`causa serve` on the demo's services, and an admin key made for it, shown once."""
    store = PostgresStore(settings)
    try:
        made = keys.create(store, f"demo-{run_id.lower()}", "admin", None)
    finally:
        store.close()
    proc = processes.start("api", ["serve", "--port", str(port)], env, logdir)
    console.print(
        f"\nreview desk: http://127.0.0.1:{port}/ — sign in with this admin key (shown once):"
        f"\n  {made['key']}\nthe worker keeps classifying; Ctrl-C stops everything"
    )
    return proc


def run(*, tickets: int, rate: float, as_json: bool, serve: int | None = None) -> int:
    console = Console(stderr=as_json)
    home = load_settings().home
    already_up = services.running(home) is not None
    logdir = home / "logs"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    run_id = datetime.now(UTC).strftime("R%Y%m%d%H%M%S")
    try:
        settings, env = demo_settings(home)
        with psycopg.connect(settings.require_database_url(), autocommit=True) as conn:
            prepare(settings, conn, console)
            for name, args in (
                ("worker", ["worker", "--concurrency", "2"]),
                ("beat", ["beat", "--schedule", str(home / "demo-beat-schedule")]),
                ("listener", ["listen"]),
            ):
                procs[name] = processes.start(name, args, env, logdir)
            console.print(f"worker, beat and listener starting; logs in {logdir}")
            processes.wait_ready(logdir, procs)
            stream(conn, run_id, tickets, rate, console)
            final = counts(conn, run_id)
            summary = summarize(conn, run_id, final)
        report(summary, console=console, as_json=as_json)
        if serve is not None:
            procs["api"] = serve_desk(settings, env, logdir, serve, run_id, console)
            procs["api"].wait()
        return 0
    except KeyboardInterrupt:
        console.print(
            "\ninterrupted: stopping what the demo started; the tickets stay in the database"
        )
        return 130
    finally:
        # A second Ctrl-C must not orphan the processes half-way through stopping them.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            processes.stop(list(procs.values()))
            if not already_up:
                services.down(home)
        finally:
            signal.signal(signal.SIGINT, previous)


def stream(
    conn: psycopg.Connection[Any], run_id: str, n: int, rate: float, console: Console
) -> None:
    new = demodata.generate(n, seed=int(run_id[1:]) % 100_000, start=0)
    per_tick = max(1, round(rate * INSERT_TICK_S))
    columns = [
        TextColumn("[bold]classifying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    ]
    started = time.monotonic()
    timeout = 120 + n / 50
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("tickets", total=n, detail="")
        inserted = 0
        while True:
            due = min(n, int((time.monotonic() - started) / INSERT_TICK_S + 1) * per_tick)
            if inserted < due:
                chunk = new[inserted:due]
                numbers = [f"{run_id}-{inserted + i:06d}" for i in range(len(chunk))]
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(
                        SQL["insert_truth"],
                        [(num, t.cause, run_id) for num, t in zip(numbers, chunk, strict=False)],
                    )
                    cur.execute(
                        SQL["insert_tickets"],
                        [
                            numbers,
                            [t.short_description for t in chunk],
                            [t.description for t in chunk],
                        ],
                    )
                inserted = due
            now = counts(conn, run_id)
            done = sum(now[s] for s in FINAL)
            bar.update(
                task,
                completed=done,
                detail=f"inserted {inserted}  pending {now['pending']}  claimed {now['claimed']}",
            )
            if done >= n:
                return
            if time.monotonic() - started > timeout:
                console.print(f"[yellow]stopped waiting after {timeout:.0f} s; see the logs")
                return
            time.sleep(INSERT_TICK_S)


def summarize(conn: psycopg.Connection[Any], run_id: str, final: dict[str, int]) -> dict[str, Any]:
    row = conn.execute(SQL["run_summary"], [run_id]).fetchone()
    assert row is not None
    n, accuracy, seconds, latency = row
    seconds = float(seconds) if seconds is not None else None
    causes = conn.execute(SQL["run_causes"], [run_id]).fetchall()
    p50, p95, p99 = latency or (None, None, None)
    return {
        "run": run_id,
        "tickets": int(n),
        "by_status": final,
        "by_cause": {c: int(k) for c, k in causes},
        "tickets_per_s": round(n / seconds, 1) if seconds else None,
        "latency_ms": {"p50": _ms(p50), "p95": _ms(p95), "p99": _ms(p99)},
        "accuracy": round(accuracy, 4) if accuracy is not None else None,
    }


def _ms(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def report(summary: dict[str, Any], *, console: Console, as_json: bool) -> None:
    table = Table(title=f"causa demo {summary['run']}: {summary['tickets']} new tickets")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for status, k in summary["by_status"].items():
        table.add_row(f"status {status}", str(k))
    for cause, k in summary["by_cause"].items():
        table.add_row(f"cause {cause}", str(k))
    table.add_row("accuracy (vs hidden truth)", f"{summary['accuracy']}")
    table.add_row("tickets/s", f"{summary['tickets_per_s']}")
    for q, v in summary["latency_ms"].items():
        table.add_row(f"insert→decided {q}", f"{v} ms")
    console.print(table)
    if as_json:
        print(
            json.dumps(
                {
                    k: summary[k]
                    for k in ("tickets", "by_status", "tickets_per_s", "latency_ms", "accuracy")
                }
            )
        )
