"""Classify a batch (claim, predict, write back: the heart of the worker) and cover the
backlog with tasks (beat's poll, the listener). Free of Celery: tasks go through the
runtime's queue."""

from __future__ import annotations

import hashlib
import logging
import math
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import structlog
from billiard.exceptions import SoftTimeLimitExceeded

from flows.runtime import Runtime
from shared import logs
from shared.breaker import Breaker
from shared.contract import Status
from shared.retry import is_transient
from shared.settings import Settings
from shared.store import Caller, Claimed, Failure, QueueStore, Result
from shared.text import clean

LOGGER = "causa.classify"
log = structlog.get_logger(LOGGER)
ALTERNATIVES = 3  # causes after the best one kept with each decision
# Beat enqueues at most this many tasks per poll, so a huge backlog fills the queue in steps
# instead of one burst; the next poll tops it up.
MAX_ENQUEUE_PER_POLL = 500


class Model(Protocol):
    @property
    def version(self) -> str: ...

    @property
    def classes(self) -> Sequence[str]: ...

    @property
    def thresholds(self) -> Mapping[str, float]: ...

    def predict_proba(self, texts: list[str]) -> np.ndarray: ...


class ModelSource(Protocol):
    def get(self) -> Model | None: ...


@dataclass(frozen=True)
class Outcome:
    results: list[Result]
    failures: list[Failure]


def verdict(
    model: Model, cause: str, confidence: float, threshold: float, never: Collection[str] = ()
) -> Status:
    """classified at or above the cause's threshold in force, needs_review below it (always,
    for a cause never applied automatically)."""
    applied_from = threshold_in_force(model.thresholds, cause, threshold, never)
    if applied_from is not None and confidence >= applied_from:
        return Status.CLASSIFIED
    return Status.NEEDS_REVIEW


def threshold_in_force(
    thresholds: Mapping[str, float], cause: str, threshold: float, never: Collection[str] = ()
) -> float | None:
    """The confidence from which `cause` is applied automatically: None for a cause in
    `never` (CAUSA_NEVER_AUTO), else the model's threshold for it, else the global one."""
    return None if cause in never else thresholds.get(cause, threshold)


def digest(text: str) -> str:
    """What the decision log keeps of the text the model saw: its sha256, not the text."""
    return hashlib.sha256(text.encode()).hexdigest()


def decide(
    claimed: Sequence[Claimed],
    model: Model,
    threshold: float,
    never: Collection[str] = (),
    explain: bool = True,
) -> Outcome:
    """Predict every claimed ticket. A ticket that breaks the model fails alone."""
    results: list[Result] = []
    failures: list[Failure] = []
    texts = {c.number: clean(c.text) for c in claimed}
    empty = [c for c in claimed if not texts[c.number]]
    for c in empty:
        results.append(
            Result(
                c.number,
                c.claim_token,
                Status.NEEDS_REVIEW,
                None,
                0.0,
                model.version,
                "empty text: nothing to classify",
                digest=digest(""),
            )
        )
    todo = [c for c in claimed if texts[c.number]]
    if not todo:
        return Outcome(results, failures)
    try:
        probabilities, explained = predictions(model, [texts[c.number] for c in todo], explain)
        rows = list(zip(todo, probabilities, explained, strict=True))
    except SoftTimeLimitExceeded:
        raise  # the task's time is up: no ticket's fault (the lease brings them back)
    except Exception:
        # One bad ticket must not take its batch-mates down: find it by predicting singly.
        rows = []
        for c in todo:
            try:
                (p,), (e,) = predictions(model, [texts[c.number]], explain)
                rows.append((c, p, e))
            except SoftTimeLimitExceeded:
                raise
            except Exception as exc:
                log.warning(
                    "ticket failed",
                    number=c.number,
                    model_version=model.version,
                    error=type(exc).__name__,
                )
                failures.append(
                    Failure(
                        c.number,
                        c.claim_token,
                        f"prediction failed: {type(exc).__name__}: {exc}"[:500],
                    )
                )
    classes = model.classes
    # Ranked for the whole batch at once: each text's cause and the next ones, with their odds
    matrix = np.asarray([p for _, p, _ in rows], dtype=float).reshape(len(rows), len(classes))
    order = np.argsort(-matrix, axis=1)[:, : ALTERNATIVES + 1]
    odds = np.take_along_axis(matrix, order, axis=1)
    for (c, _, explanation), ranked, chances in zip(
        rows, order.tolist(), odds.tolist(), strict=True
    ):
        cause, confidence = classes[ranked[0]], chances[0]
        results.append(
            Result(
                c.number,
                c.claim_token,
                verdict(model, cause, confidence, threshold, never),
                cause,
                round(confidence, 4),
                model.version,
                alternatives=[
                    {"cause": classes[i], "p": round(p, 4)}
                    for i, p in zip(ranked[1:], chances[1:], strict=True)
                ],
                explanation=explanation,
                digest=digest(texts[c.number]),
            )
        )
    return Outcome(results, failures)


def predictions(model: Model, texts: list[str], wanted: bool) -> tuple[Any, list[Any]]:
    """The probabilities, and per text its explanation ([{term, weight}]) when wanted and the
    model gives them (a model in service does, when training.fastpath compiled it), else
    None."""
    explain = getattr(model, "explain", None) if wanted else None
    if explain is None:
        return model.predict_proba(texts), [None] * len(texts)
    probabilities, explained = explain(texts)
    if explained is None:
        return probabilities, [None] * len(texts)
    return probabilities, [[{"term": t, "weight": w} for t, w in e] for e in explained]


def claim(
    store: QueueStore, caller: Caller, limit: int, numbers: Sequence[str] | None
) -> list[Claimed]:
    """Claim up to `limit` tickets. A claim the database refuses for its data (its reply too
    large: SQLSTATE 54000) committed nothing: it is tried again with half the batch, so the
    queue keeps flowing instead of failing the same way on every poll."""
    while True:
        try:
            return store.claim(caller, limit, numbers)
        except Exception as exc:
            if is_transient(exc) or limit == 1:
                raise
            log.warning(
                "claim refused: trying half the batch",
                limit=limit,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            limit //= 2


def classify_batch(
    store: QueueStore,
    models: ModelSource,
    settings: Settings,
    *,
    worker: str,
    limit: int,
    numbers: Sequence[str] | None = None,
) -> dict[str, object]:
    """Claim up to `limit` pending tickets, classify them, write the results in one call.

    Without a usable model nothing is claimed: the tickets stay pending, the error is logged.
    """
    model = models.get()
    if model is None:
        log.error("no model: tickets stay pending", hint="train one with `causa train --bootstrap`")
        return {"claimed": 0, "model_version": None}
    # Every line of this batch says which worker and model (a task adds its id); they stay
    # bound until the task ends, so an error reported up the stack carries them too.
    structlog.contextvars.bind_contextvars(worker=worker, model_version=model.version)
    task = structlog.contextvars.get_contextvars().get("task_id")
    # One request id for this batch's calls: a retried call (its reply was lost) gets the
    # first one's answer, and a lost claim reply strands nothing and burns no attempt.
    caller = Caller(worker, uuid.uuid4().hex, task)
    claimed = claim(store, caller, limit, numbers)
    if not claimed:
        return {"claimed": 0, "model_version": model.version}
    # Hidden from logs and Sentry while in flight; kept on an error for the report up the stack.
    logs.hide_ticket_texts(c.text for c in claimed)
    outcome = decide(
        claimed,
        model,
        settings.confidence_threshold,
        settings.never_auto_causes,
        settings.explain,
    )
    try:
        applied = store.apply(caller, outcome.results)
    except SoftTimeLimitExceeded:
        raise  # not the write's fault: the lease brings the tickets back
    except Exception as exc:
        if is_transient(exc):
            raise  # retried already; the lease brings the tickets back
        # Refused for good (a 4xx, a missing function): say why on each ticket, count the try.
        reason = f"writing the result failed: {type(exc).__name__}: {exc}"[:500]
        store.fail(caller, [Failure(r.number, r.claim_token, reason) for r in outcome.results])
        raise
    failed = store.fail(caller, outcome.failures)
    statuses = [r.status for r in outcome.results]
    summary: dict[str, object] = {
        "claimed": len(claimed),
        "classified": statuses.count(Status.CLASSIFIED),
        "needs_review": statuses.count(Status.NEEDS_REVIEW),
        "failed": failed["failed"],
        "retrying": failed["retrying"],
        "stale": applied["stale"] + failed["stale"],
        "model_version": model.version,
    }
    # (asked of the standard logger that structlog's filter asks: not 1,000 events dropped)
    for r in outcome.results if logging.getLogger(LOGGER).isEnabledFor(logging.DEBUG) else ():
        log.debug(
            "ticket classified",
            number=r.number,
            status=r.status,
            cause=r.predicted,
            confidence=r.confidence,
            model_version=r.model_version,
        )
    logs.forget_ticket_texts()
    # counts and a version, no text: logged once the texts are no longer in flight, so that
    # nothing works out the forms of a batch's texts to scrub them from this line
    if applied["stale"] or failed["stale"]:
        log.warning(
            "stale writes ignored: lease expired or a person labelled the ticket", **summary
        )
    else:
        log.info("batch classified", **summary)
    return summary


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


def classify_pending(
    rt: Runtime, limit: int | None = None, numbers: Sequence[str] | None = None
) -> dict[str, object]:
    """One batch, unless the breaker holds batches back (the probe enqueues again once the
    database is back)."""
    if rt.breaker.is_open():
        return {"claimed": 0, "skipped": "the database is unreachable"}
    try:
        with guarded(rt.breaker):
            return classify_batch(
                rt.store,
                rt.models,
                rt.settings,
                worker=rt.worker,
                limit=limit or rt.settings.batch_size,
                numbers=numbers,
            )
    except SoftTimeLimitExceeded:
        # The task ends cleanly: its tickets stay claimed until their lease expires, then
        # are claimed again (alone, each attempt counted). Counted as a timeout, not a failure.
        logs.forget_ticket_texts()
        log.warning(
            "batch timed out: its tickets come back when their lease expires",
            soft_time_limit_s=rt.settings.soft_time_limit,
            hint="a slow model or database: raise CAUSA_TASK_TIME_LIMIT or lower the batch size",
        )
        return {"claimed": None, "timed_out": True}


def tasks_needed(pending: int, retry: int, batch: int, queued: int) -> int:
    """One task per batch of fresh tickets and one per ticket to retry (they go alone),
    less the tasks already waiting, which will claim the same tickets."""
    return max(0, min(MAX_ENQUEUE_PER_POLL, retry + math.ceil(pending / batch) - queued))


def enqueue(rt: Runtime, pending: int, retry: int = 0) -> int:
    """Enqueue the classify tasks `pending` fresh and `retry` reclaimed tickets need."""
    n = tasks_needed(pending, retry, rt.settings.batch_size, rt.queue.waiting())
    rt.queue.classify(n)
    return n


def cover_backlog(rt: Runtime) -> dict[str, Any]:
    """Beat's safety net: cover the backlog (missed events, expired leases) with tasks.
    While the database fails, only the caller that wins the probe touches it."""
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
    return {**counts, "enqueued": enqueue(rt, counts["pending"], counts["retry"])}


def on_announced(rt: Runtime, announced: int) -> int:
    """The listener's callback: tasks for `announced` new tickets, or (0, on connect) for
    whatever arrived while it was away."""
    return enqueue(rt, announced) if announced else int(cover_backlog(rt)["enqueued"])
