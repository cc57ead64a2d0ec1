"""The model in service, per process, swapped without a restart.

Before each batch the holder stats models/manifest.json (no read unless it changed). When the
manifest names a new version, the new model is loaded and verified first and only then
replaces the reference, so a batch in flight finishes on the model it began with and a bad
file never replaces a good model. A new revision of the same model (its thresholds: `causa
thresholds --apply`, or a rollback to an earlier revision) replaces only the manifest the
model carries: the same verified pipeline with the new thresholds, nothing loaded.

A replacement loads in a thread of its own, outside any task's time limit: a batch waits for
it at most `wait_s` (half the task's soft time limit in a worker), then goes on with the model
in service. A new model serves from the next batch when it loads within that, else from the
first batch after it loaded; a slow load is never cut off by the limit and started over.
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
from shared.settings import Settings
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
    def __init__(
        self, models: ModelRegistry, notifier: Notify | None = None, wait_s: float | None = None
    ) -> None:
        self.registry = models
        self.notifier = notifier
        self.models_dir = models.serving
        # How long a caller waits for a replacement being loaded (None: until it is loaded).
        self.wait_s = wait_s
        self._model: LoadedModel | None = None
        self._seen: tuple[int, int, int] | None = None
        self._store_seen: tuple[int, int, int] | None = None
        self._retry_at = 0.0
        self._loading: threading.Thread | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, models: ModelRegistry | None = None) -> ModelHolder:
        """A worker's or API process's holder (of `models`, else the settings' registry): a
        batch gives a replacement being loaded half its soft time limit, and keeps the other
        half for its tickets."""
        return cls(
            models or ModelRegistry.from_settings(settings), wait_s=settings.soft_time_limit / 2
        )

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
        caller at a time looks: an API process's threads would otherwise each load a new
        model. A replacement being loaded is waited for at most `wait_s`."""
        with self._lock:
            loading = self._look()
        if loading is not None:
            loading.join(self.wait_s)
        return self._model

    def _look(self) -> threading.Thread | None:
        """Act on the manifest: the load of a replacement in flight, if any."""
        if self.registry.shared:
            self._pull()
        if self._loading is not None and self._loading.is_alive():
            return self._loading
        stamp = _stamp(self.models_dir)
        if stamp == self._seen and (self._model is not None or time.monotonic() < self._retry_at):
            return None
        self._seen = stamp
        try:
            info = self.registry.serving_manifest()
            if info is None:
                self._retry_at = time.monotonic() + RETRY_FAILED_LOAD_S
                log.error(
                    "model not loaded",
                    error=f"no model in {self.models_dir}",
                    hint="train one with `causa train --bootstrap`",
                )
                return None
            if self._model is not None and same_model(self._model, info):
                self._revised(self._model, info)
                return None
            if self._model is None:  # nothing to serve meanwhile: loaded here
                self._install(registry.load(self.models_dir, info))
                return None
        except ModelError as exc:
            self._retry_at = time.monotonic() + RETRY_FAILED_LOAD_S
            self._refused("model not loaded", exc)
            return None
        except BaseException:  # cut short (the task's time limit): tried again next batch
            self._seen = None
            raise
        self._loading = threading.Thread(
            target=self._replace, args=(info,), name="causa-model-load", daemon=True
        )
        self._loading.start()
        return self._loading

    def _replace(self, info: registry.ModelInfo) -> None:
        """Load `info`'s model beside the one in service, then serve it; on any failure the
        model in service stays (tried again when the manifest changes)."""
        try:
            model = registry.load(self.models_dir, info)
        except Exception as exc:
            with self._lock:
                self._refused("model not loaded", exc)
            return
        with self._lock:
            self._install(model)

    def _install(self, model: LoadedModel) -> None:
        log.info(
            "model loaded",
            model_version=model.version,
            previous=self._model.version if self._model else None,
        )
        self._model = model
        # The model's objects live as long as it serves: kept out of the collector's scans,
        # each of which took some 150 ms with them (a stall of every request in flight). A
        # model replaced later is still freed, by reference counting.
        gc.freeze()
        _give_back_memory()

    def _revised(self, model: LoadedModel, info: registry.ModelInfo) -> None:
        """The model in service with the manifest `info` (the same file): a new revision's
        thresholds are in force from the next batch."""
        if (model.info.revision, model.info.signature) == (info.revision, info.signature):
            return
        log.info(
            "model revision in service",
            model_version=info.version,
            revision=info.revision,
            previous_revision=model.info.revision,
            thresholds=info.thresholds,
        )
        self._model = dataclasses.replace(model, info=info)

    def _refused(self, what: str, exc: Exception) -> None:
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
