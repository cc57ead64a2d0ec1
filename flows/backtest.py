"""Before going live: what the model would do with labelled tickets it never trained on.

The tickets are the holdout of the labelled history (by a hash of each ticket's number, the
tickets no model causa trains ever learns from), or of a CSV (by a hash of each text; with
`every_row`, all of a file the model never saw). For each cause the model predicts, and over
all, for a sweep of thresholds and for the rules in force (CAUSA_NEVER_AUTO, the model's
per-class thresholds, CAUSA_CONFIDENCE_THRESHOLD): how many tickets would be applied
automatically, how many of those wrongly, and how many would wait for review.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from flows.classify import Model, threshold_in_force
from shared.text import clean
from training.dataset import Example, split

SWEEP = tuple(round(0.05 * i, 2) for i in range(20))  # 0.00, 0.05, ... 0.95


def replay(
    model: Model,
    examples: Sequence[Example],
    threshold: float,
    never: Collection[str] = (),
    every_row: bool = False,
) -> dict[str, Any]:
    """The backtest of `model` on the examples it never trained on (see the module)."""
    unseen = list(examples) if every_row else split(list(examples))[1]
    classes = np.asarray(model.classes)
    if unseen:
        proba = model.predict_proba([clean(e.text) for e in unseen])
        predicted, confidence = classes[proba.argmax(axis=1)], proba.max(axis=1)
    else:
        predicted, confidence = np.asarray([], dtype=str), np.asarray([])
    result = tally(
        [e.label for e in unseen], predicted, confidence, model.thresholds, threshold, never
    )
    return {
        "model_version": model.version,
        "labelled": len(examples),
        "unseen": "every row given" if every_row else "the holdout (never trained on)",
        **result,
    }


def tally(
    truth: Sequence[str],
    predicted: Sequence[str] | np.ndarray,
    confidence: Sequence[float] | np.ndarray,
    thresholds: Mapping[str, float],
    threshold: float,
    never: Collection[str] = (),
) -> dict[str, Any]:
    """The counts, per predicted cause and over all, for SWEEP and for the rules in force."""
    truth_a, pred_a = np.asarray(truth), np.asarray(predicted)
    conf = np.asarray(confidence, dtype=float)
    in_force = np.asarray(
        [threshold_in_force(thresholds, p, threshold, never) for p in pred_a.tolist()],
        dtype=float,
    )  # None (never applied) becomes NaN: no confidence reaches it

    def counts(mask: np.ndarray, applied: np.ndarray) -> dict[str, Any]:
        done = mask & applied
        wrong = int((done & (truth_a != pred_a)).sum())
        n = int(done.sum())
        return {
            "applied": n,
            "wrong": wrong,
            "review": int(mask.sum()) - n,
            "precision": round((n - wrong) / n, 4) if n else None,
            "coverage": round(n / int(mask.sum()), 4) if mask.any() else None,
        }

    def block(mask: np.ndarray) -> dict[str, Any]:
        return {
            "tickets": int(mask.sum()),
            "in_force": counts(mask, conf >= in_force),
            "sweep": [{"threshold": t, **counts(mask, conf >= t)} for t in SWEEP],
        }

    causes = sorted(set(pred_a.tolist()))
    return {
        "tickets": len(truth_a),
        "threshold": threshold,
        "never_auto": sorted(never),
        "causes": {
            c: {
                "threshold_in_force": threshold_in_force(thresholds, c, threshold, never),
                **block(pred_a == c),
            }
            for c in causes
        },
        "overall": block(np.ones(len(truth_a), dtype=bool)),
    }
