"""Retention: decisions and events older than their settings are deleted in small batches, so
no delete holds locks for long on a busy database. The newest event of each kind and
causa's install records stay. Old MLflow training runs go too, but for those of the models
the registry keeps."""

from __future__ import annotations

import structlog

from shared.settings import Settings
from shared.store import RetentionStore
from training import tracking
from training.registry import ModelRegistry

log = structlog.get_logger("causa.retention")
BATCH = 5000  # rows per kind per call: each call one short transaction


def retain(store: RetentionStore, settings: Settings, models: ModelRegistry) -> dict[str, int]:
    """Delete batch after batch until a call deletes nothing, then the old training runs;
    return the totals."""
    total = {"decisions": 0, "events": 0, "requests": 0}
    while True:
        deleted = store.retain(
            settings.decision_retention_days, settings.event_retention_days, BATCH
        )
        for kind, n in deleted.items():
            total[kind] = total.get(kind, 0) + int(n)
        if not any(deleted.values()):
            break
    total["training_runs"] = tracking.purge_runs(
        tracking.tracking_uri(settings.home, settings.mlflow_tracking_uri),
        settings.run_retention_days,
        keep={info.version for _, info in models.models()},
    )
    log.info("retention applied", **total)
    return total
