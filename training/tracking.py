"""MLflow: one run per training with its parameters, metrics, per-class F1, confusion matrix,
data fingerprint, the decision, and the model file itself (skops, never a pickle)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("causa.mlflow")
EXPERIMENT = "causa"
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
    tags: dict[str, str],
) -> str | None:
    """Log one run; returns its id. A tracking failure is logged, never fatal to training."""
    try:
        # lazy, here and in _plot: MLflow and matplotlib load only when a training logs
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param, RunTag

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
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.log_dict(run_id, report, "decision.json")
        client.log_dict(run_id, confusion, "confusion_matrix.json")
        with tempfile.TemporaryDirectory() as tmp:
            image = Path(tmp) / "confusion_matrix.png"
            _plot(confusion, image)
            client.log_artifact(run_id, str(image))
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
