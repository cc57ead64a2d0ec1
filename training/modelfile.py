"""A model file and what its manifest says of it (`ModelInfo`), and the one way a file
becomes a model in service (`load`).

Model files are skops files (no pickle): a file is read once, its bytes' SHA-256 must match
the manifest, every type in it that skops does not trust by default must be on causa's exact
allow-list (no library function: a function in a model file is code run at predict time),
and the model is loaded from those same bytes. A manifest's version and file name must have
causa's form (no path outside the registry). A model built with another minor version of
scikit-learn or XGBoost is refused: retrain it.
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from billiard.exceptions import SoftTimeLimitExceeded

if TYPE_CHECKING:
    from training.fastpath import Compiled

# The types beyond skops' own trusted ones that causa's pipelines contain, exactly (a test
# builds every model family and checks): causa's text normaliser is the only function, and
# causa's own class factors (training.candidates.Biased) the only class of causa's.
TRUSTED_TYPES = frozenset(
    {
        "shared.text.normalize",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.utils._bunch.Bunch",
        "training.candidates.Biased",
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
    }
)
# A model version: when it was made and the start of its file's SHA-256.
VERSION = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
# A version and, for a thresholds revision of it, the revision (see ModelInfo.label).
LABEL = re.compile(VERSION.pattern.removesuffix("$") + r"(\.r[1-9][0-9]*)?$")
# How a rolled-back model's manifest begins its decision (and how a repeat is recognised).
ROLLBACK = "rollback to "


class ModelError(RuntimeError):
    """A model cannot be used; the message says why and what to do."""


def library_versions() -> dict[str, str]:
    """The versions of what a model file needs, read from the installed packages' metadata:
    nothing is imported (XGBoost and the pandas it brings cost a worker some 90 MB that a
    model without XGBoost never uses)."""
    return {
        "python": platform.python_version(),
        "scikit-learn": metadata.version("scikit-learn"),
        "xgboost": _installed("xgboost", "xgboost-cpu"),
        "skops": metadata.version("skops"),
    }


def _installed(*names: str) -> str:
    """The version of the first of these distributions that is installed (XGBoost comes as
    `xgboost` or as `xgboost-cpu`, causa's dependency)."""
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(name)
    raise metadata.PackageNotFoundError(names[0])


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
    # The SHA-256 of the model's twin (twins/<version>.skops): the same recipe fitted
    # without the holdout, which comparisons, thresholds and backtests score; "" when the
    # model itself never learned from the holdout (a bootstrap model, CAUSA_REFIT_ALL=false).
    twin_sha256: str = ""
    # The manifest's revision for this model: 0 as promoted; each new revision of the same
    # model (thresholds from live corrections, `causa thresholds --apply`) counts one up.
    # Workers reload on a new revision as on a new version (worker/model_holder.py).
    revision: int = 0
    # HMAC-SHA256 of everything above with the installation's key (training.registry).
    signature: str = ""

    @property
    def name(self) -> str:
        """The model file's name (in current/, and in a backup's directory)."""
        return f"{self.version}.skops"

    @property
    def label(self) -> str:
        """The version, and its revision when it has one: `20261130T020000Z-ab12cd34.r2`."""
        return f"{self.version}.r{self.revision}" if self.revision else self.version

    @property
    def rolled_back(self) -> bool:
        """This model is in service because a rollback put it back."""
        return self.decision.startswith(ROLLBACK)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelInfo:
        """A manifest's content; ModelError unless its version and file have causa's form
        (`current/<version>.skops`: a manifest never points outside the registry)."""
        known = {f for f in cls.__dataclass_fields__}
        try:
            info = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise ModelError(f"a manifest lacks what causa writes in one ({exc})") from None
        revision = info.revision
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
            raise ModelError(
                f"a manifest names revision {str(revision)[:40]!r}: not a revision causa wrote"
                " (a whole number from 0); refusing it"
            )
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
    # The same probabilities without scikit-learn's per-call checks, when the pipeline is one
    # training.fastpath knows (and they matched): see there.
    fast: Compiled | None = field(default=None, repr=False, compare=False)

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def classes(self) -> list[str]:
        return self.info.classes

    @property
    def thresholds(self) -> dict[str, float]:
        return self.info.thresholds

    def predict_proba(self, texts: Sequence[str]) -> Any:
        if self.fast is not None:
            return self.fast(texts)
        return self.pipeline.predict_proba(list(texts))

    def explain(self, texts: Sequence[str]) -> tuple[Any, list[list[tuple[str, float]]] | None]:
        """The probabilities, and per text the terms that raised its most likely cause most
        (None: this kind of model is not explained; see training.fastpath)."""
        if self.fast is None:
            return self.predict_proba(texts), None
        return self.fast.explain(texts)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dumps(pipeline: Any) -> bytes:
    import skops.io as sio  # lazy: see library_versions

    # Deflated: skops writes the vocabularies as indented JSON (some 240 MB for the vote on
    # the reference data), which compresses eightfold.
    return bytes(sio.dumps(pipeline, compression=zipfile.ZIP_DEFLATED))


def load(path: Path, info: ModelInfo) -> LoadedModel:
    """Verify and load the model file `path` that `info` describes. Raises ModelError, never
    loads blindly."""
    try:
        data = path.read_bytes()  # read once: what is checked is what is loaded
    except FileNotFoundError:
        raise ModelError(
            f"model file {path} is missing: restore it with `causa rollback`"
            " or train again with `causa train --bootstrap --force`"
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
        if isinstance(exc, SoftTimeLimitExceeded):
            raise  # the task's time ran out while loading: not the file's fault
        raise ModelError(f"model file {path} could not be loaded: {exc}") from exc
    from training import fastpath  # lazy: see library_versions

    return LoadedModel(info, pipeline, fastpath.compile(pipeline))
