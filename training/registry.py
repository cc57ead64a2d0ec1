"""The model registry: models/manifest.json names the current model, models/current/ holds
its file, models/backups/<version>/ keeps earlier ones.

`ModelRegistry` is the one object every caller uses: built from settings, it decides once
where models live (the shared store CAUSA_MODEL_STORE, or the local CAUSA_MODELS_DIR) and
serves promote, load, list, rollback, prune and the workers' verified local copy. The
functions below it work on one directory; only the registry and the tests call them.

Model files are skops files (no pickle): a file is read once, its bytes' SHA-256 must match
the manifest, every type in it that skops does not trust by default must be on causa's exact
allow-list (no library function: a function in a model file is code run at predict time),
and the model is loaded from those same bytes. A manifest's version and file name must have
causa's form (no path outside the registry). A model built with another minor version of
scikit-learn or XGBoost is refused: retrain it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from shared.settings import Settings

log = structlog.get_logger("causa.registry")
MANIFEST = "manifest.json"
# The types beyond skops' own trusted ones that causa's pipelines contain, exactly (a test
# builds every model family and checks): causa's text normaliser is the only function.
TRUSTED_TYPES = frozenset(
    {
        "shared.text.normalize",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.utils._bunch.Bunch",
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
    }
)
# A model version: when it was made and the start of its file's SHA-256.
VERSION = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
# Backups kept after a promotion; older ones are deleted.
DEFAULT_KEEP_BACKUPS = 10
# How a rolled-back model's manifest begins its decision (and how a repeat is recognised).
ROLLBACK = "rollback to "


class ModelError(RuntimeError):
    """A model cannot be used; the message says why and what to do."""


def library_versions() -> dict[str, str]:
    # lazy, here and in load/promote: commands that never touch a model file (`causa health`,
    # `status`, `admin`) start without a second of model libraries.
    import sklearn
    import skops
    import xgboost

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "xgboost": xgboost.__version__,
        "skops": skops.__version__,
    }


def preload() -> None:
    """Import the libraries that loading and saving a model needs (a worker does it once,
    before it forks its pool processes)."""
    import skops.io  # noqa: F401  (lazy: see library_versions)

    library_versions()


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


@dataclass
class ModelInfo:
    version: str
    file: str  # relative to the models directory
    sha256: str
    created_at: str
    classes: list[str]
    n_train: int
    metrics: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    libraries: dict[str, str] = field(default_factory=library_versions)
    decision: str = "bootstrap"
    # The model's behaviour on its holdout (training.drift.reference), what the drift report
    # compares recent decisions with; empty for models promoted before drift monitoring.
    reference: dict[str, Any] = field(default_factory=dict)

    @property
    def rolled_back(self) -> bool:
        """This model is in service because a rollback put it back."""
        return self.decision.startswith(ROLLBACK)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelInfo:
        """A manifest's content; ModelError unless its version and file have causa's form
        (`current/<version>.skops`: a manifest never points outside the registry)."""
        known = {f for f in cls.__dataclass_fields__}
        info = cls(**{k: v for k, v in data.items() if k in known})
        version = info.version if isinstance(info.version, str) else ""
        if not VERSION.match(version) or info.file != f"current/{version}.skops":
            raise ModelError(
                f"a manifest names version {str(info.version)[:40]!r} in file"
                f" {str(info.file)[:80]!r}: not a model causa made; refusing it"
            )
        return info


@dataclass(frozen=True)
class LoadedModel:
    info: ModelInfo
    pipeline: Any  # a fitted scikit-learn Pipeline with predict_proba

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def classes(self) -> list[str]:
        return self.info.classes

    @property
    def thresholds(self) -> dict[str, float]:
        return self.info.thresholds

    def predict_proba(self, texts: list[str]) -> Any:
        return self.pipeline.predict_proba(texts)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(models_dir: Path) -> ModelInfo | None:
    path = models_dir / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"{path} is unreadable ({exc}): restore it with `causa rollback`"
            " or train a new model with `causa train --bootstrap --force`"
        ) from exc
    return ModelInfo.from_json(data)


def load(models_dir: Path, info: ModelInfo) -> LoadedModel:
    """Verify and load the model the manifest names. Raises ModelError, never loads blindly."""
    path = models_dir / info.file
    try:
        data = path.read_bytes()  # read once: what is checked is what is loaded
    except FileNotFoundError:
        raise ModelError(
            f"model file {path} named by {models_dir / MANIFEST} is missing:"
            " restore it or train again with `causa train --bootstrap --force`"
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != info.sha256:
        raise ModelError(
            f"model file {path} is corrupt or was changed: SHA-256 {actual[:12]}…"
            f" does not match the manifest's {info.sha256[:12]}…; refusing to load it"
        )
    here = library_versions()
    for lib in ("scikit-learn", "xgboost"):
        built = info.libraries.get(lib, "?")
        if _minor(built) != _minor(here[lib]):
            raise ModelError(
                f"model {info.version} was built with {lib} {built}, this process"
                f" has {here[lib]}: retrain it with `causa train --force`"
            )
    import skops.io as sio  # lazy: see library_versions

    untrusted = sio.get_untrusted_types(data=data)
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise ModelError(
            f"model file {path} contains types causa never puts in a model: {refused[:10]};"
            " refusing it (a function or class in a model file runs as code)"
        )
    try:
        pipeline = sio.loads(data, trusted=untrusted)
    except Exception as exc:
        raise ModelError(f"model file {path} could not be loaded: {exc}") from exc
    return LoadedModel(info, pipeline)


def load_current(models_dir: Path) -> LoadedModel:
    """The model in service, verified; ModelError when there is none or it is unusable."""
    info = read_manifest(models_dir)
    if info is None:
        raise ModelError(f"no model in {models_dir}: train one with `causa train`")
    return load(models_dir, info)


def _fsync_write(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(models_dir: Path, info: ModelInfo) -> None:
    """Replace the manifest atomically: readers see the old one or the new one, never half."""
    tmp = models_dir / f".{MANIFEST}.{os.getpid()}.tmp"  # several processes may write at once
    _fsync_write(tmp, json.dumps(asdict(info), indent=2).encode())
    os.replace(tmp, models_dir / MANIFEST)
    _fsync_dir(models_dir)


def new_version(data: bytes) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{hashlib.sha256(data).hexdigest()[:8]}"


def promote(
    models_dir: Path,
    pipeline: Any,
    *,
    classes: list[str],
    n_train: int,
    metrics: dict[str, Any] | None = None,
    thresholds: dict[str, float] | None = None,
    decision: str = "bootstrap",
    keep_backups: int = DEFAULT_KEEP_BACKUPS,
    reference: dict[str, Any] | None = None,
) -> ModelInfo:
    """Make `pipeline` the current model; the one it replaces becomes a backup."""
    import skops.io as sio  # lazy: see library_versions

    data = sio.dumps(pipeline)
    version = new_version(data)
    current = models_dir / "current"
    current.mkdir(parents=True, exist_ok=True)
    path = current / f"{version}.skops"
    _fsync_write(path, data)
    _fsync_dir(current)
    previous = read_manifest(models_dir)
    _back_up(models_dir, previous)
    info = ModelInfo(
        version=version,
        file=str(path.relative_to(models_dir)),
        sha256=hashlib.sha256(data).hexdigest(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        classes=classes,
        n_train=n_train,
        metrics=metrics or {},
        thresholds=thresholds or {},
        decision=decision,
        reference=reference or {},
    )
    write_manifest(models_dir, info)
    # Keep the file just replaced: a worker may have read the old manifest a moment ago.
    keep = {path.name} | ({Path(previous.file).name} if previous else set())
    for old in current.glob("*.skops"):
        if old.name not in keep:
            old.unlink()
    prune_backups(models_dir, keep_backups)
    return info


def _back_up(models_dir: Path, info: ModelInfo | None) -> None:
    """Copy the model `info` names to backups/<version>/ with its manifest."""
    if info is None or not (models_dir / info.file).exists():
        return
    backup = models_dir / "backups" / info.version
    backup.mkdir(parents=True, exist_ok=True)
    shutil.copy2(models_dir / info.file, backup / Path(info.file).name)
    (backup / MANIFEST).write_text(json.dumps(asdict(info), indent=2))


def prune_backups(models_dir: Path, keep: int) -> list[str]:
    """Delete all but the newest `keep` backups, the models one could roll back to (a copy of
    the model in service is none of them: it is neither counted nor deleted); the versions
    deleted. At least one is kept, so that there is always a model to roll back to."""
    if keep < 1:
        raise ValueError(
            f"keep={keep}: at least 1 backup is kept, so that there is a model to roll back to"
        )
    backups = models_dir / "backups"
    if not backups.exists():
        return []
    current = read_manifest(models_dir)
    in_service = current.version if current else None
    versions = sorted(p for p in backups.iterdir() if p.is_dir() and p.name != in_service)
    removed = versions[: max(0, len(versions) - keep)]
    for old in removed:
        shutil.rmtree(old)
    return [p.name for p in removed]


def list_models(models_dir: Path) -> list[tuple[str, ModelInfo]]:
    """('current', info) first, then ('backup', info) newest first."""
    out: list[tuple[str, ModelInfo]] = []
    current = read_manifest(models_dir)
    if current is not None:
        out.append(("current", current))
    backups = models_dir / "backups"
    if backups.exists():
        for d in sorted((p for p in backups.iterdir() if p.is_dir()), reverse=True):
            info = read_manifest(d)
            if info is not None and (current is None or info.version != current.version):
                out.append(("backup", info))
    return out


def rollback(
    models_dir: Path, version: str | None = None, keep_backups: int = DEFAULT_KEEP_BACKUPS
) -> ModelInfo:
    """Put a backup back in service (default: the newest one), the same atomic way as a
    promotion; the model it replaces becomes a backup in turn. Without `version`, a model
    that a rollback put in service stays: repeating a rollback changes nothing."""
    current = read_manifest(models_dir)
    if version is None and current is not None and current.rolled_back:
        raise ModelError(
            f"model {current.version} is in service through a rollback already"
            f" ({current.decision}): repeating it changes nothing. To roll back further, name"
            " the version: `causa rollback VERSION` (`causa models` lists them)"
        )
    backups = [info for kind, info in list_models(models_dir) if kind == "backup"]
    if not backups:
        raise ModelError(f"no backups in {models_dir / 'backups'}: nothing to roll back to")
    chosen = (
        backups[0] if version is None else next((b for b in backups if b.version == version), None)
    )
    if chosen is None:
        raise ModelError(
            f"no backup {version!r}; `causa models` lists them:"
            f" {', '.join(b.version for b in backups)}"
        )
    source = models_dir / "backups" / chosen.version / Path(chosen.file).name
    if not source.exists() or sha256_of(source) != chosen.sha256:
        raise ModelError(
            f"backup {chosen.version} is missing or corrupt ({source}): choose"
            " another with `causa rollback VERSION`"
        )
    target = models_dir / chosen.file
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        _fsync_write(target.with_suffix(".tmp"), source.read_bytes())
        os.replace(target.with_suffix(".tmp"), target)
    _back_up(models_dir, current)
    replacing = f", replacing {current.version}" if current else ""
    restored = ModelInfo(**{**asdict(chosen), "decision": f"{ROLLBACK}{chosen.version}{replacing}"})
    write_manifest(models_dir, restored)
    prune_backups(models_dir, keep_backups)
    return restored


# A copy in progress is named .<file>.<pid>.tmp; one older than this was left by a process
# that died while copying.
STALE_TMP_S = 600


def _prune_local(current: Path, keep: int) -> None:
    """A worker's local copies: the newest `keep` model files stay (the one in service among
    them), and copies left half-done by a process that died."""
    files = sorted(current.glob("*.skops"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        old.unlink(missing_ok=True)
    for tmp in current.glob(".*.tmp"):
        if time.time() - tmp.stat().st_mtime > STALE_TMP_S:
            tmp.unlink(missing_ok=True)


def sync(store: Path, local: Path, keep: int = DEFAULT_KEEP_BACKUPS) -> ModelInfo | None:
    """Install the store's current model in `local` if it is not there yet; the model
    installed, or None when there was nothing new. ModelError when the copy does not match
    the manifest's checksum (nothing is installed then). Local copies are kept as many as
    the registry keeps backups (`keep`), plus the one in service."""
    info = read_manifest(store)
    if info is None:
        return None
    mine = read_manifest(local)
    if mine is not None and (mine.version, mine.sha256) == (info.version, info.sha256):
        return None
    target = local / info.file
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or sha256_of(target) != info.sha256:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            shutil.copyfile(store / info.file, tmp)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        found = sha256_of(tmp)
        if found != info.sha256:
            tmp.unlink()
            raise ModelError(
                f"model {info.version} in the store {store} has SHA-256 {found[:12]}…, its"
                f" manifest says {info.sha256[:12]}…: not installed, the model in service"
                " stays. Promote or roll back again to rewrite the store"
            )
        os.replace(tmp, target)
    write_manifest(local, info)
    _prune_local(target.parent, keep + 1)
    log.info("model copied from the store", model_version=info.version, store=str(store))
    return info


@dataclass(frozen=True)
class ModelRegistry:
    """Where causa's models live, decided once.

    `home` is where models are promoted, rolled back, listed and pruned: the shared model
    store when there is one (every machine mounts it), else the local models directory.
    `serving` is the directory a worker loads from: its own verified copy of the store
    (`sync`), or `home` itself without a store.
    """

    home: Path
    serving: Path
    keep_backups: int = DEFAULT_KEEP_BACKUPS

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        return cls(
            home=settings.model_store or settings.models_dir,
            serving=settings.models_dir,
            keep_backups=settings.keep_backups,
        )

    @classmethod
    def local(cls, directory: Path, keep_backups: int = DEFAULT_KEEP_BACKUPS) -> ModelRegistry:
        """A registry in one directory, without a shared store."""
        return cls(directory, directory, keep_backups)

    @property
    def shared(self) -> bool:
        return self.home != self.serving

    def current(self) -> ModelInfo | None:
        """The manifest of the model in service (None when there is none)."""
        return read_manifest(self.home)

    def load_current(self) -> LoadedModel:
        return load_current(self.home)

    def load(self, info: ModelInfo) -> LoadedModel:
        return load(self.home, info)

    def file_of(self, info: ModelInfo) -> Path:
        return self.home / info.file

    def promote(self, pipeline: Any, **manifest: Any) -> ModelInfo:
        """Make `pipeline` the model in service (see `promote`)."""
        return promote(self.home, pipeline, keep_backups=self.keep_backups, **manifest)

    def rollback(self, version: str | None = None) -> ModelInfo:
        return rollback(self.home, version, self.keep_backups)

    def models(self) -> list[tuple[str, ModelInfo]]:
        return list_models(self.home)

    def prune(self, keep: int | None = None) -> list[str]:
        return prune_backups(self.home, self.keep_backups if keep is None else keep)

    def sync(self) -> ModelInfo | None:
        """Copy a new model from the store to the serving directory, verified; nothing to do
        without a store."""
        return sync(self.home, self.serving, self.keep_backups) if self.shared else None
