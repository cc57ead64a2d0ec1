"""The `causa` command line."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from shared import logs
from shared.settings import ConfigError, Settings, load_settings, timing_problems

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="causa: classify IT service-desk tickets in the background.",
)
console = Console(stderr=True)
SCHEDULE_FILE = "celerybeat-schedule"


def _settings() -> Settings:
    s = load_settings()
    logs.configure(level=s.log_level, json=s.log_json)
    return s


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def _ready_to_run() -> Settings:
    """Settings for a long-running process: both services named, timing rules kept."""
    s = load_settings()
    try:
        s.require_database_url()
        s.require_redis_url()
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    problems = timing_problems(s)
    if problems:
        raise _fail("unsafe timing settings: " + "; ".join(problems))
    return s


@app.command()
def up() -> None:
    """Start the embedded PostgreSQL and Redis under $CAUSA_HOME (for trying causa out)."""
    from worker import services

    s = load_settings()
    found = services.up(s.home)
    console.print(f"embedded services running; URLs written to {s.services_env}")
    print(f"DATABASE_URL={found.database_url}\nREDIS_URL={found.redis_url}")


@app.command()
def down() -> None:
    """Stop the embedded services that `causa up` started."""
    from worker import services

    stopped = services.down(load_settings().home)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@app.command()
def migrate(
    print_sql: Annotated[
        bool, typer.Option("--print", help="Write the SQL, apply nothing.")
    ] = False,
) -> None:
    """Add causa's columns, indexes, triggers and queue functions to the ticket table."""
    from shared import schema

    s = _settings()
    if print_sql:
        sys.stdout.write(schema.render(s))
        return
    try:
        with psycopg.connect(s.require_database_url(), autocommit=True) as conn:
            schema.migrate(conn, s)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    console.print(f"migrated table {s.table}")


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Processes; default: one per core.")
    ] = None,
    name: Annotated[str, typer.Option(help="Celery node name.")] = "causa@%h",
) -> None:
    """Run a Celery worker that classifies tickets (run as many as you like, anywhere)."""
    s = _ready_to_run()
    from worker.app import QUEUE
    from worker.app import app as celery

    argv = [
        "worker",
        "-Q",
        QUEUE,
        "-n",
        name,
        "--loglevel",
        s.log_level,
        "--without-gossip",
        "--without-mingle",
    ]
    n = concurrency or s.worker_concurrency
    if n:
        argv += ["--concurrency", str(n)]
    celery.worker_main(argv)


@app.command()
def beat(
    schedule: Annotated[Path, typer.Option(help="Beat's state file.")] = Path(SCHEDULE_FILE),
) -> None:
    """Run Celery beat: polls for pending tickets (run exactly one)."""
    s = _ready_to_run()
    from worker.app import app as celery

    celery.start(["beat", "-s", str(schedule), "--loglevel", s.log_level])


@app.command()
def listen() -> None:
    """Listen for new tickets (PostgreSQL NOTIFY) and enqueue classification at once."""
    s = _settings()
    from tasks.classify import enqueue, poll_pending
    from worker import listener

    def on_tickets(announced: int) -> int:
        return enqueue(announced) if announced else poll_pending()["enqueued"]

    try:
        listener.run(s, on_tickets, threading.Event())
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        pass


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Tickets by status, the backlog, queued tasks and the model in service."""
    from shared.store import PostgresStore
    from training import registry

    s = _settings()
    try:
        store = PostgresStore(s)
        report: dict[str, object] = {
            "table": s.table,
            "statuses": store.status_counts(),
            "backlog": store.pending_count(),
        }
        store.close()
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    try:
        from tasks.classify import queued_tasks

        report["queued_tasks"] = queued_tasks()
    except Exception as exc:
        report["queued_tasks"] = None
        report["broker_error"] = f"{type(exc).__name__}: {exc}"
    info = registry.read_manifest(s.models_dir)
    report["model"] = (
        {"version": info.version, "created_at": info.created_at, "metrics": info.metrics}
        if info
        else None
    )
    if as_json:
        print(json.dumps(report))
        return
    table = Table(title=f"causa status: {s.table}")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in dict(report["statuses"]).items():  # type: ignore[call-overload]
        table.add_row(f"tickets {key}", str(value))
    for key, value in dict(report["backlog"]).items():  # type: ignore[call-overload]
        table.add_row(f"backlog {key}", str(value))
    table.add_row("queued tasks", str(report["queued_tasks"]))
    table.add_row("model", info.version if info else "none: run `causa train --bootstrap`")
    Console().print(table)


@app.command()
def train(
    bootstrap: Annotated[bool, typer.Option(help="Fit the first model (no search).")] = True,
    data: Annotated[Path | None, typer.Option(help="Train on this CSV (may be .gz).")] = None,
    text_column: Annotated[str, typer.Option()] = "text",
    label_column: Annotated[str, typer.Option()] = "label",
    force: Annotated[bool, typer.Option(help="Replace an existing model.")] = False,
) -> None:
    """Train a model on the tickets people labelled (or on --data) and put it in service."""
    from shared.store import PostgresStore
    from training import bootstrap as first_model
    from training import dataset, registry

    s = _settings()
    if not bootstrap:
        raise _fail("only --bootstrap training is available in this version")
    if registry.read_manifest(s.models_dir) is not None and not force:
        console.print(f"a model exists in {s.models_dir}: nothing to do (--force replaces it)")
        return
    try:
        if data is not None:
            examples = dataset.from_csv(data, text_column, label_column)
        else:
            store = PostgresStore(s)
            examples = dataset.from_store(store.labelled())
            store.close()
        info, rare = first_model.train(examples, s.models_dir)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    if rare:
        console.print(f"left out, too few examples: {rare}")
    console.print(
        f"model {info.version} in service: trained on {info.n_train} tickets,"
        f" holdout {info.metrics}"
    )


@app.command()
def demo(
    tickets: Annotated[int, typer.Option(help="New tickets to stream in.")] = 2000,
    rate: Annotated[float, typer.Option(help="Tickets per second inserted.")] = 400.0,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
) -> None:
    """Run everything on embedded services and watch tickets get classified."""
    from worker import demo as demo_run

    raise typer.Exit(demo_run.run(tickets=tickets, rate=rate, as_json=as_json))


if __name__ == "__main__":
    app()
