"""Classification tasks. Thin: parse arguments, call one function, return a small summary."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from amqp.exceptions import ChannelError

from shared.breaker import Breaker
from shared.classify import classify_batch
from shared.retry import is_transient
from worker.app import QUEUE, app
from worker.runtime import runtime

log = structlog.get_logger("causa.classify")

# Beat enqueues at most this many tasks per poll, so a huge backlog fills the queue in steps
# instead of one burst; the next poll tops it up.
MAX_ENQUEUE_PER_POLL = 500


@contextmanager
def guarded(breaker: Breaker, *, probe: bool = False) -> Iterator[None]:
    """Report the outcome of a database call to the breaker: a transient failure (after its
    retries) opens it, a success closes it."""
    try:
        yield
    except Exception as exc:
        if is_transient(exc):
            breaker.failure(exc, probe=probe)
        raise
    breaker.success()


@app.task(name="tasks.classify.classify_pending")
def classify_pending(
    limit: int | None = None, numbers: list[str] | None = None
) -> dict[str, object]:
    rt = runtime()
    if rt.breaker.is_open():  # the probe (poll_pending) will enqueue again once it is back
        return {"claimed": 0, "skipped": "the database is unreachable"}
    with guarded(rt.breaker):
        return classify_batch(
            rt.store,
            rt.models,
            rt.settings,
            worker=rt.worker,
            limit=limit or rt.settings.batch_size,
            numbers=numbers,
        )


def queued_tasks() -> int:
    """Tasks waiting in the queue (not yet taken by a worker process)."""
    with app.connection_for_read() as conn:
        try:
            return int(conn.default_channel.queue_declare(queue=QUEUE, passive=True).message_count)
        except ChannelError:  # Redis keeps no empty queue: nothing is waiting
            return 0


def tasks_needed(pending: int, retry: int, batch: int, queued: int) -> int:
    """One task per batch of fresh tickets and one per ticket to retry (they go alone),
    less the tasks already waiting, which will claim the same tickets."""
    return max(0, min(MAX_ENQUEUE_PER_POLL, retry + math.ceil(pending / batch) - queued))


def enqueue(pending: int, retry: int = 0) -> int:
    n = tasks_needed(pending, retry, runtime().settings.batch_size, queued_tasks())
    for _ in range(n):
        classify_pending.delay()
    return n


@app.task(name="tasks.classify.poll_pending")
def poll_pending() -> dict[str, Any]:
    """Beat's safety net: cover the backlog (missed events, expired leases) with tasks.
    While the database fails, only the poll that wins the probe touches it."""
    rt = runtime()
    # A probe holds its right until it ends, at most as long as a task may run.
    allowed = rt.breaker.allow(hold=rt.settings.task_time_limit)
    if allowed is None:
        return {"enqueued": 0, "skipped": "the database is unreachable; another poll probes"}
    try:
        with guarded(rt.breaker, probe=allowed == "probe"):
            counts = rt.store.pending_count()
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning(
            "poll failed: the database is unreachable", error=f"{type(exc).__name__}: {exc}"
        )
        return {"enqueued": 0, "skipped": "the database is unreachable"}
    return {**counts, "enqueued": enqueue(counts["pending"], counts["retry"])}
