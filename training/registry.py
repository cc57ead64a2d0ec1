"""The model registry: models/manifest.json names the current model, models/current/ holds
its file, models/backups/<version>/ keeps earlier ones.

`ModelRegistry` is the one object every caller uses: built from settings, it decides once
where models live (the shared store CAUSA_MODEL_STORE, or the local CAUSA_MODELS_DIR) and
with which key, and serves promote, load, list, rollback, prune and the workers' verified
local copy. The functions below it work on one directory; only the registry and the tests
call them.

Every manifest is signed: an HMAC-SHA256 of its content (the model file's SHA-256 included)
with the installation's key, CAUSA_MODEL_SIGNING_KEY, or on a single machine a key made once
under CAUSA_HOME. A manifest that is unsigned or signed with another key is refused, so
whoever can write to the models directory but does not hold the key cannot put a model in
service. What a model file may contain is checked by training.modelfile.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from shared.settings import ConfigError, Settings
from training.modelfile import (
    LABEL,
    ROLLBACK,
    TRUSTED_TYPES,
    VERSION,
    LoadedModel,
    ModelError,
    ModelInfo,
    dumps,
    library_versions,
    preload,
    sha256_of,
)
from training.modelfile import load as load_file

__all__ = [
    "LABEL",
    "MANIFEST",
    "TRUSTED_TYPES",
    "VERSION",
    "LoadedModel",
    "ModelError",
    "ModelInfo",
    "ModelRegistry",
    "library_versions",
    "preload",
    "signing_key",
]

log = structlog.get_logger("causa.registry")
MANIFEST = "manifest.json"
TWINS = "twins"  # each model's twin, by version (see ModelInfo.twin_sha256)
# Backups kept after a promotion; older ones are deleted.
DEFAULT_KEEP_BACKUPS = 10
# The key made on a single machine when CAUSA_MODEL_SIGNING_KEY is not set, in CAUSA_HOME.
KEY_FILE = "model-signing.key"


def signing_key(settings: Settings) -> bytes:
    """The key that signs and verifies manifests: CAUSA_MODEL_SIGNING_KEY, required with a
    shared store (every machine must hold the same one); without a store, a key made once
    under CAUSA_HOME (readable by its owner only)."""
    if settings.model_signing_key is not None:
        return settings.model_signing_key.get_secret_value().encode()
    if settings.model_store is not None:
        raise ConfigError(
            f"CAUSA_MODEL_STORE={settings.model_store} needs CAUSA_MODEL_SIGNING_KEY: every"
            " machine that promotes to or loads from the store must hold the same key, so that"
            " a manifest written by anyone else is refused. Make one with"
            " `python -c 'import secrets; print(secrets.token_hex(32))'` and set it on each"
        )
    return _local_key(settings.home / KEY_FILE)


def _local_key(path: Path) -> bytes:
    """Read the key file, or make it: written whole under another name, then linked into
    place, so that two processes starting at once end with the same key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
            log.info("model signing key made", path=str(path))
        tmp.unlink()
    return path.read_text().strip().encode()


def _mac(info: ModelInfo, key: bytes) -> str:
    body = asdict(info)
    del body["signature"]
    if not body["twin_sha256"]:  # a manifest signed before twins stays valid
        del body["twin_sha256"]
    if not body["revision"]:  # so does one signed before revisions (revision 0)
        del body["revision"]
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def signed(info: ModelInfo, key: bytes) -> ModelInfo:
    return replace(info, signature=_mac(info, key))


def _parse(path: Path) -> ModelInfo | None:
    """A manifest as written, not yet verified (None when there is none)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"{path} is unreadable ({exc}): restore it with `causa rollback`"
            " or train a new model with `causa train --bootstrap --force`"
        ) from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a manifest causa wrote (a JSON object); refusing it")
    return ModelInfo.from_json(data)


def read_manifest(models_dir: Path, key: bytes) -> ModelInfo | None:
    """The manifest in `models_dir`, its signature verified (None when there is none)."""
    path = models_dir / MANIFEST
    info = _parse(path)
    if info is None:
        return None
    if not info.signature:
        raise ModelError(
            f"{path} (model {info.version}) is not signed, so it is refused: a causa from"
            " before signed manifests wrote it, or someone else did. If you trust this"
            " directory, sign its models once with `causa sign-models`"
        )
    if not hmac.compare_digest(info.signature, _mac(info, key)):
        raise ModelError(
            f"{path} (model {info.version}) is not signed with this installation's key: it"
            " was changed, or signed with another CAUSA_MODEL_SIGNING_KEY; refusing it."
            " Every machine needs the same key"
        )
    return info


def load(models_dir: Path, info: ModelInfo) -> LoadedModel:
    """Verify and load the model the manifest names. Raises ModelError, never loads blindly."""
    return load_file(models_dir / info.file, info)


def load_twin(models_dir: Path, info: ModelInfo) -> LoadedModel:
    """The model's twin (see ModelInfo.twin_sha256), verified like the model; the model
    itself when it has none (it never learned from the holdout)."""
    if not info.twin_sha256:
        return load(models_dir, info)
    path = models_dir / TWINS / f"{info.version}.skops"
    return load_file(path, replace(info, sha256=info.twin_sha256))


def load_current(models_dir: Path, key: bytes) -> LoadedModel:
    """The model in service, verified; ModelError when there is none or it is unusable."""
    info = read_manifest(models_dir, key)
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


def write_manifest(models_dir: Path, info: ModelInfo, key: bytes) -> ModelInfo:
    """Sign `info` and replace the manifest atomically: readers see the old one or the new
    one, never half. The manifest as written."""
    info = signed(info, key)
    tmp = models_dir / f".{MANIFEST}.{os.getpid()}.tmp"  # several processes may write at once
    _fsync_write(tmp, json.dumps(asdict(info), indent=2).encode())
    os.replace(tmp, models_dir / MANIFEST)
    _fsync_dir(models_dir)
    return info


def new_version(data: bytes) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{hashlib.sha256(data).hexdigest()[:8]}"


def promote(
    models_dir: Path,
    pipeline: Any,
    *,
    key: bytes,
    classes: list[str],
    n_train: int,
    metrics: dict[str, Any] | None = None,
    thresholds: dict[str, float] | None = None,
    decision: str = "bootstrap",
    keep_backups: int = DEFAULT_KEEP_BACKUPS,
    reference: dict[str, Any] | None = None,
    twin: Any = None,
) -> ModelInfo:
    """Make `pipeline` the current model; the one it replaces becomes a backup. `twin`: the
    same recipe fitted without the holdout, kept in twins/ for the comparisons to come."""
    data = dumps(pipeline)
    version = new_version(data)
    twin_sha256 = ""
    if twin is not None:
        twin_data = dumps(twin)
        (models_dir / TWINS).mkdir(parents=True, exist_ok=True)
        _fsync_write(models_dir / TWINS / f"{version}.skops", twin_data)
        twin_sha256 = hashlib.sha256(twin_data).hexdigest()
    current = models_dir / "current"
    current.mkdir(parents=True, exist_ok=True)
    path = current / f"{version}.skops"
    _fsync_write(path, data)
    _fsync_dir(current)
    previous = read_manifest(models_dir, key)
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
        twin_sha256=twin_sha256,
    )
    info = write_manifest(models_dir, info, key)
    # Keep the file just replaced: a worker may have read the old manifest a moment ago.
    keep = {path.name} | ({previous.name} if previous else set())
    for old in current.glob("*.skops"):
        if old.name not in keep:
            old.unlink()
    prune_backups(models_dir, keep_backups, key)
    return info


def backup_name(info: ModelInfo) -> str:
    """The directory under backups/ of a model's manifest revision: its version for the
    revision a promotion wrote (0), `<version>.r<revision>` for a later one."""
    return info.label


def _backup_key(name: str) -> tuple[str, int]:
    """(version, revision) of a backup directory's name, to order them (r10 after r9)."""
    version, _, revision = name.partition(".r")
    return version, int(revision) if revision.isdigit() else 0


def _back_up(models_dir: Path, info: ModelInfo | None) -> None:
    """Copy the model `info` names to backups/<backup_name>/ with its manifest. A later
    revision of a model links its file where it can (the same bytes: no second copy)."""
    if info is None or not (models_dir / info.file).exists():
        return
    backup = models_dir / "backups" / backup_name(info)
    backup.mkdir(parents=True, exist_ok=True)
    if info.revision:
        (backup / info.name).unlink(missing_ok=True)
        try:
            os.link(models_dir / info.file, backup / info.name)
        except OSError:  # another file system, or links not allowed: a copy
            shutil.copy2(models_dir / info.file, backup / info.name)
    else:
        shutil.copy2(models_dir / info.file, backup / info.name)
    (backup / MANIFEST).write_text(json.dumps(asdict(info), indent=2))


def prune_backups(models_dir: Path, keep: int, key: bytes) -> list[str]:
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
    current = read_manifest(models_dir, key)
    in_service = backup_name(current) if current else None
    versions = sorted(
        (p for p in backups.iterdir() if p.is_dir() and p.name != in_service),
        key=lambda p: _backup_key(p.name),
    )
    removed = versions[: max(0, len(versions) - keep)]
    for old in removed:
        shutil.rmtree(old)
    kept = {_backup_key(p.name)[0] for p in versions if p not in removed}
    kept |= {current.version} if current else set()
    for twin in (models_dir / TWINS).glob("*.skops"):
        if twin.stem not in kept:  # its model is gone: nothing will compare with it
            twin.unlink()
    return [p.name for p in removed]


def list_models(models_dir: Path, key: bytes) -> list[tuple[str, ModelInfo]]:
    """('current', info) first, then ('backup', info) newest first (by version, then
    revision); a backup of the very manifest in service is left out."""
    out: list[tuple[str, ModelInfo]] = []
    current = read_manifest(models_dir, key)
    if current is not None:
        out.append(("current", current))
    backups = models_dir / "backups"
    if backups.exists():
        found = []
        for d in (p for p in backups.iterdir() if p.is_dir()):
            info = read_manifest(d, key)
            if info is not None and (current is None or info.label != current.label):
                found.append(info)
        found.sort(key=lambda i: (i.version, i.revision), reverse=True)
        out.extend(("backup", info) for info in found)
    return out


def rollback(
    models_dir: Path,
    key: bytes,
    version: str | None = None,
    keep_backups: int = DEFAULT_KEEP_BACKUPS,
) -> ModelInfo:
    """Put a backup back in service (default: the newest one), the same atomic way as a
    promotion; the model it replaces becomes a backup in turn. Without `version`, a model
    that a rollback put in service stays: repeating a rollback changes nothing."""
    current = read_manifest(models_dir, key)
    if version is None and current is not None and current.rolled_back:
        raise ModelError(
            f"model {current.version} is in service through a rollback already"
            f" ({current.decision}): repeating it changes nothing. To roll back further, name"
            " the version: `causa rollback VERSION` (`causa models` lists them)"
        )
    backups = [info for kind, info in list_models(models_dir, key) if kind == "backup"]
    if not backups:
        raise ModelError(f"no backups in {models_dir / 'backups'}: nothing to roll back to")
    # A version names its newest revision among the backups; VERSION.rN one revision.
    chosen = (
        backups[0]
        if version is None
        else next((b for b in backups if version in (b.version, b.label)), None)
    )
    if chosen is None:
        raise ModelError(
            f"no backup {version!r}; `causa models` lists them:"
            f" {', '.join(b.label for b in backups)}"
        )
    source = models_dir / "backups" / backup_name(chosen) / chosen.name
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
    replacing = f", replacing {current.label}" if current else ""
    restored = replace(chosen, decision=f"{ROLLBACK}{chosen.label}{replacing}")
    restored = write_manifest(models_dir, restored, key)
    prune_backups(models_dir, keep_backups, key)
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


def sync(
    store: Path, local: Path, key: bytes, keep: int = DEFAULT_KEEP_BACKUPS
) -> ModelInfo | None:
    """Install the store's current model in `local` if it is not there yet; the model
    installed, or None when there was nothing new. ModelError when the copy does not match
    the manifest's checksum (nothing is installed then). Local copies are kept as many as
    the registry keeps backups (`keep`), plus the one in service."""
    info = read_manifest(store, key)
    if info is None:
        return None
    try:
        mine = read_manifest(local, key)
    except ModelError:  # a local copy that does not verify is replaced
        mine = None
    # A new revision of the same model (its thresholds) is installed too: only its manifest.
    if mine is not None and (mine.version, mine.sha256, mine.revision, mine.signature) == (
        info.version,
        info.sha256,
        info.revision,
        info.signature,
    ):
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
    write_manifest(local, info, key)
    _prune_local(target.parent, keep + 1)
    log.info("model copied from the store", model_version=info.version, store=str(store))
    return info


def revise(
    models_dir: Path,
    key: bytes,
    thresholds: dict[str, float],
    decision: str,
    keep_backups: int = DEFAULT_KEEP_BACKUPS,
) -> ModelInfo:
    """A new signed revision of the model in service's manifest with these per-class
    thresholds: the same model file and version, the revision one above any of this version
    (a rolled-back one included), written the atomic way of a promotion. The revision it
    replaces becomes a backup, so `rollback` restores the previous thresholds."""
    current = read_manifest(models_dir, key)
    if current is None:
        raise ModelError(f"no model in {models_dir}: train one with `causa train`")
    bad = {c: t for c, t in thresholds.items() if not 0.0 <= t <= 1.0}
    if bad:
        raise ModelError(f"thresholds must lie from 0 to 1; these do not: {bad}")
    revisions = [
        i.revision for _, i in list_models(models_dir, key) if i.version == current.version
    ]
    _back_up(models_dir, current)
    revised = replace(
        current,
        thresholds=dict(sorted(thresholds.items())),
        revision=max(revisions) + 1,
        decision=decision,
        signature="",
    )
    revised = write_manifest(models_dir, revised, key)
    prune_backups(models_dir, keep_backups, key)
    return revised


def sign_unsigned(models_dir: Path, key: bytes) -> list[str]:
    """Sign the manifests in `models_dir` (the current one and the backups') that carry no
    signature, each after its model file passed every check of a load; the versions signed.
    Once, after an upgrade from a causa that did not sign: a manifest signed with another
    key is left as it is (refused)."""
    done = []
    backups = sorted((models_dir / "backups").glob("*/"))
    for directory in [models_dir, *backups]:
        info = _parse(directory / MANIFEST)
        if info is None or info.signature:
            continue
        # A backup keeps its file beside its manifest; the current one under current/.
        file = models_dir / info.file if directory == models_dir else directory / info.name
        load_file(file, info)  # every check of a load in service
        write_manifest(directory, info, key)
        done.append(info.version)
    return done


@dataclass(frozen=True)
class ModelRegistry:
    """Where causa's models live, decided once.

    `home` is where models are promoted, rolled back, listed and pruned: the shared model
    store when there is one (every machine mounts it), else the local models directory.
    `serving` is the directory a worker loads from: its own verified copy of the store
    (`sync`), or `home` itself without a store. `key` signs and verifies every manifest.
    """

    home: Path
    serving: Path
    key: bytes = field(repr=False)
    keep_backups: int = DEFAULT_KEEP_BACKUPS

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        return cls(
            home=settings.model_store or settings.models_dir,
            serving=settings.models_dir,
            key=signing_key(settings),
            keep_backups=settings.keep_backups,
        )

    @classmethod
    def local(
        cls, directory: Path, key: bytes, keep_backups: int = DEFAULT_KEEP_BACKUPS
    ) -> ModelRegistry:
        """A registry in one directory, without a shared store."""
        return cls(directory, directory, key, keep_backups)

    @property
    def shared(self) -> bool:
        return self.home != self.serving

    def current(self) -> ModelInfo | None:
        """The manifest of the model in service (None when there is none)."""
        return read_manifest(self.home, self.key)

    def serving_manifest(self) -> ModelInfo | None:
        """The manifest of the model this machine serves (its copy of the store's)."""
        return read_manifest(self.serving, self.key)

    def load_current(self) -> LoadedModel:
        return load_current(self.home, self.key)

    def load(self, info: ModelInfo) -> LoadedModel:
        return load(self.home, info)

    def load_twin(self, info: ModelInfo) -> LoadedModel:
        return load_twin(self.home, info)

    def file_of(self, info: ModelInfo) -> Path:
        return self.home / info.file

    def promote(self, pipeline: Any, **manifest: Any) -> ModelInfo:
        """Make `pipeline` the model in service (see `promote`)."""
        return promote(
            self.home, pipeline, key=self.key, keep_backups=self.keep_backups, **manifest
        )

    def rollback(self, version: str | None = None) -> ModelInfo:
        return rollback(self.home, self.key, version, self.keep_backups)

    def revise(self, thresholds: dict[str, float], decision: str) -> ModelInfo:
        """Publish new thresholds for the model in service (see `revise`)."""
        return revise(self.home, self.key, thresholds, decision, self.keep_backups)

    def models(self) -> list[tuple[str, ModelInfo]]:
        return list_models(self.home, self.key)

    def prune(self, keep: int | None = None) -> list[str]:
        return prune_backups(self.home, self.keep_backups if keep is None else keep, self.key)

    def sign_unsigned(self) -> list[str]:
        return sign_unsigned(self.home, self.key)

    def sync(self) -> ModelInfo | None:
        """Copy a new model from the store to the serving directory, verified; nothing to do
        without a store."""
        return sync(self.home, self.serving, self.key, self.keep_backups) if self.shared else None
