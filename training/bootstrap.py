"""The first model: TF-IDF of words and characters with a calibrated linear SVM, no search.

Enough to start classifying; the scheduled retraining replaces it with a searched one.
"""

from __future__ import annotations

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from shared.settings import Settings
from shared.text import normalize
from training import candidates, drift, registry
from training.dataset import Example, NotEnoughData, drop_rare, split

MIN_LABELLED = 50  # fewer labels than this cannot make a model worth serving
MIN_PER_CLASS = 6  # the calibration's 3-fold split needs a few of each class
SEED = 42
# The global confidence threshold the reference's needs_review rate is computed with, when
# the caller gives none: the setting's default.
DEFAULT_THRESHOLD = float(Settings.model_fields["confidence_threshold"].default)


def pipeline(seed: int = SEED) -> Pipeline:
    return Pipeline(
        [
            (
                "features",
                FeatureUnion(
                    [
                        (
                            "words",
                            TfidfVectorizer(
                                preprocessor=normalize,
                                ngram_range=(1, 2),
                                sublinear_tf=True,
                                min_df=1,
                            ),
                        ),
                        (
                            "chars",
                            TfidfVectorizer(
                                preprocessor=normalize,
                                analyzer="char_wb",
                                ngram_range=(2, 4),
                                sublinear_tf=True,
                                min_df=2,
                            ),
                        ),
                    ]
                ),
            ),
            ("model", CalibratedClassifierCV(LinearSVC(C=0.5, random_state=seed), cv=3)),
        ]
    )


def train(
    examples: list[Example],
    models: registry.ModelRegistry,
    *,
    seed: int = SEED,
    confidence_threshold: float = DEFAULT_THRESHOLD,
) -> tuple[registry.ModelInfo, dict[str, int]]:
    """Fit on the examples outside the holdout, score on the holdout, promote.

    Returns the new model's info and the classes left out for having too few examples.
    """
    if len(examples) < MIN_LABELLED:
        raise NotEnoughData(
            f"only {len(examples)} labelled tickets: a first model needs at least {MIN_LABELLED}."
            " Label more tickets (set the cause column), or train from a CSV with --data"
        )
    examples, rare = drop_rare(examples, MIN_PER_CLASS)
    train_set, holdout = split(examples)
    model = pipeline(seed)
    candidates.fit(model, [e.text for e in train_set], [e.label for e in train_set])
    metrics: dict[str, float | int] = {"n_holdout": len(holdout)}
    if holdout:
        predicted = model.predict([e.text for e in holdout])
        truth = [e.label for e in holdout]
        metrics["accuracy"] = float(accuracy_score(truth, predicted))
        metrics["macro_f1"] = float(f1_score(truth, predicted, average="macro"))
    classes = [str(c) for c in np.asarray(model.classes_)]
    info = models.promote(
        model,
        classes=classes,
        n_train=len(train_set),
        metrics=metrics,
        decision="bootstrap",
        # no per-class thresholds: the global one decides, as it will in service
        reference=drift.reference(
            model, classes, {}, [e.text for e in holdout], confidence_threshold
        ),
    )
    return info, rare
