"""Admin tasks: what an operator triggers from Flower's API (`causa admin --enqueue` sends
them too). Each is idempotent and records who triggered it (`triggered_by`, free text)."""

from __future__ import annotations

from typing import Any

from celery import signals

from flows import admin, training
from worker import names
from worker.app import app

PREFIX = names.admin("")


# Every admin task's run is recorded by its task id (Celery keeps no results): started, then
# succeeded with its summary or failed with its error.
@signals.task_prerun.connect
def _started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id and getattr(task, "name", "").startswith(PREFIX):
        admin.record(app.runtime, task_id, task.name.removeprefix(PREFIX), "started")


@signals.task_success.connect
def _succeeded(sender: Any = None, result: Any = None, **_: Any) -> None:
    if sender is not None and sender.name.startswith(PREFIX):
        summary = result if isinstance(result, dict) else {"result": result}
        admin.record(
            app.runtime, sender.request.id, sender.name.removeprefix(PREFIX), "succeeded", summary
        )


@signals.task_failure.connect
def _failed(
    sender: Any = None, task_id: str | None = None, exception: Any = None, **_: Any
) -> None:
    if task_id and sender is not None and sender.name.startswith(PREFIX):
        error = f"{type(exception).__name__}: {exception}"
        admin.record(app.runtime, task_id, sender.name.removeprefix(PREFIX), "failed", error=error)


@app.task(
    name=names.admin("retrain"),
    time_limit=training.TRAINING_TIME_LIMIT_S,
    soft_time_limit=training.TRAINING_SOFT_LIMIT_S,
)
def retrain(*, triggered_by: str = admin.UNKNOWN) -> dict[str, Any]:
    """Train now (skipped while another training runs)."""
    return admin.run(app.runtime, "retrain", triggered_by)


@app.task(name=names.admin("reclassify"))
def reclassify(
    *,
    triggered_by: str = admin.UNKNOWN,
    numbers: list[str] | None = None,
    model_version: str | None = None,
) -> dict[str, Any]:
    """Classify again the given tickets, or every ticket a given model version decided."""
    return admin.run(
        app.runtime, "reclassify", triggered_by, numbers=numbers, model_version=model_version
    )


@app.task(name=names.admin("requeue_failed"))
def requeue_failed(
    *, triggered_by: str = admin.UNKNOWN, numbers: list[str] | None = None
) -> dict[str, Any]:
    """Replay the dead letter: failed tickets back to the queue with fresh attempts."""
    return admin.run(app.runtime, "requeue_failed", triggered_by, numbers=numbers)


@app.task(name=names.admin("rollback"))
def rollback(
    *, triggered_by: str = admin.UNKNOWN, version: str | None = None, replacing: str | None = None
) -> dict[str, Any]:
    """Put a backup in service, once: with `replacing`, nothing happens once that is gone."""
    return admin.run(app.runtime, "rollback", triggered_by, version=version, replacing=replacing)


@app.task(name=names.admin("drift_report"))
def drift_report(*, triggered_by: str = admin.UNKNOWN) -> dict[str, Any]:
    """Compare the recent predictions with the current model's holdout now."""
    return admin.run(app.runtime, "drift_report", triggered_by)


@app.task(name=names.admin("purge_backups"))
def purge_backups(*, triggered_by: str = admin.UNKNOWN, keep: int | None = None) -> dict[str, Any]:
    """Delete all but the newest `keep` model backups (default CAUSA_KEEP_BACKUPS)."""
    return admin.run(app.runtime, "purge_backups", triggered_by, keep=keep)
