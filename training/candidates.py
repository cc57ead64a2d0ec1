"""Candidate pipelines: TF-IDF features with a linear model or XGBoost, and stacks of them.

Every pipeline takes raw ticket texts and has predict_proba. The text preprocessor is
shared.text.normalize, the one function of causa's a model file may name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from joblib import parallel_config
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import TruncatedSVD
from sklearn.ensemble import StackingClassifier, VotingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.svm import LinearSVC
from sklearn.utils import Bunch
from threadpoolctl import threadpool_limits

from shared.text import normalize

FAMILIES = ("svc", "logreg", "sgd", "cnb", "xgb")
# The calibration's and the stack's inner folds: enough for stable out-of-fold scores,
# few enough to keep a fit within the training budget.
INNER_FOLDS = 3
BALANCED = "balanced"  # class weights inverse to the classes' frequencies
# A training's helper processes (joblib's loky) end this long after their last fit, not the
# default 5 minutes: a worker does not keep them, and their memory, between trainings.
LOKY_IDLE_S = 30
STACK_FOLDS = 5


def features(p: dict[str, Any]) -> TfidfVectorizer | FeatureUnion:
    words = TfidfVectorizer(
        preprocessor=normalize,
        ngram_range=(1, int(p["ngram_max"])),
        min_df=int(p["min_df"]),
        sublinear_tf=True,
        max_features=p.get("max_features"),
        dtype=np.float32,
    )
    if not p.get("chars"):
        return words
    return FeatureUnion([("words", words), ("chars", characters((2, 4), 3, 200_000))])


def characters(ngrams: tuple[int, int], min_df: int, most: int | None) -> TfidfVectorizer:
    """Character n-grams inside word boundaries: spellings, typos, word parts."""
    return TfidfVectorizer(
        preprocessor=normalize,
        analyzer="char_wb",
        ngram_range=ngrams,
        min_df=min_df,
        sublinear_tf=True,
        max_features=most,
        dtype=np.float32,
    )


# The vote's word model, measured on the reference data (5-fold cross-validation of the vote:
# word 1-2-grams with min_df 3 within 0.001 of min_df 1, at a fifth of the memory).
VOTE_WORDS = {"ngram_max": 2, "min_df": 3}
VOTE_SVC = {"C": 0.2, "class_weight": BALANCED}


def fit(pipeline: Any, texts: list[str], labels: list[str], jobs: int = 1) -> Any:
    """Fit the pipeline in `jobs` processes (the outermost of its folds and members that
    scikit-learn fits side by side: joblib), then drop what it keeps only for inspection:
    the terms min_df left out (TfidfVectorizer.stop_words_, millions of 1-3-grams seen once
    on the reference data; scikit-learn says it may be removed before saving), and a vote's
    members by name.

    Numerical libraries use one thread in every process: the order of a sum's terms, and so
    its last bits, would otherwise depend on how many threads there are, and the fitted model
    with it (on the reference data macro-F1 moved by 0.0001 between 1 process with 2 threads
    and 2 with 1). So the model is the same for any `jobs` and any number of cores."""
    with (
        threadpool_limits(1),
        parallel_config(
            "loky", n_jobs=jobs, inner_max_num_threads=1, idle_worker_timeout=LOKY_IDLE_S
        ),
    ):
        pipeline.fit(texts, labels)
    for vectorizer in vectorizers(pipeline):
        vectorizer.stop_words_ = None
    inner = pipeline.estimator_ if isinstance(pipeline, Biased) else pipeline
    if isinstance(inner, VotingClassifier):
        # The same members again, by name: a model file would hold (and a worker load) each
        # of them twice. predict_proba reads estimators_ only.
        inner.named_estimators_ = Bunch()
    return pipeline


# Class factors (Biased): learned on out-of-fold predictions of this many folds, only when
# every class has at least BIAS_MIN_PER_CLASS labels (else each factor is 1); the log-factors
# tried, and a small penalty on their squares so that a factor stays 1 where macro-F1 is flat.
BIAS_FOLDS = 3
BIAS_MIN_PER_CLASS = 10
BIAS_GRID = np.round(np.arange(-1.0, 1.0001, 0.05), 2)
BIAS_PASSES = 3
BIAS_PENALTY = 0.002


class Biased(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A classifier whose probabilities are multiplied by one factor per class (then summed
    to one again), the factors chosen for macro-F1: a prior shift that trades a common
    cause's doubtful tickets for a rarer cause's recall where that raises the mean of the
    classes' F1. The factors are learned on out-of-fold probabilities of the training
    tickets (BIAS_FOLDS folds, seeded), never on tickets the model is scored on, then the
    classifier is fitted on every training ticket. On the reference data: +0.0027 macro-F1
    in 5-fold cross-validation of the vote (a gain in each fold), for no prediction cost."""

    def __init__(self, estimator: Any, seed: int = 42) -> None:
        self.estimator = estimator
        self.seed = seed

    def fit(self, texts: list[str], labels: list[str]) -> Biased:
        y = np.asarray(labels)
        classes, counts = np.unique(y, return_counts=True)
        self.bias_ = np.zeros(len(classes))
        if counts.min() >= BIAS_MIN_PER_CLASS:
            folds = StratifiedKFold(BIAS_FOLDS, shuffle=True, random_state=self.seed)
            oof = cross_val_predict(
                clone(self.estimator), texts, y, cv=folds, method="predict_proba"
            )
            self.bias_ = class_bias(oof, np.searchsorted(classes, y))
        self.estimator_ = clone(self.estimator).fit(texts, labels)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, texts: Any) -> np.ndarray:
        return shifted(self.estimator_.predict_proba(texts), self.bias_)

    def predict(self, texts: Any) -> np.ndarray:
        predicted: np.ndarray = np.asarray(self.classes_)[self.predict_proba(texts).argmax(axis=1)]
        return predicted


def shifted(proba: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Probabilities times each class's factor exp(bias), summed to one again."""
    scaled = proba * np.exp(bias)
    result: np.ndarray = scaled / scaled.sum(axis=1, keepdims=True)
    return result


def class_bias(proba: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Log-factors per class that raise macro-F1 of argmax(log proba + bias) on (proba,
    truth): coordinate ascent over BIAS_GRID, BIAS_PASSES passes over the classes, less
    BIAS_PENALTY times the squared log-factors. Deterministic: the first best value wins."""
    n = proba.shape[1]
    logp = np.log(np.clip(proba, 1e-12, None))

    def gain(bias: np.ndarray) -> float:
        predicted = (logp + bias).argmax(axis=1)
        confusion = np.bincount(truth * n + predicted, minlength=n * n).reshape(n, n)
        hit = np.diag(confusion)
        both = confusion.sum(axis=0) + confusion.sum(axis=1)  # 2 tp + fp + fn
        f1 = np.divide(2 * hit, both, out=np.zeros(n), where=both > 0)
        return float(f1.mean() - BIAS_PENALTY * np.sum(bias**2))

    bias = np.zeros(n)
    for _ in range(BIAS_PASSES):
        for c in range(n):
            tried = []
            for value in BIAS_GRID:
                bias[c] = value
                tried.append(gain(bias))
            bias[c] = BIAS_GRID[int(np.argmax(tried))]
    return bias


def vectorizers(fitted: Any) -> list[TfidfVectorizer]:
    """The TF-IDF vectorisers inside a fitted pipeline of causa's, in order."""
    if isinstance(fitted, TfidfVectorizer):
        return [fitted]
    parts: list[Any] = []
    if isinstance(fitted, Biased):
        parts = [fitted.estimator_]
    elif isinstance(fitted, Pipeline):
        parts = [step for _, step in fitted.steps]
    elif isinstance(fitted, FeatureUnion):
        parts = [part for _, part in fitted.transformer_list]
    elif isinstance(fitted, VotingClassifier):
        parts = list(fitted.estimators_)
    return [v for part in parts for v in vectorizers(part)]


def vote(words: dict[str, Any], svc: dict[str, Any], seed: int) -> VotingClassifier:
    """Three models of a ticket, their probabilities averaged with equal votes: word
    n-grams (`words`) with a calibrated linear SVM (`svc`), character 2-5-grams with a
    calibrated linear SVM, and the same word n-grams with a multinomial logistic regression,
    classes weighted by their frequency. Each errs where the others don't: on the reference
    data the vote scored macro-F1 0.866 on a held-out 20 % where the word SVM alone scored
    0.859 (5-fold cross-validation of such votes: 0.867). The logistic regression is left
    uncalibrated: its probabilities are fitted to the log-loss already, and sharper (the
    vote scored 0.002 less with it calibrated). Word 1-2-grams for it scored as well as
    1-3-grams (within 0.001) with a third of their vocabulary, which a worker loads."""
    words = {**words, "chars": False}
    return VotingClassifier(
        [
            ("svm", single(words, "svc", svc, seed)),
            (
                "chars",
                Pipeline(
                    [
                        ("features", characters((2, 5), 2, None)),
                        ("model", calibrated("svc", {"C": 0.35, "class_weight": BALANCED}, seed)),
                    ]
                ),
            ),
            ("logreg", single(words, "logreg", {"C": 30.0, "class_weight": BALANCED}, seed)),
        ],
        voting="soft",
    )


def classifier(family: str, p: dict[str, Any], seed: int) -> Any:
    """An uncalibrated classifier of `family` with the hyper-parameters in `p`."""
    if family == "svc":
        return LinearSVC(C=p["C"], class_weight=p.get("class_weight"), random_state=seed)
    if family == "logreg":
        return LogisticRegression(
            C=p["C"], class_weight=p.get("class_weight"), max_iter=2000, random_state=seed
        )
    if family == "sgd":
        return SGDClassifier(
            loss="modified_huber",
            alpha=p["alpha"],
            max_iter=50,
            tol=1e-4,
            class_weight=p.get("class_weight"),
            random_state=seed,
        )
    if family == "cnb":
        return ComplementNB(alpha=p["alpha"])
    if family == "xgb":
        # lazy: XGBoost is searched only on request, and a worker need not load it
        from xgboost import XGBClassifier

        return make_pipeline(
            TruncatedSVD(n_components=int(p["svd"]), random_state=seed),
            XGBClassifier(
                tree_method="hist",
                n_estimators=int(p["trees"]),
                max_depth=int(p["depth"]),
                learning_rate=p["eta"],
                n_jobs=2,
                random_state=seed,
            ),
        )
    raise ValueError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")


def calibrated(family: str, p: dict[str, Any], seed: int) -> Any:
    """The classifier with probabilities that mean what they say. XGBoost takes only integer
    labels, so it serves inside a stack (which encodes them), never alone."""
    if family == "xgb":
        raise ValueError("xgb serves inside a stack only")
    model = classifier(family, p, seed)
    if family == "logreg":
        return model  # its probabilities are already fitted to the log-loss
    return CalibratedClassifierCV(model, method="sigmoid", cv=INNER_FOLDS)


def single(feature_params: dict[str, Any], family: str, p: dict[str, Any], seed: int) -> Pipeline:
    return Pipeline(
        [("features", features(feature_params)), ("model", calibrated(family, p, seed))]
    )


def stack(
    feature_params: dict[str, Any], members: dict[str, dict[str, Any]], seed: int
) -> Pipeline:
    """One shared TF-IDF, several models, a logistic regression on their out-of-fold scores."""
    return Pipeline(
        [
            ("features", features(feature_params)),
            (
                "model",
                StackingClassifier(
                    estimators=[
                        (family, classifier(family, p, seed)) for family, p in members.items()
                    ],
                    final_estimator=LogisticRegression(C=1.0, max_iter=2000, random_state=seed),
                    cv=STACK_FOLDS,
                    n_jobs=1,
                ),
            ),
        ]
    )
