"""Model files: promotion, verification before load, hot swap in the holder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import structlog

from tests.helpers import install_model
from training import registry
from training.registry import ModelError, ModelRegistry
from worker.model_holder import ModelHolder


def test_a_promoted_model_loads_and_predicts(model: Path) -> None:
    info = registry.read_manifest(model)
    assert info is not None and info.decision == "bootstrap"
    loaded = registry.load(model, info)
    assert loaded.predict_proba(["no puedo imprimir"]).shape == (1, len(info.classes))
    assert info.libraries["scikit-learn"]


def test_a_tampered_file_is_refused(model: Path) -> None:
    info = registry.read_manifest(model)
    assert info is not None
    path = model / info.file
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="corrupt or was changed"):
        registry.load(model, info)


def test_a_truncated_file_is_refused(model: Path) -> None:
    info = registry.read_manifest(model)
    assert info is not None
    path = model / info.file
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelError, match="SHA-256"):
        registry.load(model, info)


def test_a_model_from_another_scikit_learn_minor_is_refused(model: Path) -> None:
    info = registry.read_manifest(model)
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
    with pytest.raises(ModelError, match="not trusted"):
        registry.load(tmp_path, info)


def test_the_holder_swaps_on_a_new_manifest_and_keeps_the_old_model_on_a_bad_one(
    models_dir: Path, model_cache: Path
) -> None:
    install_model(models_dir, model_cache)
    holder = ModelHolder(ModelRegistry.local(models_dir))
    first = holder.get()
    assert first is not None
    assert holder.get() is first  # unchanged manifest: the same object, no reload

    # a new version promoted: the next batch gets it
    info = registry.read_manifest(models_dir)
    assert info is not None
    second_info = registry.promote(models_dir, first.pipeline, classes=info.classes, n_train=1)
    second = holder.get()
    assert second is not None and second.version == second_info.version != first.version
    assert (models_dir / "backups" / first.version / Path(info.file).name).exists()

    # a manifest naming a corrupt file: the holder keeps what it has and says why
    broken = registry.ModelInfo(
        **{
            **json.loads((models_dir / "manifest.json").read_text()),
            "version": "broken",
            "sha256": "0" * 64,
        }
    )
    with structlog.testing.capture_logs() as logs:
        registry.write_manifest(models_dir, broken)
        assert holder.get() is second
    assert any(e["event"] == "model not loaded" and "corrupt" in e["error"] for e in logs)


def test_no_model_means_none_and_a_clear_log(tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        assert ModelHolder(ModelRegistry.local(tmp_path)).get() is None
    assert "causa train --bootstrap" in logs[0]["error"]


def test_backups_are_bounded(models_dir: Path, model_cache: Path) -> None:
    install_model(models_dir, model_cache)
    info = registry.read_manifest(models_dir)
    assert info is not None
    pipeline = registry.load(models_dir, info).pipeline
    for _ in range(4):
        registry.promote(models_dir, pipeline, classes=info.classes, n_train=1, keep_backups=2)
    assert len(list((models_dir / "backups").iterdir())) == 2
    assert len(list((models_dir / "current").glob("*.skops"))) <= 2
