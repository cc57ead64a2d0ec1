"""Signed manifests: a model is served only when its manifest carries the installation's
signature, so that writing to the models directory is not enough to put a model in service."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner

from shared.settings import ConfigError, load_settings
from tests.helpers import KEY, install_model
from training import registry
from training.registry import ModelError, ModelRegistry
from worker.cli import app
from worker.model_holder import ModelHolder


class Notes:
    """The notifier's interface, recording what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, event: str, title: str, body: str, **_: Any) -> bool:
        self.sent.append((event, title, body))
        return True


def forge(models_dir: Path, pipeline: Any, signature: str) -> str:
    """What someone who can write the models directory, but has no key, can do: a model file
    of their own and a manifest with its true checksum. The version forged."""
    import skops.io as sio

    data = sio.dumps(pipeline)
    version = "20991231T000000Z-" + hashlib.sha256(data).hexdigest()[:8]
    (models_dir / "current" / f"{version}.skops").write_bytes(data)
    manifest = json.loads((models_dir / registry.MANIFEST).read_text())
    manifest |= {
        "version": version,
        "file": f"current/{version}.skops",
        "sha256": hashlib.sha256(data).hexdigest(),
        "signature": signature,
    }
    (models_dir / registry.MANIFEST).write_text(json.dumps(manifest))
    return version


@pytest.mark.parametrize("signature", ["", "0" * 64])
def test_a_model_put_in_place_without_the_key_is_refused_and_the_old_one_serves(
    models_dir: Path, model_cache: Path, signature: str
) -> None:
    # given a worker serving the signed model
    install_model(models_dir, model_cache)
    notes = Notes()
    holder = ModelHolder(ModelRegistry.local(models_dir, KEY), notes)
    serving = holder.get()
    assert serving is not None
    # when someone without the key replaces the model and its manifest (unsigned, or signed
    # with a made-up signature), checksum right
    forged = forge(models_dir, serving.pipeline, signature)
    with structlog.testing.capture_logs() as logs:
        kept = holder.get()
    # then the worker keeps its model, says why in the log and in a notification
    assert kept is serving and kept.version != forged
    error = next(e for e in logs if e["event"] == "model not loaded")
    assert forged in error["error"] and error["keeping"] == serving.version
    assert "not signed" in error["error"]
    assert [
        (event, "keeps model " + serving.version in title) for event, title, _ in notes.sent
    ] == [("model refused", True)]


def test_a_manifest_signed_with_another_key_is_refused(model: Path) -> None:
    info = registry.read_manifest(model, KEY)
    assert info is not None
    registry.write_manifest(model, info, b"another installation's key, 32 chars long")
    with pytest.raises(ModelError, match="another CAUSA_MODEL_SIGNING_KEY"):
        registry.read_manifest(model, KEY)


def test_any_change_to_a_signed_manifest_is_refused(model: Path) -> None:
    # e.g. thresholds lowered so that every guess is applied
    manifest = json.loads((model / registry.MANIFEST).read_text())
    manifest["thresholds"] = dict.fromkeys(manifest["classes"], 0.0)
    (model / registry.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="not signed with this installation's key"):
        registry.read_manifest(model, KEY)


def test_sign_models_signs_an_upgrades_unsigned_models_once(settings: Any, model: Path) -> None:
    # given a registry from before signing: a current model and a backup, manifests unsigned
    current = registry.load_current(model, KEY)
    registry.promote(model, current.pipeline, key=KEY, classes=current.classes, n_train=2)
    manifests = [model / registry.MANIFEST, *model.glob("backups/*/" + registry.MANIFEST)]
    assert len(manifests) == 2
    for path in manifests:
        path.write_text(json.dumps(json.loads(path.read_text()) | {"signature": ""}))
    with pytest.raises(ModelError, match="causa sign-models"):
        registry.read_manifest(model, KEY)
    # when `causa sign-models` runs where the workers' key is set
    result = CliRunner().invoke(app, ["sign-models"])
    # then both are signed, the model loads, and a second run has nothing to do
    assert result.exit_code == 0, result.output
    assert "signed 2 model(s)" in result.output
    assert [kind for kind, _ in ModelRegistry.from_settings(load_settings()).models()] == [
        "current",
        "backup",
    ]
    assert "signed 0 model(s)" in CliRunner().invoke(app, ["sign-models"]).output


def test_sign_models_refuses_a_model_file_that_fails_the_checks(settings: Any, model: Path) -> None:
    info = registry.read_manifest(model, KEY)
    assert info is not None
    manifest = json.loads((model / registry.MANIFEST).read_text())
    (model / registry.MANIFEST).write_text(json.dumps(manifest | {"signature": ""}))
    (model / info.file).write_bytes(b"not the model")
    result = CliRunner().invoke(app, ["sign-models"])
    assert result.exit_code != 0 and "corrupt or was changed" in result.output
    assert json.loads((model / registry.MANIFEST).read_text())["signature"] == ""


def test_a_shared_store_needs_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAUSA_MODEL_SIGNING_KEY")
    monkeypatch.setenv("CAUSA_MODEL_STORE", str(tmp_path / "store"))
    with pytest.raises(ConfigError, match=r"CAUSA_MODEL_STORE=.* needs CAUSA_MODEL_SIGNING_KEY"):
        ModelRegistry.from_settings(load_settings())


def test_a_short_key_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAUSA_MODEL_SIGNING_KEY", "secret")
    with pytest.raises(ConfigError, match="CAUSA_MODEL_SIGNING_KEY has 6 characters"):
        load_settings()


def test_one_machine_makes_its_key_once_under_causa_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CAUSA_MODEL_SIGNING_KEY")
    monkeypatch.setenv("CAUSA_HOME", str(tmp_path / "home"))
    first = ModelRegistry.from_settings(load_settings()).key
    again = ModelRegistry.from_settings(load_settings()).key
    path = tmp_path / "home" / registry.KEY_FILE
    assert first == again == path.read_bytes().strip() and len(first) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "key" not in repr(ModelRegistry.from_settings(load_settings())).replace("keep", "")


def test_a_load_cut_short_by_the_time_limit_is_no_refusal_and_is_tried_again(
    models_dir: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import skops.io as sio
    from billiard.exceptions import SoftTimeLimitExceeded

    # given a worker with no model loaded yet (a replacement loads beside the model in
    # service, outside the task: ModelHolder), and a model installed
    install_model(models_dir, model_cache)
    notes = Notes()
    holder = ModelHolder(ModelRegistry.local(models_dir, KEY), notes)
    # when the task's soft time limit strikes while it loads (simulated at the one call it
    # interrupts)
    real_loads = sio.loads

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(sio, "loads", real_loads)
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(sio, "loads", interrupted)
    with pytest.raises(SoftTimeLimitExceeded):
        holder.get()
    # then nothing was refused, and the next batch loads it
    assert notes.sent == []
    served = holder.get()
    info = registry.read_manifest(models_dir, KEY)
    assert served is not None and info is not None and served.version == info.version
