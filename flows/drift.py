"""The drift report as a flow: gather the recent decisions of the model in service, compare
them with its holdout (training/drift.py, pure statistics), store the report, notify on
drift and, with CAUSA_DRIFT_RETRAIN, enqueue a training."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from flows.runtime import Runtime
from shared.contract import Event
from shared.notify import Notify
from shared.settings import Settings
from shared.store import DecisionStore
from shared.text import clean
from training.drift import (
    DRIFT,
    NO_MODEL,
    RECENT_LIMIT,
    UNKNOWN_JUMP,
    compare,
    rounded,
    unknown_share,
)
from training.registry import LoadedModel

log = structlog.get_logger("causa.drift")


def report(
    store: DecisionStore, model: LoadedModel, settings: Settings, now: datetime | None = None
) -> dict[str, Any]:
    """The drift report of the model in service over the recent window, JSON-safe. Only the
    decisions of this model version count; `other_versions` says how many were left aside."""
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=settings.drift_window_hours)
    decisions = store.recent(since.isoformat(), RECENT_LIMIT)
    mine = [d for d in decisions if d.get("model_version") == model.version]
    texts = [clean(d.get("text")) for d in mine if d.get("predicted") is not None]
    compared = compare(
        model.info.reference,
        mine,
        unknown_share(model.pipeline, texts),
        threshold=settings.drift_threshold,
        min_tickets=settings.drift_min_tickets,
    )
    return {
        "verdict": compared.verdict,
        "reason": compared.reason,
        "model_version": model.version,
        "tickets": compared.tickets,
        "psi": rounded(compared.psi),
        "other_versions": len(decisions) - len(mine),
        "window_hours": settings.drift_window_hours,
        "since": since.isoformat(timespec="seconds"),
        # the store returns at most RECENT_LIMIT decisions, the newest: a sample of the window
        "limited": len(decisions) >= RECENT_LIMIT,
        "rule": {"psi_above": settings.drift_threshold, "unknown_words_jump": UNKNOWN_JUMP},
        "reference_tickets": model.info.reference.get("tickets"),
        **{k: v for k, v in compared.as_dict().items() if k not in ("verdict", "reason", "psi")},
    }


def check(
    store: DecisionStore,
    model: LoadedModel | None,
    settings: Settings,
    notifier: Notify,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Compute the report, store it as a "drift" event, notify when the verdict is drift.
    Every run is stored, so `causa status` shows the latest one, whatever it says."""
    if model is None:
        result: dict[str, Any] = {
            "verdict": NO_MODEL,
            "reason": "no model in service: train one with `causa train --bootstrap`",
            "model_version": None,
            "tickets": 0,
            "psi": None,
        }
    else:
        result = report(store, model, settings, now)
    store.record_event(Event.DRIFT, result)
    if result["verdict"] == DRIFT:
        notifier.send(
            "drift detected",
            f"model {result['model_version']}, PSI {result['psi']}",
            notification_text(result, retrain=settings.drift_retrain),
            level="warning",
            key="drift",
            # every report over one window sees the same drift: say it once per window
            every=settings.drift_window_hours * 3600,
        )
    return result


def notification_text(result: Mapping[str, Any], *, retrain: bool) -> str:
    """The drift report in a few lines: the rule that fired, the numbers, what to do."""
    lines = [
        result["reason"],
        f"{result['tickets']} decisions since {result['since']}",
    ]
    for name in ("mean_confidence", "needs_review", "unknown_words"):
        c = result[name]
        if c["reference"] is not None and c["recent"] is not None:
            lines.append(f"{name.replace('_', ' ')}: {c['reference']:.1%} → {c['recent']:.1%}")
    moved = sorted(
        result["classes"].items(),
        key=lambda kv: -abs((kv[1]["recent"] or 0.0) - (kv[1]["reference"] or 0.0)),
    )[:3]
    for cls, v in moved:
        lines.append(f"class {cls}: {v['reference'] or 0.0:.1%} → {v['recent'] or 0.0:.1%}")
    lines.append(
        "retraining started (CAUSA_DRIFT_RETRAIN)"
        if retrain
        else "label recent tickets and retrain (`causa train`), or set CAUSA_DRIFT_RETRAIN=true"
    )
    return "\n".join(lines)


def drift_report(rt: Runtime, trigger: str = "schedule") -> dict[str, Any]:
    """Compare the model's recent decisions with its holdout; store the report, notify on
    drift and, with CAUSA_DRIFT_RETRAIN, enqueue a retraining. Beat and `causa admin` call it."""
    result = check(rt.store, rt.models.get(), rt.settings, rt.notifier)
    retraining = result["verdict"] == DRIFT and rt.settings.drift_retrain
    if retraining:
        rt.queue.retrain("drift")
    summary = {
        "verdict": result["verdict"],
        "psi": result["psi"],
        "tickets": result["tickets"],
        "model_version": result["model_version"],
        "retrain": retraining,
        "trigger": trigger,
    }
    log.info("drift report", reason=result["reason"], **summary)
    return summary
