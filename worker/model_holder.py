"""The model in service, per process, swapped without a restart.

Before each batch the holder stats models/manifest.json (no read unless it changed). When the
manifest names a new version, the new model is loaded and verified first and only then
replaces the reference, so a batch in flight finishes on the model it began with and a bad
file never replaces a good model. A new revision of the same model (its thresholds: `causa
thresholds --apply`, or a rollback to an earlier revision) replaces only the manifest the
model carries: the same verified pipeline with the new thresholds, nothing loaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import os
import threading
import time
from pathlib import Path

import structlog

from shared.notify import Notify
from training import registry
from training.registry import LoadedModel, ModelError, ModelRegistry

log = structlog.get_logger("causa.model")
# After a failed load, wait this long before trying the same manifest again, so that a broken
# file is not re-hashed before every batch.
RETRY_FAILED_LOAD_S = 10.0


def _stamp(directory: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(directory / registry.MANIFEST)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class ModelHolder:
    def __init__(self, models: ModelRegistry, notifier: Notify | None = None) -> None:
        self.registry = models
        self.notifier = notifier
        self.models_dir = models.serving
        self._model: LoadedModel | None = None
        self._seen: tuple[int, int, int] | None = None
        self._store_seen: tuple[int, int, int] | None = None
        self._retry_at = 0.0
        self._lock = threading.Lock()

    def _pull(self) -> None:
        """Copy a new model from the shared store (a stat per batch; a copy when it changed)."""
        store = self.registry.home
        stamp = _stamp(store)
        if stamp == self._store_seen:
            return
        try:
            self.registry.sync()
        except OSError as exc:  # the mount is away for a moment: try again next batch
            log.error("model store unreadable", error=str(exc), store=str(store))
            return
        except ModelError as exc:  # a bad copy: not again until the store changes
            self._refused("model not copied from the store", exc)
        self._store_seen = stamp

    def get(self) -> LoadedModel | None:
        """The model in service (a stat per call; a load when the manifest changed). One
        caller at a time: an API process's threads would otherwise each load a new model."""
        with self._lock:
            return self._get()

    def _get(self) -> LoadedModel | None:
        if self.registry.shared:
            self._pull()
        stamp = _stamp(self.models_dir)
        if stamp == self._seen and (self._model is not None or time.monotonic() < self._retry_at):
            return self._model
        self._seen = stamp
        keeping = self._model.version if self._model else None
        try:
            info = self.registry.serving_manifest()
            if info is None:
                self._retry_at = time.monotonic() + RETRY_FAILED_LOAD_S
                log.error(
                    "model not loaded",
                    error=f"no model in {self.models_dir}",
                    hint="train one with `causa train --bootstrap`",
                )
                return self._model
            if self._model is not None and same_model(self._model, info):
                return self._revised(self._model, info)
            model = registry.load(self.models_dir, info)
        except ModelError as exc:
            self._retry_at = time.monotonic() + RETRY_FAILED_LOAD_S
            self._refused("model not loaded", exc)
            return self._model
        except BaseException:  # cut short (the task's time limit): tried again next batch
            self._seen = None
            raise
        log.info("model loaded", model_version=model.version, previous=keeping)
        self._model = model
        # The model's objects live as long as it serves: kept out of the collector's scans,
        # each of which took some 150 ms with them (a stall of every request in flight). A
        # model replaced later is still freed, by reference counting.
        gc.freeze()
        _give_back_memory()
        return model

    def _revised(self, model: LoadedModel, info: registry.ModelInfo) -> LoadedModel:
        """The model in service with the manifest `info` (the same file): a new revision's
        thresholds are in force from the next batch."""
        if (model.info.revision, model.info.signature) == (info.revision, info.signature):
            return model
        revised = dataclasses.replace(model, info=info)
        log.info(
            "model revision in service",
            model_version=info.version,
            revision=info.revision,
            previous_revision=model.info.revision,
            thresholds=info.thresholds,
        )
        self._model = revised
        return revised

    def _refused(self, what: str, exc: ModelError) -> None:
        """The model in service stays (or none: tickets stay pending); people are told."""
        keeping = self._model.version if self._model else None
        log.error(what, error=str(exc), keeping=keeping)
        if self.notifier is not None:
            self.notifier.send(
                "model refused",
                f"{what}: {'the worker keeps model ' + keeping if keeping else 'no model'}",
                f"{exc}\n\nTickets stay pending until a model passes the checks.",
                level="failure",
                key="model-refused",
            )


def _give_back_memory() -> None:
    """Return to the system what loading freed: skops parses a model's vocabularies from
    JSON (some 100 MB of text for the default model), and the C library keeps the freed
    memory for later unless asked (glibc's malloc_trim; elsewhere nothing is done)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def same_model(model: LoadedModel, info: registry.ModelInfo) -> bool:
    """`info` describes the very file `model` was loaded from (a revision of its manifest
    changes its thresholds, not its file)."""
    return (model.version, model.info.sha256) == (info.version, info.sha256)
