"""The Optuna search: which features, which model, which hyper-parameters.

Trials are scored by cross-validated macro-F1 on the training tickets (never the holdout).
TF-IDF matrices are computed once per feature setting and fold, so a trial costs one model
fit per fold; a trial that lags the median after a fold is pruned. A candidate whose
inference is slower than the target (tickets per second on one core) is refused, so a
promoted model never slows the worker down.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import structlog
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import LabelEncoder
from threadpoolctl import threadpool_limits

from training import candidates

log = structlog.get_logger("causa.search")
CV_FOLDS = 3
SPEED_SAMPLE = 2000  # texts timed per speed check


@dataclass
class SearchResult:
    best: dict[str, Any]  # {"features": {...}, "family": str, "params": {...}, "f1": float}
    best_per_family: dict[str, dict[str, Any]]  # family -> {"params", "f1"} (best features)
    trials: int
    pruned: int
    too_slow: int
    seconds: float
    speed: dict[str, float] = field(default_factory=dict)  # feature key -> tickets/s


def suggest(
    trial: optuna.Trial | optuna.trial.FixedTrial, families: Sequence[str]
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    feats = {
        "ngram_max": trial.suggest_int("ngram_max", 1, 3),
        # min_df >= 3 keeps the vocabulary, the model file and the worker's memory small
        # (skops stores each term; min_df 1 made a 218 MB model and a 555 MB worker).
        "min_df": trial.suggest_int("min_df", 3, 6),
        "chars": trial.suggest_categorical("chars", [False, True]),
    }
    family = trial.suggest_categorical("family", list(families))
    weight = trial.suggest_categorical("class_weight", [None, "balanced"])
    if family == "svc":
        p = {"C": trial.suggest_float("svc_C", 0.05, 2.0, log=True), "class_weight": weight}
    elif family == "logreg":
        p = {"C": trial.suggest_float("logreg_C", 1.0, 100.0, log=True), "class_weight": weight}
    elif family == "sgd":
        p = {
            "alpha": trial.suggest_float("sgd_alpha", 1e-6, 1e-4, log=True),
            "class_weight": weight,
        }
    elif family == "cnb":
        p = {"alpha": trial.suggest_float("cnb_alpha", 0.01, 1.0, log=True)}
    else:
        p = {
            "svd": trial.suggest_int("xgb_svd", 100, 300, step=50),
            "trees": trial.suggest_int("xgb_trees", 100, 300, step=50),
            "depth": trial.suggest_int("xgb_depth", 4, 8),
            "eta": trial.suggest_float("xgb_eta", 0.05, 0.3, log=True),
        }
    return feats, family, p


class Search:
    def __init__(
        self, texts: Sequence[str], labels: Sequence[str], *, seed: int, min_tickets_per_s: float
    ) -> None:
        self.texts = list(texts)
        self.y = LabelEncoder().fit_transform(list(labels))
        self.seed = seed
        self.min_speed = min_tickets_per_s
        folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)
        self.folds = list(folds.split(np.zeros(len(self.y)), self.y))
        self._matrices: dict[tuple[str, int], tuple[Any, Any]] = {}
        self.speed: dict[str, float] = {}

    @staticmethod
    def _key(feats: dict[str, Any]) -> str:
        return ",".join(f"{k}={feats[k]}" for k in sorted(feats))

    def matrices(self, feats: dict[str, Any], fold: int) -> tuple[Any, Any]:
        key = (self._key(feats), fold)
        if key not in self._matrices:
            train, val = self.folds[fold]
            vectorizer = candidates.features(feats)
            xt = vectorizer.fit_transform([self.texts[i] for i in train])
            xv = vectorizer.transform([self.texts[i] for i in val])
            self._matrices[key] = (xt, xv)
        return self._matrices[key]

    def tickets_per_s(self, feats: dict[str, Any], family: str, p: dict[str, Any]) -> float:
        """Featurize and predict a sample on one thread: the worker's cost per ticket."""
        key = f"{self._key(feats)}|{family}"
        if key not in self.speed:
            sample = self.texts[:SPEED_SAMPLE]
            vectorizer = candidates.features(feats)
            x = vectorizer.fit_transform(sample)
            model = candidates.classifier(family, p, self.seed).fit(x, self.y[:SPEED_SAMPLE])
            with threadpool_limits(1):
                started = time.perf_counter()
                model.predict(vectorizer.transform(sample))
                self.speed[key] = len(sample) / (time.perf_counter() - started)
        return self.speed[key]

    def objective(self, trial: optuna.Trial, families: Sequence[str]) -> float:
        feats, family, p = suggest(trial, families)
        speed = self.tickets_per_s(feats, family, p)
        trial.set_user_attr("tickets_per_s", round(speed))
        if speed < self.min_speed:
            trial.set_user_attr("too_slow", True)
            raise optuna.TrialPruned(f"{speed:.0f} tickets/s < {self.min_speed:.0f}")
        scores = []
        for fold in range(CV_FOLDS):
            xt, xv = self.matrices(feats, fold)
            train, val = self.folds[fold]
            model = candidates.classifier(family, p, self.seed).fit(xt, self.y[train])
            scores.append(f1_score(self.y[val], model.predict(xv), average="macro"))
            trial.report(float(np.mean(scores)), fold)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(np.mean(scores))


def run(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    seed: int,
    n_trials: int,
    timeout_s: float,
    min_tickets_per_s: float,
    families: Sequence[str] = candidates.FAMILIES,
) -> SearchResult:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = Search(texts, labels, seed=seed, min_tickets_per_s=min_tickets_per_s)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
    )
    # Start from the known-good linear baselines so the search never ends worse than them.
    for family, extra in (
        ("svc", {"svc_C": 0.5}),
        ("logreg", {"logreg_C": 20.0}),
        ("sgd", {"sgd_alpha": 1e-5}),
        ("cnb", {"cnb_alpha": 0.3}),
    ):
        if family in families:
            study.enqueue_trial(
                {
                    "ngram_max": 2,
                    "min_df": 3,
                    "chars": False,
                    "family": family,
                    "class_weight": None,
                    **extra,
                }
            )
    started = time.monotonic()
    study.optimize(
        lambda t: search.objective(t, families),
        n_trials=n_trials,
        timeout=timeout_s,
        catch=(ValueError, MemoryError),
    )
    # Trials that ran (complete, pruned or failed); baselines still queued (WAITING) when the
    # budget ran out did not, and are not counted.
    ran = [t for t in study.trials if t.state.is_finished()]
    done = [t for t in ran if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise RuntimeError(
            "no candidate completed the search: raise the trial budget or"
            " lower the inference target"
        )
    per_family: dict[str, dict[str, Any]] = {}  # each family's best trial, best first
    for t in sorted(done, key=lambda t: t.value or 0, reverse=True):
        if t.params["family"] not in per_family:
            trial_feats, _, trial_params = _replay(t, families)
            per_family[t.params["family"]] = {
                "features": trial_feats,
                "params": trial_params,
                "f1": t.value,
            }
    best = study.best_trial
    feats, family, params = _replay(best, families)
    result = SearchResult(
        best={"features": feats, "family": family, "params": params, "f1": best.value},
        best_per_family=per_family,
        trials=len(ran),
        pruned=sum(t.state == optuna.trial.TrialState.PRUNED for t in ran),
        too_slow=sum(bool(t.user_attrs.get("too_slow")) for t in ran),
        seconds=time.monotonic() - started,
        speed=search.speed,
    )
    log.info(
        "search finished",
        trials=result.trials,
        pruned=result.pruned,
        too_slow=result.too_slow,
        best_f1=round(best.value or 0, 4),
        family=family,
        seconds=round(result.seconds, 1),
    )
    return result


def _replay(
    trial: optuna.trial.FrozenTrial, families: Sequence[str]
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The (features, family, params) a finished trial stood for."""
    return suggest(optuna.trial.FixedTrial(trial.params), families)
