"""Model files: promotion, verification before load, hot swap in the holder."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from pathlib import Path

import pytest
import structlog

from tests.helpers import KEY, install_model, wait_for
from training import registry
from training.registry import ModelError, ModelRegistry
from worker.model_holder import ModelHolder


def test_a_promoted_model_loads_and_predicts(model: Path) -> None:
    info = registry.read_manifest(model, KEY)
    assert info is not None and info.decision == "bootstrap"
    loaded = registry.load(model, info)
    assert loaded.predict_proba(["no puedo imprimir"]).shape == (1, len(info.classes))
    assert info.libraries["scikit-learn"]
    assert loaded.fast is not None  # the bootstrap model predicts without sklearn's checks


def test_a_tampered_file_is_refused(model: Path) -> None:
    info = registry.read_manifest(model, KEY)
    assert info is not None
    path = model / info.file
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="corrupt or was changed"):
        registry.load(model, info)


def test_a_truncated_file_is_refused(model: Path) -> None:
    info = registry.read_manifest(model, KEY)
    assert info is not None
    path = model / info.file
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelError, match="SHA-256"):
        registry.load(model, info)


def test_a_model_from_another_scikit_learn_minor_is_refused(model: Path) -> None:
    info = registry.read_manifest(model, KEY)
    assert info is not None
    info.libraries["scikit-learn"] = "0.1.0"
    with pytest.raises(ModelError, match=r"scikit-learn 0\.1\.0.*retrain"):
        registry.load(model, info)


def test_untrusted_types_are_refused(tmp_path: Path) -> None:
    import skops.io as sio

    class Sneaky:  # a type no allow-list names
        pass

    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    bad = Pipeline([("f", FunctionTransformer(func=Sneaky))])
    data = sio.dumps(bad)
    (tmp_path / "current").mkdir()
    (tmp_path / "current" / "x.skops").write_bytes(data)
    info = registry.ModelInfo(
        version="x",
        file="current/x.skops",
        sha256=hashlib.sha256(data).hexdigest(),
        created_at="now",
        classes=[],
        n_train=0,
    )
    with pytest.raises(ModelError, match="never puts in a model"):
        registry.load(tmp_path, info)


def test_a_model_of_library_functions_is_refused_before_any_runs(tmp_path: Path) -> None:
    import numpy as np
    import skops.io as sio
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    # given a "model" made of library functions (each would run at predict time), with a
    # manifest whose checksum matches: whoever can write one file can write the other
    bad = make_pipeline(
        FunctionTransformer(np.full_like, kw_args={"fill_value": 1}),
        FunctionTransformer(np.take, kw_args={"indices": [0]}),
    )
    data = sio.dumps(bad)
    version = "20261130T000000Z-0badc0de"
    (tmp_path / "current").mkdir()
    (tmp_path / "current" / f"{version}.skops").write_bytes(data)
    info = registry.ModelInfo(
        version=version,
        file=f"current/{version}.skops",
        sha256=hashlib.sha256(data).hexdigest(),
        created_at="now",
        classes=["a"],
        n_train=1,
    )
    registry.write_manifest(tmp_path, info, KEY)
    # when it is loaded; then it is refused, naming the functions
    with pytest.raises(ModelError, match=r"numpy\.full_like.*numpy\.take"):
        registry.load_current(tmp_path, KEY)


@pytest.mark.parametrize(
    ("version", "file"),
    [
        ("../../etc", "current/../../etc.skops"),
        ("20261130T000000Z-0badc0de", "/etc/passwd"),
        ("20261130T000000Z-0badc0de", "current/../../../root/x.skops"),
        ("20261130T000000Z-0badc0de", "current/20261130T000000Z-0badc0de.pkl"),
    ],
)
def test_a_manifest_pointing_outside_the_registry_is_refused(
    tmp_path: Path, version: str, file: str
) -> None:
    manifest = {
        "version": version,
        "file": file,
        "sha256": "0" * 64,
        "created_at": "now",
        "classes": [],
        "n_train": 0,
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="not a model causa made"):
        registry.read_manifest(tmp_path, KEY)


def test_the_holder_swaps_on_a_new_manifest_and_keeps_the_old_model_on_a_bad_one(
    models_dir: Path, model_cache: Path
) -> None:
    install_model(models_dir, model_cache)
    holder = ModelHolder(ModelRegistry.local(models_dir, KEY))
    first = holder.get()
    assert first is not None
    assert holder.get() is first  # unchanged manifest: the same object, no reload

    # a new version promoted: the next batch gets it
    info = registry.read_manifest(models_dir, KEY)
    assert info is not None
    second_info = registry.promote(
        models_dir, first.pipeline, classes=info.classes, n_train=1, key=KEY
    )
    second = holder.get()
    assert second is not None and second.version == second_info.version != first.version
    assert (models_dir / "backups" / first.version / Path(info.file).name).exists()

    # a manifest naming a corrupt file: the holder keeps what it has and says why
    broken = registry.ModelInfo(
        **{
            **json.loads((models_dir / "manifest.json").read_text()),
            "version": "20990101T000000Z-deadbeef",
            "file": "current/20990101T000000Z-deadbeef.skops",
            "sha256": "0" * 64,
        }
    )
    shutil.copy(models_dir / second_info.file, models_dir / broken.file)
    with structlog.testing.capture_logs() as logs:
        registry.write_manifest(models_dir, broken, KEY)
        assert holder.get() is second
    assert any(e["event"] == "model not loaded" and "corrupt" in e["error"] for e in logs)


def test_a_slow_replacement_loads_beside_the_model_in_service_and_is_never_started_over(
    models_dir: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_model(models_dir, model_cache)
    holder = ModelHolder(ModelRegistry.local(models_dir, KEY), wait_s=0.05)
    first = holder.get()
    assert first is not None
    # given a new model whose load takes longer than a batch may wait for it
    release = threading.Event()
    loads: list[str] = []
    load = registry.load

    def slow_load(directory: Path, info: registry.ModelInfo) -> registry.LoadedModel:
        loads.append(info.version)
        release.wait(30)
        return load(directory, info)

    monkeypatch.setattr(registry, "load", slow_load)
    info = registry.read_manifest(models_dir, KEY)
    assert info is not None
    new = registry.promote(models_dir, first.pipeline, classes=info.classes, n_train=1, key=KEY)
    # then batches go on with the model in service, each after a short wait ...
    for _ in range(3):
        started = time.monotonic()
        assert holder.get() is first
        assert time.monotonic() - started < 1.0
    # ... and the load goes on beside them: begun once, not over again for each batch
    assert loads == [new.version]
    release.set()
    wait_for(lambda: holder.get() is not first, what="the new model in service")
    second = holder.get()
    assert second is not None and second.version == new.version and loads == [new.version]


def test_no_model_means_none_and_a_clear_log(tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        assert ModelHolder(ModelRegistry.local(tmp_path, KEY)).get() is None
    assert "no model in" in logs[0]["error"] and "causa train --bootstrap" in logs[0]["hint"]


def test_backups_are_bounded(models_dir: Path, model_cache: Path) -> None:
    install_model(models_dir, model_cache)
    info = registry.read_manifest(models_dir, KEY)
    assert info is not None
    pipeline = registry.load(models_dir, info).pipeline
    for _ in range(4):
        registry.promote(
            models_dir, pipeline, classes=info.classes, n_train=1, keep_backups=2, key=KEY
        )
    assert len(list((models_dir / "backups").iterdir())) == 2
    assert len(list((models_dir / "current").glob("*.skops"))) <= 2


def test_every_model_causa_builds_needs_only_the_allow_listed_types() -> None:
    import skops.io as sio

    from training import bootstrap, candidates
    from worker import demodata

    # given every kind of pipeline training can promote, fitted on a few demo tickets
    tickets = list(demodata.generate(300, seed=3))
    texts = [f"{t.short_description} {t.description}" for t in tickets]
    causes = [t.cause for t in tickets]
    words_and_chars = {"ngram_max": 2, "min_df": 1, "chars": True}
    families = {"svc": {"C": 1.0}, "logreg": {"C": 1.0}, "sgd": {"alpha": 1e-4}}
    families |= {"cnb": {"alpha": 0.5}}
    xgb = {"svd": 10, "trees": 3, "depth": 2, "eta": 0.3}
    pipelines = [bootstrap.pipeline()]
    pipelines += [candidates.single(words_and_chars, f, p, 42) for f, p in families.items()]
    pipelines.append(candidates.stack(words_and_chars, {**families, "xgb": xgb}, 42))
    pipelines.append(candidates.vote(words_and_chars, {"C": 1.0}, 42))
    pipelines.append(candidates.Biased(candidates.vote(words_and_chars, {"C": 1.0}, 42), 42))
    # then each saved file needs no type beyond the allow-list, which has none to spare
    needed: set[str] = set()
    for pipeline in pipelines:
        pipeline.fit(texts, causes)
        needed |= set(sio.get_untrusted_types(data=sio.dumps(pipeline)))
    assert needed == registry.TRUSTED_TYPES
