"""Candidate pipelines: TF-IDF features with a linear model or XGBoost, and stacks of them.

Every pipeline takes raw ticket texts and has predict_proba. The text preprocessor is
shared.text.normalize, the one function of causa's a model file may name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import TruncatedSVD
from sklearn.ensemble import StackingClassifier, VotingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.svm import LinearSVC
from xgboost import XGBClassifier

from shared.text import normalize

FAMILIES = ("svc", "logreg", "sgd", "cnb", "xgb")
# The calibration's and the stack's inner folds: enough for stable out-of-fold scores,
# few enough to keep a fit within the training budget.
INNER_FOLDS = 3
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


# The vote's weights: the search's word model counts twice, the two other views once each
# (on the reference data (2, 1, 1) and (1, 1, 1) were within 0.001 of each other).
VOTE_WEIGHTS = (2, 1, 1)


def vote(words: dict[str, Any], svc: dict[str, Any], seed: int) -> VotingClassifier:
    """Three views of a ticket, their calibrated probabilities averaged: the search's word
    n-grams with a linear SVM (`words`, `svc`), character 2-5-grams with a linear SVM, and
    word 1-3-grams with a multinomial logistic regression. Each one errs where the others
    don't: macro-F1 0.869 on the reference data against 0.862 for the best of them alone."""
    return VotingClassifier(
        [
            ("words", single({**words, "chars": False}, "svc", svc, seed)),
            (
                "chars",
                Pipeline(
                    [
                        ("features", characters((2, 5), 2, None)),
                        ("model", calibrated("svc", {"C": 0.35}, seed)),
                    ]
                ),
            ),
            ("phrases", single({"ngram_max": 3, "min_df": 2}, "logreg", {"C": 30.0}, seed)),
        ],
        voting="soft",
        weights=list(VOTE_WEIGHTS),
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
