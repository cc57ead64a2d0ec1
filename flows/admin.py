"""What an operator triggers (`causa admin ...`, Flower, the HTTP API later): each admin
flow is idempotent, and `run` logs and records who asked in causa.events."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from flows.classify import enqueue
from flows.drift import drift_report
from flows.runtime import Runtime
from flows.training import retrain, roll_back
from shared.contract import DECIDED, Event, Status
from training.registry import LABEL, VERSION

log = structlog.get_logger("causa.admin")
UNKNOWN = "unknown (Flower or the API; pass triggered_by)"
# Whoever can reach the broker can send an admin task: every argument is checked here, in the
# flow the task runs, not only by the command line.
MAX_NUMBERS = 10_000  # tickets one request may name
MAX_TEXT = 200  # characters of a ticket number or of triggered_by


def _shown(value: Any) -> str:
    return repr(value)[:80]


def checked_numbers(numbers: Any) -> list[str] | None:
    """Ticket numbers as given to an admin flow: a list of 1 to MAX_NUMBERS short strings."""
    if numbers is None:
        return None
    if not isinstance(numbers, list | tuple) or not all(
        isinstance(n, str) and 0 < len(n) <= MAX_TEXT for n in numbers
    ):
        raise ValueError(
            f"numbers must be a list of ticket numbers (strings of 1-{MAX_TEXT} characters),"
            f" not {_shown(numbers)}"
        )
    if len(numbers) > MAX_NUMBERS:
        raise ValueError(
            f"numbers names {len(numbers)} tickets; at most {MAX_NUMBERS} per request: split it"
        )
    return list(numbers)


def checked_version(name: str, value: Any, *, revision: bool = False) -> str | None:
    """A model version argument: None, or a version as `causa models` lists them (with
    `revision`, also one thresholds revision of it: VERSION.rN)."""
    if value is None or (isinstance(value, str) and (LABEL if revision else VERSION).match(value)):
        return value
    revisions = " or one of its thresholds revisions such as 20261130T020000Z-ab12cd34.r1"
    raise ValueError(
        f"{name} must be a model version such as 20261130T020000Z-ab12cd34"
        f"{revisions if revision else ''} (see `causa models`), not {_shown(value)}"
    )


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
    numbers = checked_numbers(numbers)
    model_version = checked_version("model_version", model_version)
    if not numbers and not model_version:
        raise ValueError("reclassify needs numbers or model_version: which tickets?")
    return _requeue(rt, DECIDED, numbers, model_version)


def requeue_failed(rt: Runtime, numbers: Sequence[str] | None = None) -> dict[str, Any]:
    """Replay the dead letter: failed tickets (all, or the given ones) go back to the queue
    with their attempts reset."""
    return _requeue(rt, [Status.FAILED], checked_numbers(numbers), None)


def purge_backups(rt: Runtime, keep: int | None = None) -> dict[str, Any]:
    """Delete all but the newest `keep` model backups (default CAUSA_KEEP_BACKUPS); at least
    one is always kept."""
    if keep is not None and type(keep) is not int:  # the registry refuses fewer than 1
        raise ValueError(f"keep must be a whole number of backups, not {_shown(keep)}")
    return {"removed": rt.registry.prune(keep)}


def rollback(
    rt: Runtime, version: str | None = None, replacing: str | None = None, *, trigger: str
) -> dict[str, Any]:
    """Put a backup in service (a version that does not exist is refused by the registry)."""
    version = checked_version("version", version, revision=True)
    return roll_back(rt, version, checked_version("replacing", replacing, revision=True), trigger)


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
    if not isinstance(triggered_by, str) or not 0 < len(triggered_by) <= MAX_TEXT:
        raise ValueError(
            f"triggered_by must say who asked, in 1-{MAX_TEXT} characters,"
            f" not {_shown(triggered_by)}"
        )
    log.info("admin task started", admin_task=action, triggered_by=triggered_by, **kwargs)
    result = ACTIONS[action](rt, trigger=f"admin: {triggered_by}", **kwargs)
    rt.store.record_event(
        Event.ADMIN, {"task": action, "triggered_by": triggered_by, "args": kwargs, **result}
    )
    log.info("admin task done", admin_task=action, triggered_by=triggered_by, **result)
    return result


def submit(rt: Runtime, action: str, triggered_by: str, **kwargs: Any) -> dict[str, Any]:
    """Enqueue an admin task for the workers (the HTTP API): its arguments checked first, its
    run recorded as queued under its task id; the task records the rest (`record`)."""
    if action not in ACTIONS:
        raise ValueError(f"no admin action {action!r}: one of {', '.join(sorted(ACTIONS))}")
    checked_numbers(kwargs.get("numbers"))
    checked_version("model_version", kwargs.get("model_version"))  # what decided tickets
    for name in ("version", "replacing"):  # a model to put back, or the one in service
        checked_version(name, kwargs.get(name), revision=True)
    task_id = rt.queue.admin(action, {**kwargs, "triggered_by": triggered_by})
    rt.store.task_run(task_id, action, "queued", by=triggered_by)
    return {"task_id": task_id, "action": action, "state": "queued"}


def record(
    rt: Runtime,
    task_id: str,
    action: str,
    state: str,
    summary: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Note what became of an admin task (started, succeeded, failed) for `GET /v1/tasks`;
    a failure to note it is logged, never the task's failure."""
    try:
        as_json = json.loads(json.dumps(summary, default=str)) if summary is not None else None
        rt.store.task_run(task_id, action, state, summary=as_json, error=error)
    except Exception as exc:
        log.warning(
            "admin task state not recorded",
            task_id=task_id,
            state=state,
            error=f"{type(exc).__name__}: {exc}"[:300],
        )
