"""What an operator triggers (`causa admin ...`, Flower, the HTTP API later): each admin
flow is idempotent, and `run` logs and records who asked in causa.events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import structlog

from flows.classify import enqueue
from flows.drift import drift_report
from flows.runtime import Runtime
from flows.training import retrain, roll_back
from shared.contract import DECIDED, Event, Status

log = structlog.get_logger("causa.admin")
UNKNOWN = "unknown (Flower or the API; pass triggered_by)"


def _requeue(
    rt: Runtime, statuses: Sequence[str], numbers: Sequence[str] | None, version: str | None
) -> dict[str, Any]:
    n = rt.store.requeue(statuses, numbers, version)
    return {"requeued": n, "enqueued": enqueue(rt, n) if n else 0}


def reclassify(
    rt: Runtime, numbers: Sequence[str] | None = None, model_version: str | None = None
) -> dict[str, Any]:
    """Classify again the given tickets, or every ticket a given model version decided (after
    a rollback). People's labels are never touched."""
    if not numbers and not model_version:
        raise ValueError("reclassify needs numbers or model_version: which tickets?")
    return _requeue(rt, DECIDED, numbers, model_version)


def requeue_failed(rt: Runtime, numbers: Sequence[str] | None = None) -> dict[str, Any]:
    """Replay the dead letter: failed tickets (all, or the given ones) go back to the queue
    with their attempts reset."""
    return _requeue(rt, [Status.FAILED], numbers, None)


def purge_backups(rt: Runtime, keep: int | None = None) -> dict[str, Any]:
    """Delete all but the newest `keep` model backups (default CAUSA_KEEP_BACKUPS)."""
    return {"removed": rt.registry.prune(keep)}


def rollback(
    rt: Runtime, version: str | None = None, replacing: str | None = None, *, trigger: str
) -> dict[str, Any]:
    return roll_back(rt, version, replacing, trigger)


ACTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "retrain": lambda rt, *, trigger: retrain(rt, trigger),
    "reclassify": lambda rt, *, trigger, **kw: reclassify(rt, **kw),
    "requeue_failed": lambda rt, *, trigger, **kw: requeue_failed(rt, **kw),
    "rollback": rollback,
    "drift_report": lambda rt, *, trigger: drift_report(rt, trigger),
    "purge_backups": lambda rt, *, trigger, **kw: purge_backups(rt, **kw),
}


def run(rt: Runtime, action: str, triggered_by: str = UNKNOWN, **kwargs: Any) -> dict[str, Any]:
    """Run one admin action, logged before and after and recorded with who asked."""
    log.info("admin task started", admin_task=action, triggered_by=triggered_by, **kwargs)
    result = ACTIONS[action](rt, trigger=f"admin: {triggered_by}", **kwargs)
    rt.store.record_event(
        Event.ADMIN, {"task": action, "triggered_by": triggered_by, "args": kwargs, **result}
    )
    log.info("admin task done", admin_task=action, triggered_by=triggered_by, **result)
    return result
