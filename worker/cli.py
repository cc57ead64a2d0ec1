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
    logs.setup(s)
    return s


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def _ready_to_run() -> Settings:
    """Settings for a long-running process: both services named, timing rules kept."""
    s = load_settings()
    try:
        if s.database_url is None:
            s.require_supabase()  # or say what to set
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
    uninstall: Annotated[
        bool, typer.Option(help="Remove every column, function, trigger and index causa added.")
    ] = False,
) -> None:
    """Add causa's columns, indexes, triggers and queue functions to the ticket table
    (--uninstall: remove them again, and nothing else)."""
    from shared import schema

    s = _settings()
    if print_sql:
        sys.stdout.write(schema.render(s, "uninstall.sql" if uninstall else "schema.sql"))
        return
    try:
        with psycopg.connect(s.require_database_url(), autocommit=True) as conn:
            schema.migrate(conn, s, uninstall=uninstall)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    console.print(f"{'removed causa from' if uninstall else 'migrated'} table {s.table}")


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Processes; default: one per core.")
    ] = None,
    name: Annotated[str, typer.Option(help="Celery node name.")] = "causa@%h",
) -> None:
    """Run a Celery worker that classifies tickets (run as many as you like, anywhere)."""
    s = _ready_to_run()
    from worker.app import QUEUE, TRAINING_QUEUE
    from worker.app import app as celery

    argv = [
        "worker",
        "-Q",
        f"{QUEUE},{TRAINING_QUEUE}",
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
    """Listen for new tickets (PostgreSQL NOTIFY, or Supabase Realtime without DATABASE_URL)
    and enqueue classification at once."""
    s = _settings()
    from tasks.classify import enqueue, poll_pending
    from worker import listener, sentry

    sentry.init(s, {}, process="listener")

    def on_tickets(announced: int) -> int:
        return enqueue(announced) if announced else poll_pending()["enqueued"]

    try:
        if s.database_url is None and s.supabase_url:
            from worker import realtime

            realtime.run(s, on_tickets, threading.Event())
        else:
            listener.run(s, on_tickets, threading.Event())
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        pass


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The backlog and its oldest ticket, recent throughput, the model in service, the last
    training decision, drift and the workers online."""
    from shared.store import make_store
    from worker import status as report_status

    s = _settings()
    try:
        store = make_store(s)
        report = report_status.gather(s, store)
        store.close()
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        print(json.dumps(report, default=str))
        return
    table = Table(title=f"causa status: {s.table}")
    table.add_column("what")
    table.add_column("value")
    for what, value in report_status.rows(report):
        table.add_row(what, value)
    Console().print(table)


@app.command()
def train(
    data: Annotated[Path | None, typer.Option(help="Also train on this CSV (may be .gz).")] = None,
    text_column: Annotated[str, typer.Option(help="The CSV's text column.")] = "text",
    label_column: Annotated[str, typer.Option(help="The CSV's label column.")] = "label",
    tickets: Annotated[
        bool, typer.Option(help="Use the tickets people labelled (--no-tickets: CSV only).")
    ] = True,
    bootstrap: Annotated[
        bool, typer.Option(help="A quick first model without search or comparison.")
    ] = False,
    force: Annotated[bool, typer.Option(help="--bootstrap: replace an existing model.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
) -> None:
    """Train a challenger, compare it with the model in service on the same holdout, and
    promote it if it wins (--bootstrap: a first model, no search)."""
    from shared.store import make_store
    from training import bootstrap as first_model
    from training import dataset, registry
    from training.train import retrain

    s = _settings()
    if not tickets and data is None:
        raise _fail("--no-tickets needs --data FILE: there would be nothing to train on")
    if bootstrap and registry.read_manifest(s.registry_dir) is not None and not force:
        console.print(f"a model exists in {s.registry_dir}: nothing to do (--force replaces it)")
        return
    try:
        store = make_store(s) if tickets else None
        examples = dataset.assemble(
            store.labelled() if store else None, data, text_column, label_column
        )
        if store:
            store.close()
        if bootstrap:
            info, rare = first_model.train(examples, s.registry_dir, seed=s.seed)
            console.print(
                f"model {info.version} in service: trained on {info.n_train}"
                f" tickets, holdout {info.metrics}; left out: {rare or 'none'}"
            )
            return
        report = retrain(examples, s, trigger="cli")
    except (ConfigError, ValueError, FileNotFoundError, registry.ModelError) as exc:
        raise _fail(str(exc)) from None
    show_decision(report.summary())
    if as_json:
        print(json.dumps(report.summary()))


def show_decision(summary: dict[str, object]) -> None:
    """Both models side by side on the same holdout, and the verdict."""
    challenger = summary["challenger"]
    champion = summary["champion"]
    assert isinstance(challenger, dict)
    table = Table(title=f"challenger vs champion on {summary['holdout']} held-out tickets")
    table.add_column("metric")
    table.add_column("challenger", justify="right")
    table.add_column("champion", justify="right")
    rows = [("macro-F1", "macro_f1"), ("accuracy", "accuracy"), ("calibration error", "ece")]
    for label, key in rows:
        table.add_row(
            label,
            f"{challenger[key]:.4f}",
            f"{champion[key]:.4f}" if isinstance(champion, dict) else "—",
        )
    for cls, f1 in challenger["per_class_f1"].items():
        old = champion["per_class_f1"].get(cls) if isinstance(champion, dict) else None
        table.add_row(f"F1 {cls}", f"{f1:.4f}", f"{old:.4f}" if old is not None else "—")
    Console().print(table)
    console.print(
        f"difference {summary['difference']} (relative {summary['relative']}), required"
        f" {summary['min_improvement']}: [bold]{summary['decision']}[/bold] — {summary['reason']}"
    )
    if summary.get("left_out"):
        console.print(f"left out for too few labels: {summary['left_out']}")
    console.print(
        f"challenger: {summary['model']}; {summary['tickets_per_s']} tickets/s on one"
        f" core; {summary['seconds']} s; version in service:"
        f" {summary['version'] or 'unchanged'}"
    )


@app.command()
def models() -> None:
    """The model in service and the backups."""
    from training import registry

    s = _settings()
    table = Table(title=f"models in {s.registry_dir}")
    for column in ("", "version", "created", "trained on", "macro-F1", "decision"):
        table.add_column(column)
    for kind, info in registry.list_models(s.registry_dir):
        f1 = info.metrics.get("macro_f1")
        table.add_row(
            kind,
            info.version,
            info.created_at,
            str(info.n_train),
            f"{f1:.4f}" if isinstance(f1, float) else "—",
            info.decision,
        )
    Console().print(table)


@app.command()
def rollback(
    version: Annotated[str | None, typer.Argument(help="Default: the newest backup.")] = None,
) -> None:
    """Put a backup model back in service; workers pick it up before their next batch."""
    from training import registry

    s = _settings()
    try:
        info = registry.rollback(s.registry_dir, version, keep_backups=s.keep_backups)
    except registry.ModelError as exc:
        raise _fail(str(exc)) from None
    console.print(f"model {info.version} is in service again")


admin = typer.Typer(
    no_args_is_help=True,
    help="Operator tasks (also in Flower: POST /api/task/async-apply/tasks.admin.<name>)."
    " Each runs here and prints its result; --enqueue sends it to the workers instead.",
)
app.add_typer(admin, name="admin")
EnqueueOption = Annotated[
    bool,
    typer.Option("--enqueue", help="Send to the workers (see Flower) instead of running here."),
]
NumbersArgument = Annotated[list[str] | None, typer.Argument(help="Ticket numbers.")]


def _run_admin(name: str, enqueue: bool, **kwargs: object) -> None:
    """Run tasks.admin.<name> here (eagerly, the same code a worker runs) or send it."""
    import getpass
    import socket

    _ready_to_run()
    from tasks import admin as admin_tasks
    from training.registry import ModelError

    task = getattr(admin_tasks, name)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    kwargs["triggered_by"] = f"causa admin, {getpass.getuser()}@{socket.gethostname()}"
    if enqueue:
        sent = task.apply_async(kwargs=kwargs)
        console.print(f"sent tasks.admin.{name}: task id {sent.id} (follow it in Flower)")
        return
    try:
        result = task.apply(kwargs=kwargs, throw=True).get()
    except (ConfigError, ValueError, ModelError) as exc:
        raise _fail(str(exc)) from None
    print(json.dumps(result, default=str))


@admin.command("retrain")
def admin_retrain(enqueue: EnqueueOption = False) -> None:
    """Train now; promote the challenger if it wins (skipped while a training runs)."""
    _run_admin("retrain", enqueue)


@admin.command("reclassify")
def admin_reclassify(
    numbers: NumbersArgument = None,
    model_version: Annotated[
        str | None, typer.Option(help="Every ticket this model version decided.")
    ] = None,
    enqueue: EnqueueOption = False,
) -> None:
    """Classify tickets again: the given numbers, or all decided by --model-version."""
    _run_admin("reclassify", enqueue, numbers=numbers or None, model_version=model_version)


@admin.command("requeue-failed")
def admin_requeue_failed(numbers: NumbersArgument = None, enqueue: EnqueueOption = False) -> None:
    """Replay the dead letter: failed tickets (all, or the given ones) back to the queue."""
    _run_admin("requeue_failed", enqueue, numbers=numbers or None)


@admin.command("rollback")
def admin_rollback(
    version: Annotated[str | None, typer.Argument(help="Default: the newest backup.")] = None,
    enqueue: EnqueueOption = False,
) -> None:
    """Put a backup model in service, once: repeating the command changes nothing more."""
    from training import registry

    current = registry.read_manifest(load_settings().registry_dir)
    replacing = current.version if current else None
    _run_admin("rollback", enqueue, version=version, replacing=replacing)


@admin.command("drift")
def admin_drift(enqueue: EnqueueOption = False) -> None:
    """Compare recent predictions with the model's holdout now, store and print the report."""
    _run_admin("drift_report", enqueue)


@admin.command("purge-backups")
def admin_purge_backups(
    keep: Annotated[int | None, typer.Option(help="Default: CAUSA_KEEP_BACKUPS.")] = None,
    enqueue: EnqueueOption = False,
) -> None:
    """Delete all but the newest model backups."""
    _run_admin("purge_backups", enqueue, keep=keep)


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="A labelled CSV (may be .gz).")],
    text_column: Annotated[str, typer.Option()] = "text",
    label_column: Annotated[str, typer.Option()] = "label",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Score the model in service on a labelled CSV."""
    from training import dataset, registry
    from training.evaluate import predict, score

    s = _settings()
    try:
        model = registry.load_current(s.registry_dir)
        examples = dataset.from_csv(data, text_column, label_column)
    except (registry.ModelError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    truth = [e.label for e in examples]
    scores = score(truth, *predict(model.pipeline, [e.text for e in examples]))
    table = Table(
        title=f"model {model.version} on {len(truth)} tickets of {data.name}:"
        f" accuracy {scores['accuracy']:.4f}, macro-F1 {scores['macro_f1']:.4f}"
    )
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column)
    for cls, m in scores["per_class"].items():
        table.add_row(
            cls, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"])
        )
    Console().print(table)
    matrix = Table(title="confusion matrix (rows: true, columns: predicted)")
    matrix.add_column("")
    for label in scores["labels"]:
        matrix.add_column(label[:10], justify="right")
    for label, row in zip(scores["labels"], scores["confusion"], strict=True):
        matrix.add_row(label, *(str(v) for v in row))
    Console().print(matrix)
    if as_json:
        print(
            json.dumps(
                {
                    "accuracy": scores["accuracy"],
                    "macro_f1": scores["macro_f1"],
                    "per_class": scores["per_class"],
                }
            )
        )


@app.command()
def predict(text: Annotated[str, typer.Argument(help="A ticket's text.")]) -> None:
    """The cause the model in service gives one text, its confidence and the top 3."""
    from shared.classify import verdict
    from training import registry

    s = _settings()
    try:
        model = registry.load_current(s.registry_dir)
    except registry.ModelError as exc:
        raise _fail(str(exc)) from None
    proba = model.predict_proba([text])[0]
    ranked = sorted(zip(model.classes, proba, strict=True), key=lambda cp: -cp[1])
    cause, confidence = ranked[0]
    status = verdict(model, cause, float(confidence), s.confidence_threshold)
    print(f"{cause}\t{confidence:.3f}\t{status} (model {model.version})")
    for c, p in ranked[:3]:
        print(f"  {c}: {p:.3f}")


@app.command()
def flower(
    port: Annotated[int, typer.Option(help="The port Flower listens on.")] = 5555,
    address: Annotated[
        str, typer.Option(help="The address Flower binds (0.0.0.0: every interface).")
    ] = "127.0.0.1",
) -> None:
    """Run Celery Flower (workers, tasks, Prometheus /metrics) behind basic auth: user
    CAUSA_FLOWER_USER, password CAUSA_FLOWER_PASSWORD or a random one printed once."""
    from worker import flower as flower_ui

    s = load_settings()
    try:
        s.require_redis_url()
        creds = flower_ui.credentials(s)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    logs.configure(
        level=s.log_level,
        json=s.log_json,
        secrets=[*s.secret_values(), creds.password],  # a generated one too
        file=s.log_file,
        max_bytes=s.log_max_bytes,
        backups=s.log_backups,
    )
    flower_ui.run(s, creds, port, address)


@app.command()
def health() -> None:
    """Exit 0 when the database and the broker both answer within seconds, else 1 (one line
    per check; the healthcheck of causa's containers)."""
    from worker.health import CHECKS

    s = load_settings(retry_attempts=0)
    secrets = s.secret_values()
    logs.configure(level="ERROR", json=s.log_json, secrets=secrets)
    scrub = logs.scrubber(secrets)
    healthy = True
    for name, check in CHECKS.items():
        try:
            line = check(s)
        except Exception as exc:
            healthy = False
            line = " ".join(f"error: {type(exc).__name__}: {exc}".split())  # one line
        print(f"{name}: {scrub(line)}", flush=True)
    if not healthy:
        raise typer.Exit(1)


@app.command("notify-test")
def notify_test() -> None:
    """Send a test message to every configured channel."""
    import socket

    from shared import notify

    s = _settings()
    try:
        found = notify.channels(s)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if not found:
        console.print(
            f"[red]error:[/red] no notification channel configured: {notify.SETTINGS_HINT}"
        )
        raise typer.Exit(1)
    failed = 0
    for channel in found:
        ok = notify.deliver(
            channel,
            "[notify-test] causa can reach this channel",
            f"A test message from `causa notify-test` on {socket.gethostname()}.",
        )
        failed += not ok
        outcome = "ok" if ok else "FAILED"
        print(f"{channel.kind:<8} {channel.redacted:<12} {channel.source:<20} {outcome}")
    raise typer.Exit(1 if failed else 0)


@app.command("mlflow-ui")
def mlflow_ui(port: Annotated[int, typer.Option()] = 5000) -> None:
    """Open MLflow's UI on the embedded tracking store (127.0.0.1)."""
    import subprocess

    from training import tracking

    s = _settings()
    uri = tracking.tracking_uri(s.home, s.mlflow_tracking_uri)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        check=False,
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
