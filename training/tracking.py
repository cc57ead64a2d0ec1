"""MLflow: one run per training with its parameters, metrics, per-class F1, confusion matrix,
the decision, the recipe it fitted, the data set it learned from (a dataset input with its
digest, and its snapshot as an artifact), and the model file itself (skops, never a pickle).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from training.dataset import Snapshot

log = structlog.get_logger("causa.mlflow")
EXPERIMENT = "causa"
DATASET_TAG = "dataset_digest"  # the run's tag naming the data set it learned from
# `mlflow gc` of the local store: it deletes files, seconds even for hundreds of runs.
GC_TIMEOUT_S = 600


def tracking_uri(home: Path, configured: str | None) -> str:
    """MLFLOW_TRACKING_URI, else a SQLite store under $CAUSA_HOME/mlflow."""
    if configured:
        return configured
    store = (home / "mlflow").absolute()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def log_training(
    uri: str,
    home: Path,
    *,
    params: dict[str, Any],
    metrics: dict[str, float],
    report: dict[str, Any],
    confusion: dict[str, Any],
    model_file: Path | None,
    snapshot: Snapshot,
    recipe: dict[str, Any],
    tags: dict[str, str],
) -> str | None:
    """Log one run; returns its id. A tracking failure is logged, never fatal to training."""
    try:
        # lazy, here and in _plot: MLflow and matplotlib load only when a training logs
        from mlflow import MlflowClient
        from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        # The client, not mlflow's global "fluent" state: several stores in one process
        # (tests, a tracking server change) must never mix.
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            location = (home / "mlflow" / "artifacts").absolute().as_uri()
            experiment_id = client.create_experiment(
                EXPERIMENT, artifact_location=location if uri.startswith("sqlite") else None
            )
        else:
            experiment_id = experiment.experiment_id
        run = client.create_run(experiment_id, run_name=tags.get("version", "training"))
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)[:500]) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in {**tags, DATASET_TAG: snapshot.digest}.items()],
        )
        # The data set as a dataset input: MLflow has no source type for a run's own
        # artifact, so the source is named in causa's words.
        client.log_inputs(
            run_id,
            datasets=[
                DatasetInput(
                    Dataset(
                        name="labelled tickets",
                        digest=snapshot.digest,
                        source_type="causa-snapshot",
                        source=dumps({"uri": f"{run.info.artifact_uri}/dataset/{snapshot.name}"}),
                        schema=dumps({"columns": ["key", "label", "text"]}),
                        profile=dumps({"rows": snapshot.rows}),
                    ),
                    tags=[InputTag(MLFLOW_DATASET_CONTEXT, "training")],
                )
            ],
        )
        client.log_dict(run_id, recipe, "recipe.json")
        client.log_dict(run_id, report, "decision.json")
        client.log_dict(run_id, confusion, "confusion_matrix.json")
        with tempfile.TemporaryDirectory() as tmp:
            image = Path(tmp) / "confusion_matrix.png"
            _plot(confusion, image)
            client.log_artifact(run_id, str(image))
            data = Path(tmp) / snapshot.name
            data.write_bytes(snapshot.data)
            client.log_artifact(run_id, str(data), artifact_path="dataset")
        if model_file is not None:
            client.log_artifact(run_id, str(model_file), artifact_path="model")
        client.set_terminated(run_id)
        return str(run_id)
    except Exception as exc:
        log.warning(
            "MLflow logging failed; the training itself is unaffected",
            error=f"{type(exc).__name__}: {exc}"[:500],
        )
        return None


def find_snapshot(uri: str, digest: str) -> tuple[bytes, dict[str, Any]]:
    """The snapshot of data set `digest` and the recipe of the newest training that learned
    from it; LookupError saying what to do when no training recorded it."""
    from mlflow import MlflowClient  # lazy: see log_training

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = (
        client.search_runs(
            [experiment.experiment_id],
            f"tags.{DATASET_TAG} = '{digest}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if experiment is not None and digest.isalnum()
        else []
    )
    if not runs:
        raise LookupError(
            f"no training in the MLflow store {uri} learned from data set {digest!r}: take a"
            f" digest from a training run's {DATASET_TAG} tag (`mlflow ui`, the run's"
            " dataset input), and point MLFLOW_TRACKING_URI at the store that ran it"
        )
    run_id = runs[0].info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        data = client.download_artifacts(run_id, f"dataset/{digest}.jsonl.gz", tmp)
        recipe = client.download_artifacts(run_id, "recipe.json", tmp)
        return Path(data).read_bytes(), json.loads(Path(recipe).read_text())


def purge_runs(uri: str, older_than_days: int, keep: set[str]) -> int:
    """Delete the training runs started more than `older_than_days` ago, except those of the
    models in the registry (`keep`, by version); how many. MLflow only marks them deleted:
    their artifacts (each run's model file) are freed by `mlflow gc` where the store lives,
    done here for the local store (a tracking server runs its own)."""
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return 0  # no training was logged here: nothing to open (MLflow would create it)
    from mlflow import MlflowClient  # lazy: see log_training

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return 0
    cutoff = int((time.time() - older_than_days * 86400) * 1000)
    old = [
        run
        for run in client.search_runs(
            [experiment.experiment_id], f"attributes.start_time < {cutoff}", max_results=1000
        )
        if run.data.tags.get("version") not in keep
    ]
    for run in old:
        client.delete_run(run.info.run_id)
    if old and uri.startswith("sqlite"):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "mlflow",
                "gc",
                "--backend-store-uri",
                uri,
                "--tracking-uri",
                uri,
            ],
            check=True,
            capture_output=True,
            timeout=GC_TIMEOUT_S,
        )
    return len(old)


def _plot(confusion: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, matrix = confusion["labels"], confusion["matrix"]
    fig, ax = plt.subplots(figsize=(1 + 0.7 * len(labels), 1 + 0.6 * len(labels)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, default=str)
