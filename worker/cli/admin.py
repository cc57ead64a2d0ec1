"""`causa admin ...`: operator flows, run here (the same flow a worker's task runs) or sent
to the workers by name with --enqueue."""

from __future__ import annotations

import getpass
import json
import socket
from typing import Annotated, Any

import typer

from training.registry import ModelError, ModelRegistry
from worker import names
from worker.cli.common import console, fail, ready_to_run, runtime

app = typer.Typer(
    no_args_is_help=True,
    help="Operator tasks (also in Flower: POST /api/task/async-apply/tasks.admin.<name>)."
    " Each runs here and prints its result; --enqueue sends it to the workers instead.",
)
EnqueueOption = Annotated[
    bool,
    typer.Option("--enqueue", help="Send to the workers (see Flower) instead of running here."),
]
NumbersArgument = Annotated[list[str] | None, typer.Argument(help="Ticket numbers.")]


def _run(action: str, enqueue: bool, **kwargs: Any) -> None:
    """Run the admin flow `action` here, or send tasks.admin.<action> to the workers."""
    from flows import admin  # lazy: start-up time of the other commands

    s = ready_to_run()
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    triggered_by = f"causa admin, {getpass.getuser()}@{socket.gethostname()}"
    if enqueue:
        from worker.app import app as celery  # lazy: start-up time of the other commands

        sent = celery.send_task(
            names.admin(action), kwargs={**kwargs, "triggered_by": triggered_by}
        )
        console.print(f"sent {names.admin(action)}: task id {sent.id} (follow it in Flower)")
        return
    rt = runtime(s)
    try:
        result = admin.run(rt, action, triggered_by, **kwargs)
    except (ValueError, ModelError) as exc:
        raise fail(str(exc)) from None
    finally:
        rt.close()
    print(json.dumps(result, default=str))


@app.command("retrain")
def retrain(enqueue: EnqueueOption = False) -> None:
    """Train now; promote the challenger if it wins (skipped while a training runs)."""
    _run("retrain", enqueue)


@app.command("reclassify")
def reclassify(
    numbers: NumbersArgument = None,
    model_version: Annotated[
        str | None, typer.Option(help="Every ticket this model version decided.")
    ] = None,
    enqueue: EnqueueOption = False,
) -> None:
    """Classify tickets again: the given numbers, or all decided by --model-version."""
    _run("reclassify", enqueue, numbers=numbers or None, model_version=model_version)


@app.command("requeue-failed")
def requeue_failed(numbers: NumbersArgument = None, enqueue: EnqueueOption = False) -> None:
    """Replay the dead letter: failed tickets (all, or the given ones) back to the queue."""
    _run("requeue_failed", enqueue, numbers=numbers or None)


@app.command("rollback")
def rollback(
    version: Annotated[str | None, typer.Argument(help="Default: the newest backup.")] = None,
    enqueue: EnqueueOption = False,
) -> None:
    """Put a backup model in service, once: repeating the command changes nothing more."""
    current = ModelRegistry.from_settings(ready_to_run()).current()
    replacing = current.label if current else None
    _run("rollback", enqueue, version=version, replacing=replacing)


@app.command("drift")
def drift(enqueue: EnqueueOption = False) -> None:
    """Compare recent predictions with the model's holdout now, store and print the report."""
    _run("drift_report", enqueue)


@app.command("purge-backups")
def purge_backups(
    keep: Annotated[int | None, typer.Option(help="Default: CAUSA_KEEP_BACKUPS.")] = None,
    enqueue: EnqueueOption = False,
) -> None:
    """Delete all but the newest model backups."""
    _run("purge_backups", enqueue, keep=keep)
