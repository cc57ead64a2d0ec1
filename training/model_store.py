"""The shared model store: how a model promoted on one machine reaches workers on others.

`CAUSA_MODEL_STORE` is a directory every machine mounts (NFS, EFS, a shared volume) holding
the registry (manifest, current model, backups): training, rollback and `causa models` work
on it. Each worker serves from a local copy in `CAUSA_MODELS_DIR`: when the store's manifest
names a new version, the file is copied, its SHA-256 checked against the manifest, and only
then the local manifest replaced, so the model holder hot-swaps it like a local promotion.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import structlog

from training import registry
from training.registry import ModelError, ModelInfo

log = structlog.get_logger("causa.model_store")


def sync(store: Path, local: Path) -> ModelInfo | None:
    """Install the store's current model in `local` if it is not there yet; the model
    installed, or None when there was nothing new. ModelError when the copy does not match
    the manifest's checksum (nothing is installed then)."""
    info = registry.read_manifest(store)
    if info is None:
        return None
    mine = registry.read_manifest(local)
    if mine is not None and (mine.version, mine.sha256) == (info.version, info.sha256):
        return None
    target = local / info.file
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or registry.sha256_of(target) != info.sha256:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(store / info.file, tmp)
        found = registry.sha256_of(tmp)
        if found != info.sha256:
            tmp.unlink()
            raise ModelError(
                f"model {info.version} in the store {store} has SHA-256 {found[:12]}…, its"
                f" manifest says {info.sha256[:12]}…: not installed, the model in service"
                " stays. Promote or roll back again to rewrite the store"
            )
        os.replace(tmp, target)
    registry.write_manifest(local, info)
    log.info("model copied from the store", model_version=info.version, store=str(store))
    return info
