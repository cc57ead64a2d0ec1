"""Admin tasks: what an operator triggers from `causa admin ...` or Flower's API.

Each is idempotent (a repeated or redelivered request changes nothing more) and logs and
records who or what triggered it (`triggered_by`, free text; `causa admin` fills it in).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import structlog

from tasks.classify import enqueue
from tasks.training import roll_back, train_and_report
from training import registry
from worker.app import TRAINING_QUEUE, app
from worker.runtime import runtime

log = structlog.get_logger("causa.admin")
UNKNOWN = "unknown (Flower or the API; pass triggered_by)"

AdminFn = Callable[..., dict[str, Any]]


def admin_task(name: str, **options: Any) -> Callable[[AdminFn], Any]:
    """A Celery task named tasks.admin.<name> that logs and records who triggered it."""

    def wrap(fn: AdminFn) -> Any:
        @functools.wraps(fn)
        def run(*args: Any, triggered_by: str = UNKNOWN, **kwargs: Any) -> dict[str, Any]:
            log.info("admin task started", admin_task=name, triggered_by=triggered_by, **kwargs)
            result = fn(*args, triggered_by=triggered_by, **kwargs)
            runtime().store.record_event(
                "admin", {"task": name, "triggered_by": triggered_by, "args": kwargs, **result}
            )
            log.info("admin task done", admin_task=name, triggered_by=triggered_by, **result)
            return result

        return app.task(name=f"tasks.admin.{name}", **options)(run)

    return wrap


def _requeue(
    statuses: list[str], numbers: list[str] | None, model_version: str | None
) -> dict[str, Any]:
    n = runtime().store.requeue(statuses, numbers, model_version)
    return {"requeued": n, "enqueued": enqueue(n) if n else 0}


@admin_task("retrain", queue=TRAINING_QUEUE)
def retrain(*, triggered_by: str) -> dict[str, Any]:
    """Train now (skipped while another training runs)."""
    return train_and_report(f"admin: {triggered_by}")


@admin_task("reclassify")
def reclassify(
    *, triggered_by: str, numbers: list[str] | None = None, model_version: str | None = None
) -> dict[str, Any]:
    """Classify again the given tickets, or every ticket a given model version decided (after
    a rollback). People's labels are never touched."""
    if not numbers and not model_version:
        raise ValueError("reclassify needs numbers or model_version: which tickets?")
    return _requeue(["classified", "needs_review"], numbers, model_version)


@admin_task("requeue_failed")
def requeue_failed(*, triggered_by: str, numbers: list[str] | None = None) -> dict[str, Any]:
    """Replay the dead letter: failed tickets (all, or the given ones) go back to the queue
    with their attempts reset."""
    return _requeue(["failed"], numbers, None)


@admin_task("rollback", queue=TRAINING_QUEUE)
def rollback(
    *, triggered_by: str, version: str | None = None, replacing: str | None = None
) -> dict[str, Any]:
    """Put a backup in service: `version`, or the newest backup. With `replacing` (the
    version the operator saw in service), nothing happens once that one is gone."""
    return roll_back(version, replacing, trigger=f"admin: {triggered_by}")


@admin_task("drift_report")
def drift_report(*, triggered_by: str) -> dict[str, Any]:
    """Compare the recent predictions with the current model's holdout now."""
    from tasks.monitoring import report_drift

    return report_drift()


@admin_task("purge_backups")
def purge_backups(*, triggered_by: str, keep: int | None = None) -> dict[str, Any]:
    """Delete all but the newest `keep` model backups (default CAUSA_KEEP_BACKUPS)."""
    s = runtime().settings
    removed = registry.prune_backups(s.registry_dir, s.keep_backups if keep is None else keep)
    return {"removed": removed}
