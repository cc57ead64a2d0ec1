"""Classify one batch: claim, predict, write back. The heart of the worker, free of Celery."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import structlog

from shared import logs
from shared.retry import is_transient
from shared.settings import Settings
from shared.store import Claimed, Failure, Result, Status, TicketStore
from shared.text import clean

log = structlog.get_logger("causa.classify")


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


def verdict(model: Model, cause: str, confidence: float, threshold: float) -> Status:
    """classified at or above the class's threshold (the global one where the model has
    none), needs_review below it."""
    return "classified" if confidence >= model.thresholds.get(cause, threshold) else "needs_review"


def decide(claimed: Sequence[Claimed], model: Model, threshold: float) -> Outcome:
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
                "needs_review",
                None,
                0.0,
                model.version,
                "empty text: nothing to classify",
            )
        )
    todo = [c for c in claimed if texts[c.number]]
    if not todo:
        return Outcome(results, failures)
    try:
        probabilities = model.predict_proba([texts[c.number] for c in todo])
        rows = list(zip(todo, probabilities, strict=True))
    except Exception:
        # One bad ticket must not take its batch-mates down: find it by predicting singly.
        rows = []
        for c in todo:
            try:
                rows.append((c, model.predict_proba([texts[c.number]])[0]))
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
    for c, p in rows:
        best = int(np.argmax(p))
        cause, confidence = classes[best], float(p[best])
        results.append(
            Result(
                c.number,
                c.claim_token,
                verdict(model, cause, confidence, threshold),
                cause,
                round(confidence, 4),
                model.version,
            )
        )
    return Outcome(results, failures)


def classify_batch(
    store: TicketStore,
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
    claimed = store.claim(worker, limit, numbers)
    if not claimed:
        return {"claimed": 0, "model_version": model.version}
    # Hidden from logs and Sentry while in flight; kept on an error for the report up the stack.
    logs.hide_ticket_texts(c.text for c in claimed)
    outcome = decide(claimed, model, settings.confidence_threshold)
    try:
        applied = store.apply(outcome.results)
    except Exception as exc:
        if is_transient(exc):
            raise  # retried already; the lease brings the tickets back
        # Refused for good (a 4xx, a missing function): say why on each ticket, count the try.
        reason = f"writing the result failed: {type(exc).__name__}: {exc}"[:500]
        store.fail([Failure(r.number, r.claim_token, reason) for r in outcome.results])
        raise
    failed = store.fail(outcome.failures)
    statuses = [r.status for r in outcome.results]
    summary: dict[str, object] = {
        "claimed": len(claimed),
        "classified": statuses.count("classified"),
        "needs_review": statuses.count("needs_review"),
        "failed": failed["failed"],
        "retrying": failed["retrying"],
        "stale": applied["stale"] + failed["stale"],
        "model_version": model.version,
    }
    if applied["stale"] or failed["stale"]:
        log.warning(
            "stale writes ignored: lease expired or a person labelled the ticket", **summary
        )
    else:
        log.info("batch classified", **summary)
    for r in outcome.results:
        log.debug(
            "ticket classified",
            number=r.number,
            status=r.status,
            cause=r.predicted,
            confidence=r.confidence,
            model_version=r.model_version,
        )
    logs.forget_ticket_texts()
    return summary
