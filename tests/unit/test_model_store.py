"""The shared model store: workers copy a new model from it, checksum verified."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import KEY
from training import registry
from training.registry import ModelError, ModelRegistry
from worker.model_holder import ModelHolder


def promote_again(store: Path) -> registry.ModelInfo:
    current = registry.load_current(store, KEY)
    return registry.promote(
        store,
        current.pipeline,
        key=KEY,
        classes=current.classes,
        n_train=current.info.n_train + 1,
    )


def test_a_worker_serves_what_is_promoted_in_the_store(model: Path, tmp_path: Path) -> None:
    # given the registry in a shared store and a worker with an empty local directory
    store, local = model, tmp_path / "local"
    holder = ModelHolder(ModelRegistry(store, local, KEY))
    first = holder.get()
    assert first is not None and first.version == registry.read_manifest(store, KEY).version  # type: ignore[union-attr]
    assert registry.read_manifest(local, KEY) == registry.read_manifest(store, KEY)

    # when a training on another machine promotes a new model into the store
    newer = promote_again(store)

    # then the worker's next batch runs on it, from its own verified copy
    served = holder.get()
    assert served is not None and served.version == newer.version
    assert (local / newer.file).read_bytes() == (store / newer.file).read_bytes()


def test_a_copy_that_does_not_match_the_checksum_is_not_installed(
    model: Path, tmp_path: Path
) -> None:
    store, local = model, tmp_path / "local"
    holder = ModelHolder(ModelRegistry(store, local, KEY))
    before = holder.get()
    assert before is not None
    newer = promote_again(store)
    data = (store / newer.file).read_bytes()
    (store / newer.file).write_bytes(data[:-10] + b"0123456789")

    with pytest.raises(ModelError, match="not installed"):
        registry.sync(store, local, KEY)
    assert holder.get() is before, "the model in service stays"
    assert registry.read_manifest(local, KEY).version == before.version  # type: ignore[union-attr]


def test_nothing_is_copied_when_the_store_has_nothing_new(model: Path, tmp_path: Path) -> None:
    local = tmp_path / "local"
    assert registry.sync(model, local, KEY) is not None
    assert registry.sync(model, local, KEY) is None
    assert registry.sync(tmp_path / "empty-store", local, KEY) is None


def test_a_workers_local_copies_are_pruned_like_the_backups(model: Path, tmp_path: Path) -> None:
    # given a worker that copied 4 models from the store in turn, keeping 1 backup's worth,
    # and a copy a dead process left half-done long ago
    store, local = model, tmp_path / "local"
    current = registry.load_current(store, KEY)
    versions = []
    for i in range(4):
        current.pipeline.set_params(model__n_jobs=i + 1)  # other bytes: another version
        info = registry.promote(
            store, current.pipeline, classes=current.classes, n_train=1, key=KEY
        )
        versions.append(info.version)
        assert registry.sync(store, local, KEY, keep=1) == info
        if i == 0:
            stale = local / "current" / f".{info.version}.skops.4242.tmp"
            stale.write_bytes(b"half")
            os.utime(stale, (0, 0))
    # then the local directory holds the model in service and the one before, no leftovers
    left = sorted(p.name for p in (local / "current").iterdir())
    assert left == sorted(f"{v}.skops" for v in versions[-2:])
    assert registry.load_current(local, KEY).version == versions[-1]
