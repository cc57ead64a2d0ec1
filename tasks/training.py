"""Training tasks: run on the training queue so a long fit never delays classification."""

from __future__ import annotations

from typing import Any

from training import dataset, registry
from training.train import retrain as run_training
from worker.app import TRAINING_QUEUE, app
from worker.runtime import runtime

# A training takes minutes (10 at most by design); these limits stop a runaway one and stay
# below the broker's visibility timeout, so Redis never hands the same training to a second
# worker while the first still runs.
TRAINING_TIME_LIMIT_S = 1800
TRAINING_SOFT_LIMIT_S = 1700


@app.task(
    name="tasks.training.retrain",
    queue=TRAINING_QUEUE,
    time_limit=TRAINING_TIME_LIMIT_S,
    soft_time_limit=TRAINING_SOFT_LIMIT_S,
)
def retrain(trigger: str = "schedule") -> dict[str, Any]:
    """Train a challenger on the tickets people labelled; promote it if it wins."""
    rt = runtime()
    examples = dataset.assemble(rt.store.labelled())
    return run_training(examples, rt.settings, trigger=trigger).summary()


@app.task(name="tasks.training.rollback", queue=TRAINING_QUEUE)
def rollback(version: str | None = None) -> dict[str, Any]:
    """Put a backup model back in service (default: the newest backup)."""
    info = registry.rollback(
        runtime().settings.models_dir, version, keep_backups=runtime().settings.keep_backups
    )
    return {"version": info.version, "decision": info.decision}
