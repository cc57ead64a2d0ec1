"""Training tasks: on the training queue, so a long fit never delays classification."""

from __future__ import annotations

from typing import Any

from flows import training
from worker import names
from worker.app import app


@app.task(
    name=names.RETRAIN,
    time_limit=training.TRAINING_TIME_LIMIT_S,
    soft_time_limit=training.TRAINING_SOFT_LIMIT_S,
)
def retrain(trigger: str = "schedule") -> dict[str, Any]:
    """Train a challenger on the tickets people labelled; promote it if it wins."""
    return training.retrain(app.runtime, trigger)


@app.task(name=names.ROLLBACK)
def rollback(version: str | None = None, replacing: str | None = None) -> dict[str, Any]:
    """Put a backup model back in service (default: the newest backup)."""
    return training.roll_back(app.runtime, version, replacing, trigger="task")
