"""Retrain and roll back: the model in service changes only through these."""

from __future__ import annotations

from typing import Any

import structlog

from flows.runtime import Runtime
from shared.contract import Event
from shared.settings import Settings
from shared.store import LabelStore
from training import dataset, tracking
from training.compare import comparison_text
from training.registry import ModelRegistry
from training.train import retrain as train_challenger

log = structlog.get_logger("causa.training")

# A training takes minutes (10 at most by design); these limits of the training tasks stop a
# runaway one and stay below the broker's visibility timeout, so Redis never hands the same
# training to a second worker while the first still runs.
TRAINING_TIME_LIMIT_S = 1800
TRAINING_SOFT_LIMIT_S = 1700
# One training at a time across every worker: the lock outlives the hard time limit.
TRAINING_LOCK = "causa:lock:training"


def retrain(
    rt: Runtime,
    trigger: str,
    csv: dataset.Csv | None = None,
    *,
    tickets: bool = True,
    snapshot: str | None = None,
) -> dict[str, Any]:
    """Train on the tickets people labelled (and `csv`'s rows; `tickets=False`: the CSV
    alone; `snapshot`: the data set of that digest, fitting the recipe recorded with it),
    promote the challenger if it wins; record the decision and notify. Skipped (not
    queued) while another training runs. Every door takes this one: the schedule, `causa
    admin retrain`, Flower, drift, `causa train`."""
    lock = rt.redis.lock(TRAINING_LOCK, timeout=TRAINING_TIME_LIMIT_S + 60, blocking=False)
    if not lock.acquire():
        log.info("training skipped: another one is running", trigger=trigger)
        return {"decision": "skipped", "reason": "another training is running"}
    try:
        rt.notifier.send("training started", f"trigger: {trigger}", "")
        try:
            examples, replay = _data(rt.settings, rt.store if tickets else None, csv, snapshot)
            report = train_challenger(
                examples, rt.settings, rt.registry, trigger=trigger, replay=replay
            )
        except Exception as exc:
            rt.notifier.send(
                "training failed",
                f"{type(exc).__name__} ({trigger})",
                f"trigger: {trigger}\n{type(exc).__name__}: {exc}",
                level="failure",
            )
            raise
        summary = report.summary()
        rt.store.record_event(Event.TRAINING, {"trigger": trigger, **summary})
        promoted = summary["decision"] == "promote"
        rt.notifier.send(
            "training completed",
            f"model {'promoted: ' + str(summary['version']) if promoted else 'rejected'}",
            f"trigger: {trigger}\n{summary['reason']}\n\n{comparison_text(summary)}",
            level="success" if promoted else "info",
        )
        return summary
    finally:
        lock.release()


def roll_back(
    rt: Runtime, version: str | None, replacing: str | None, trigger: str
) -> dict[str, Any]:
    """Put a backup back in service: `version` (VERSION, or VERSION.rN for one thresholds
    revision), or the newest backup. A repeated or redelivered request changes nothing:
    without `version`, a model that a rollback put in service stays (to roll back further,
    name the version); with `replacing`, only while that one (version and revision) is still
    in service. Versions are named with their revision: a rollback of thresholds keeps the
    version and changes the revision."""
    current = rt.registry.current()
    in_service = current.label if current else None
    repeated = (
        (replacing is not None and in_service != replacing)
        or (version is not None and in_service == version)
        or (version is None and current is not None and current.rolled_back)
    )
    if repeated:
        return {"version": in_service, "decision": "unchanged: already rolled back"}
    info = rt.registry.rollback(version)
    result = {"version": info.label, "replaced": in_service, "decision": info.decision}
    rt.store.record_event(Event.ROLLBACK, {"trigger": trigger, **result})
    rt.notifier.send(
        "model rolled back",
        f"model {info.label} back in service",
        f"replaced {in_service}; trigger: {trigger}",
        level="warning",
    )
    return result


def retrain_offline(
    settings: Settings, csv: dataset.Csv | None, trigger: str, snapshot: str | None = None
) -> dict[str, Any]:
    """A training from a CSV or a snapshot alone on a machine without the database or the
    broker: the same training and promotion, without the lock, the notifications and the
    record."""
    log.warning(
        "training offline: no training lock, no notification and no recorded decision"
        " (no database or broker configured)",
        trigger=trigger,
    )
    examples, replay = _data(settings, None, csv, snapshot)
    return train_challenger(
        examples, settings, ModelRegistry.from_settings(settings), trigger=trigger, replay=replay
    ).summary()


def _data(
    settings: Settings, store: LabelStore | None, csv: dataset.Csv | None, snapshot: str | None
) -> tuple[list[dataset.Example], dict[str, Any] | None]:
    """The examples to learn from, and the recipe to fit (a snapshot's; None: search)."""
    if snapshot is None:
        return dataset.assemble(store.labelled() if store else None, csv), None
    uri = tracking.tracking_uri(settings.home, settings.mlflow_tracking_uri)
    data, recipe = tracking.find_snapshot(uri, snapshot)
    log.info("training from a snapshot", dataset_digest=snapshot, recipe=recipe)
    return dataset.from_snapshot(data, snapshot), recipe
