"""With CAUSA_MODEL_STORE set, a retraining run by the task promotes into the shared store,
and a worker on another machine (another CAUSA_MODELS_DIR) serves the new model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from shared.settings import Settings
from tasks import training as training_tasks
from tests.helpers import KEY, insert_labelled
from training import bootstrap, dataset
from training.registry import ModelRegistry
from worker import demodata
from worker.model_holder import ModelHolder


def test_a_retrain_by_the_task_promotes_into_the_store_and_reaches_another_worker(
    conn: psycopg.Connection[Any],
    settings: Settings,
    runtime_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    # given a model store holding a poor champion (trained on shuffled causes) ...
    store, trainer_local, other_local = tmp_path / "store", tmp_path / "a", tmp_path / "b"
    history = demodata.generate(1200, seed=42)
    shuffled = [
        dataset.Example(f"S{i}", f"{t.short_description} {t.description}", history[i + 1].cause)
        for i, t in enumerate(history[:200])
    ]
    champion, _ = bootstrap.train(shuffled, ModelRegistry.local(store, KEY))
    # ... tickets people labelled, and the machine that trains with its own local directory
    insert_labelled(conn, [f"H{i:05d}" for i in range(len(history))], history)
    rt = runtime_for(
        settings,
        model_store=store,
        models_dir=trainer_local,
        n_trials=1,  # one quick trial: this is about where the model goes, not the search
        search_families="cnb",
        min_tickets_per_s=100,
        min_class_count=10,
    )

    # when the scheduled retraining task runs on it
    summary = training_tasks.retrain.apply(kwargs={"trigger": "test"}, throw=True).get()

    # then the challenger is promoted into the store, the champion kept as a backup there
    assert summary["decision"] == "promote", summary
    promoted = ModelRegistry.local(store, KEY).current()
    assert promoted is not None and promoted.version == summary["version"] != champion.version
    assert [info.version for _, info in rt.registry.models()] == [
        promoted.version,
        champion.version,
    ]
    assert not (trainer_local / "manifest.json").exists(), "nothing promoted outside the store"
    # and a worker on another machine serves it from its own verified copy
    served = ModelHolder(ModelRegistry(store, other_local, KEY)).get()
    assert served is not None and served.version == promoted.version
    assert (other_local / "manifest.json").exists()
