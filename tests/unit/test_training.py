"""Training end to end on demo data: reproducible, left-out classes, promotion, MLflow."""

from __future__ import annotations

import gzip
import hashlib
import logging
import pickle
import time
import zipfile
from pathlib import Path
from typing import Any

import mlflow
import pytest
import structlog

from flows.training import retrain_offline
from shared import logs
from shared.settings import Settings
from tests.helpers import KEY
from training import candidates, dataset, modelfile, registry, tracking
from training.registry import ModelRegistry
from training.train import TrainingReport, retrain
from worker import demodata

FEW_TRIALS = 4  # enough to exercise the search; the default budget is for real data


def examples(n: int = 1500) -> list[dataset.Example]:
    return [
        dataset.Example(f"H{i:05d}", f"{t.short_description} {t.description}", t.cause)
        for i, t in enumerate(demodata.generate(n, seed=42))
    ]


def settings_for(tmp: Path, **kw: object) -> Settings:
    return Settings.model_validate(
        {
            "models_dir": tmp / "models",
            "home": tmp / "home",
            "n_trials": FEW_TRIALS,
            "min_tickets_per_s": 1000,
            "search_families": "svc,cnb,sgd",
            **kw,
        }
    )


def train(data: list[dataset.Example], settings: Settings) -> TrainingReport:
    """A training as `causa train` runs it, into the settings' model registry."""
    return retrain(data, settings, ModelRegistry.from_settings(settings), trigger="test")


def test_two_trainings_on_the_same_data_give_identical_predictions(tmp_path: Path) -> None:
    data = examples()
    first = train(data, settings_for(tmp_path / "a"))
    second = train(data, settings_for(tmp_path / "b"))
    assert first.summary()["challenger"] == second.summary()["challenger"]
    info_a = registry.read_manifest(tmp_path / "a" / "models", KEY)
    assert info_a is not None
    a = registry.load(tmp_path / "a" / "models", info_a)
    info_b = registry.read_manifest(tmp_path / "b" / "models", KEY)
    assert info_b is not None
    b = registry.load(tmp_path / "b" / "models", info_b)
    _, holdout = dataset.split(data)
    texts = [e.text for e in holdout]
    assert (a.predict_proba(texts) == b.predict_proba(texts)).all()


def test_first_model_promoted_then_an_equal_challenger_kept_then_rollback(tmp_path: Path) -> None:
    s = settings_for(tmp_path)
    data = examples()
    first = train(data, s)
    assert first.version is not None and first.decision.promote
    info = registry.read_manifest(s.models_dir, KEY)
    assert info is not None and info.thresholds and info.metrics["macro_f1"] > 0.8
    # the same data again: no gain of 0.01, the champion stays
    second = train(data, s)
    assert not second.decision.promote and second.version is None
    kept = registry.read_manifest(s.models_dir, KEY)
    assert kept is not None and kept.version == first.version
    # an easier bar promotes, the old one becomes a backup, and rollback restores it
    third = train(data, s.model_copy(update={"min_improvement": -1.0}))
    assert third.version not in (None, first.version)
    listed = registry.list_models(s.models_dir, KEY)
    assert [k for k, _ in listed] == ["current", "backup"]
    restored = registry.rollback(s.models_dir, KEY)
    assert restored.version == first.version
    assert restored.decision.startswith("rollback")


def test_the_winner_serves_refitted_on_every_label_and_its_twin_is_what_is_compared(
    tmp_path: Path,
) -> None:
    s = settings_for(tmp_path)
    data = examples()
    first = train(data, s)
    info = registry.read_manifest(s.models_dir, KEY)
    assert info is not None and info.twin_sha256
    assert info.n_train == len(data)  # the holdout too
    serving = registry.load(s.models_dir, info)
    twin = registry.load_twin(s.models_dir, info)
    _, holdout = dataset.split(data)
    texts = [e.text for e in holdout]
    assert (serving.predict_proba(texts) != twin.predict_proba(texts)).any()
    # the next training scores the champion's twin, which never saw the holdout: on the
    # same data it scores exactly what the first challenger scored (the served model, which
    # learned the holdout, would score more)
    second = train(data, s)
    assert second.decision.champion == first.decision.challenger
    # a training without refitting serves the holdout-trained model, with no twin
    third = train(data, s.model_copy(update={"refit_all": False, "min_improvement": 0.0}))
    kept = registry.read_manifest(s.models_dir, KEY)
    assert kept is not None and third.version == kept.version and not kept.twin_sha256
    assert kept.n_train == len(data) - len(holdout)
    # twins go with their models: the first one's stays while it is a backup
    assert {p.stem for p in (s.models_dir / registry.TWINS).iterdir()} == {first.version}
    registry.prune_backups(s.models_dir, 1, KEY)
    assert (s.models_dir / registry.TWINS / f"{first.version}.skops").exists()


def test_rare_classes_are_left_out_and_reported(tmp_path: Path) -> None:
    data = examples() + [
        dataset.Example(f"R{i}", f"licencia de autocad {i}", "Licencias") for i in range(10)
    ]
    report = train(data, settings_for(tmp_path))
    assert report.left_out == {"Licencias": 10}
    info = registry.read_manifest(tmp_path / "models", KEY)
    assert info is not None and "Licencias" not in info.classes


def test_too_little_data_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(dataset.NotEnoughData, match="at least 50"):
        train(examples(40), settings_for(tmp_path))


def test_each_training_is_an_mlflow_run_with_the_model_file(tmp_path: Path) -> None:
    s = settings_for(tmp_path)
    report = train(examples(), s)
    assert report.mlflow_run
    client = mlflow.MlflowClient(tracking.tracking_uri(s.home, None))
    run = client.get_run(report.mlflow_run)
    assert run.data.tags["decision"] == "promote"
    assert run.data.metrics["challenger_macro_f1"] == pytest.approx(
        report.decision.challenger["macro_f1"]
    )
    assert "f1_Red" in run.data.metrics and "dataset_digest" in run.data.params
    artifacts = {a.path for a in client.list_artifacts(report.mlflow_run)}
    assert {"decision.json", "confusion_matrix.png", "model", "recipe.json", "dataset"} <= artifacts
    files = client.list_artifacts(report.mlflow_run, "model")
    assert files and files[0].path.endswith(".skops")


def test_old_training_runs_are_deleted_with_their_files_but_the_registrys_models_kept(
    tmp_path: Path,
) -> None:
    # given three runs with a model file each: two of 200 days ago (one of them of a model
    # the registry still keeps) and one of today
    uri = tracking.tracking_uri(tmp_path, None)
    model_file = tmp_path / "model.skops"
    model_file.write_bytes(b"a model")
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment(
        tracking.EXPERIMENT, artifact_location=(tmp_path / "artifacts").as_uri()
    )
    long_ago = int((time.time() - 200 * 86400) * 1000)
    runs = {}
    for version, started in [("old", long_ago), ("backup", long_ago), ("new", None)]:
        run = client.create_run(experiment, start_time=started, tags={"version": version})
        client.log_artifact(run.info.run_id, str(model_file), artifact_path="model")
        runs[version] = run.info.run_id
    # when retention keeps 180 days
    deleted = tracking.purge_runs(uri, 180, keep={"backup"})
    # then only the old run that no model in the registry needs is gone, its file with it
    assert deleted == 1
    left = client.search_runs([experiment])
    assert {r.data.tags["version"] for r in left} == {"backup", "new"}
    assert not (tmp_path / "artifacts" / runs["old"] / "artifacts" / "model").exists()
    assert (tmp_path / "artifacts" / runs["backup"] / "artifacts" / "model").exists()


def test_a_snapshot_retraining_fits_the_same_model(tmp_path: Path) -> None:
    # given a training, recorded in MLflow with its data set
    s = settings_for(tmp_path, min_improvement=0.0)  # an equal challenger is promoted
    first = train(examples(), s)
    client = mlflow.MlflowClient(tracking.tracking_uri(s.home, None))
    run = client.get_run(first.mlflow_run or "")
    digest = run.data.tags[tracking.DATASET_TAG]
    assert run.inputs is not None
    [given] = run.inputs.dataset_inputs
    assert (given.dataset.digest, given.dataset.name) == (digest, "labelled tickets")
    # when it is retrained from the snapshot alone (no tickets, no CSV)
    second = retrain_offline(s, None, "test", snapshot=digest)
    # then the same parameters and the same probabilities, in a model of its own
    assert second["version"] not in (None, first.version)
    models = dict(registry.list_models(s.models_dir, KEY))
    replayed = registry.load(s.models_dir, models["current"])
    backup = models["backup"]
    original = modelfile.load(s.models_dir / "backups" / backup.version / backup.name, backup)
    assert _fitted(replayed.pipeline) == _fitted(original.pipeline)
    assert repr(replayed.pipeline.get_params()) == repr(original.pipeline.get_params())
    texts = [f"{t.short_description} {t.description}" for t in demodata.generate(300, seed=7)]
    assert (replayed.predict_proba(texts) == original.predict_proba(texts)).all()
    assert second["challenger"] == first.summary()["challenger"]


def _fitted(model: Any) -> list[str]:
    """A digest of each fitted step (TF-IDF, classifier) of the model's pipelines: equal
    when their fitted arrays and parameters are. (Not of the whole model: pickle writes
    an object shared by two places once, so equal models may pickle differently.) And of
    the class factors, for a model that has them."""
    factors = [model.bias_.tobytes().hex()] if isinstance(model, candidates.Biased) else []
    model = model.estimator_ if factors else model
    members = model.estimators_ if hasattr(model, "estimators_") else [model]
    return factors + [
        hashlib.sha256(pickle.dumps(s)).hexdigest() for m in members for _, s in m.steps
    ]


def test_an_unknown_snapshot_says_where_digests_are_found(tmp_path: Path) -> None:
    with pytest.raises(LookupError, match=r"no training in the MLflow store .* '0123456789abcdef'"):
        retrain_offline(settings_for(tmp_path), None, "test", snapshot="0123456789abcdef")


def _stored_bytes(root: Path) -> list[tuple[str, bytes]]:
    """Every file under root as bytes: gzip files unpacked, zip files (skops) by member."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                found += [(f"{path}:{n}", archive.read(n)) for n in archive.namelist()]
        found.append((str(path), data))
    return found


def test_masked_personal_data_never_reaches_an_mlflow_artifact_or_a_log_line(
    tmp_path: Path,
) -> None:
    # given tickets that quote an e-mail address and a phone number, and a log file
    email, phone = "zeldaquixote@corp.example.com", "+34 612 345 678"
    data = examples()
    data += [
        dataset.Example(f"P{i}", f"{e.text} escribidme a {email} o al {phone}", e.label)
        for i, e in enumerate(data[:200])
    ]
    log_file = tmp_path / "causa.log"
    logs.configure(level="DEBUG", json=True, file=log_file)
    try:
        # when a training runs and lines quoting them are logged, by causa and by a library
        report = train(data, settings_for(tmp_path))
        structlog.get_logger("causa.test").warning("ticket", text=f"from {email}, {phone}")
        logging.getLogger("celery.test").warning("reply to %s or %s", email, phone)
    finally:
        logs.configure(level="INFO", json=True)  # closes the log file
    # then neither is anywhere in the run's artifacts, MLflow's store, the model or the log
    assert report.mlflow_run
    stored = _stored_bytes(tmp_path / "home" / "mlflow") + _stored_bytes(tmp_path / "models")
    stored.append(("log", log_file.read_bytes()))
    for where, content in stored:
        for value in ("zeldaquixote", "612 345 678", "612345678"):
            assert value.encode() not in content, f"{value} in {where}"
    snapshots = [c for w, c in stored if w.endswith(".jsonl.gz")]
    assert snapshots and b"[email] o al [phone]" in snapshots[0]
    assert log_file.read_text().count("[email]") == 2
