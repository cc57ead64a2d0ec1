"""Commands that run causa: its services, its processes, the demo."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import psycopg
import typer

from shared import logs, schema
from shared.settings import load_settings
from training import tracking
from worker import flower as flower_ui
from worker import listener, metrics, names, realtime, sentry, services
from worker.cli.common import (
    console,
    database_installed,
    ready_to_run,
    runtime,
    settings,
)

SCHEDULE_FILE = "celerybeat-schedule"


def up() -> None:
    """Start the embedded PostgreSQL and Redis under $CAUSA_HOME (for trying causa out)."""
    s = load_settings()
    found = services.up(s.home)
    console.print(f"embedded services running; URLs written to {s.services_env}")
    print(f"DATABASE_URL={found.database_url}\nREDIS_URL={found.redis_url}")


def down() -> None:
    """Stop the embedded services that `causa up` started."""
    stopped = services.down(load_settings().home)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


def migrate(
    print_sql: Annotated[
        bool, typer.Option("--print", help="Write the SQL, apply nothing.")
    ] = False,
    uninstall: Annotated[
        bool,
        typer.Option(help="Remove exactly what causa created (its schema, triggers, columns)."),
    ] = False,
    drop_legacy: Annotated[
        bool,
        typer.Option(
            help="After an upgrade from causa 0.x, drop the queue columns it left on the table"
            " (attempts, claimed_by, claim_token, claimed_until, last_error, received_at)."
        ),
    ] = False,
) -> None:
    """Install or upgrade causa in the database: its schema `causa` (queue, decisions),
    small triggers and the causa_ result columns on the ticket table, the queue functions.
    Each versioned step is applied once; running it again is harmless (--uninstall: remove
    what causa created, and nothing else)."""
    s = settings()
    if print_sql:
        sys.stdout.write(schema.render(s, "uninstall.sql" if uninstall else "schema.sql"))
        return
    with psycopg.connect(s.require_database_url(), autocommit=True) as conn:
        applied = schema.migrate(conn, s, uninstall=uninstall, drop_legacy=drop_legacy)
    if uninstall:
        console.print(f"removed causa from table {s.table}")
        return
    steps = ", ".join(map(str, applied)) or "none (up to date)"
    console.print(f"migrated table {s.table}: steps applied {steps}")
    if drop_legacy:
        console.print("dropped the queue columns causa 0.x left on the table")


def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Processes; default: one per core.")
    ] = None,
    name: Annotated[str, typer.Option(help="Celery node name.")] = "causa@%h",
) -> None:
    """Run a Celery worker that classifies tickets (run as many as you like, anywhere)."""
    s = ready_to_run()
    database_installed(s)  # before `causa migrate`: say so, not a failing task per batch
    if s.metrics_port is not None:
        metrics.prepare(s.home, f"worker-{s.metrics_port}")  # before any process counts
    from worker.app import app as celery  # lazy: start-up time of the other commands

    argv = [
        "worker",
        "-Q",
        f"{names.QUEUE},{names.TRAINING_QUEUE}",
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


def beat(
    schedule: Annotated[Path, typer.Option(help="Beat's state file.")] = Path(SCHEDULE_FILE),
) -> None:
    """Run Celery beat: polls for pending tickets (run exactly one)."""
    s = ready_to_run()
    from worker.app import app as celery  # lazy: start-up time of the other commands

    celery.start(["beat", "-s", str(schedule), "--loglevel", s.log_level])


def listen() -> None:
    """Listen for new tickets (PostgreSQL NOTIFY, or Supabase Realtime without DATABASE_URL)
    and enqueue classification at once."""
    from flows.classify import on_announced  # lazy: start-up time of the other commands
    from flows.listening import Health

    s = settings()
    sentry.init(s, {}, process="listener")
    rt = runtime(s)

    def announce(announced: int) -> int:
        return on_announced(rt, announced)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop listening, quietly
        if s.database_url is None and s.supabase_url:
            realtime.run(s, announce, threading.Event(), Health(rt))
        else:
            listener.run(s, announce, threading.Event(), Health(rt))


def flower(
    port: Annotated[int, typer.Option(help="The port Flower listens on.")] = 5555,
    address: Annotated[
        str, typer.Option(help="The address Flower binds (0.0.0.0: every interface).")
    ] = "127.0.0.1",
) -> None:
    """Run Celery Flower (workers, tasks, Prometheus /metrics) behind basic auth: user
    CAUSA_FLOWER_USER, password CAUSA_FLOWER_PASSWORD or a random one printed once."""
    s = load_settings()
    s.require_redis_url()
    creds = flower_ui.credentials(s)
    logs.setup(s, extra_secrets=[creds.password])  # again: a generated password is redacted too
    flower_ui.run(s, creds, port, address)


def mlflow_ui(port: Annotated[int, typer.Option()] = 5000) -> None:
    """Open MLflow's UI on the embedded tracking store (127.0.0.1)."""
    s = settings()
    uri = tracking.tracking_uri(s.home, s.mlflow_tracking_uri)
    mlflow = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    subprocess.run([*mlflow, "--host", "127.0.0.1", "--port", str(port)], check=False)


def demo(
    tickets: Annotated[int, typer.Option(help="New tickets to stream in.")] = 2000,
    rate: Annotated[float, typer.Option(help="Tickets per second inserted.")] = 400.0,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
    serve: Annotated[
        int | None,
        typer.Option(
            help="Then serve the review desk and the API on this port, with an admin key made"
            " for it, until Ctrl-C.",
        ),
    ] = None,
) -> None:
    """Run everything on embedded services and watch tickets get classified."""
    from worker import demo as demo_run  # lazy: start-up time of the other commands

    raise typer.Exit(demo_run.run(tickets=tickets, rate=rate, as_json=as_json, serve=serve))


COMMANDS: list[Callable[..., object]] = [
    up,
    down,
    migrate,
    worker,
    beat,
    listen,
    flower,
    mlflow_ui,
    demo,
]
