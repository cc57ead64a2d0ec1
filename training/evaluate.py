"""Scores of a model on labelled tickets: macro-F1, accuracy, per-class precision/recall/F1,
the confusion matrix, the expected calibration error, and per-class confidence thresholds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

ECE_BINS = 15
# A class needs this many holdout predictions before its threshold is trusted; with fewer,
# the global confidence threshold applies to it.
MIN_PREDICTIONS_FOR_THRESHOLD = 20


def predict(model: Any, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Predicted labels and their confidences, in one predict_proba call."""
    proba = np.asarray(model.predict_proba(list(texts)))
    classes = np.asarray(model.classes_)
    best = proba.argmax(axis=1)
    return [str(c) for c in classes[best]], proba[np.arange(len(best)), best]


def expected_calibration_error(correct: np.ndarray, confidence: np.ndarray) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    if len(correct) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, ECE_BINS - 1)
    ece = 0.0
    for b in range(ECE_BINS):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def thresholds_for_precision(
    truth: Sequence[str],
    predicted: Sequence[str],
    confidence: np.ndarray,
    target: float,
    by_class: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """For each class, the lowest confidence from which predictions of it reach its target
    precision (`by_class`, else `target`) on these tickets (1.0 where no threshold reaches
    it)."""
    truth_a, pred_a = np.asarray(truth), np.asarray(predicted)
    out: dict[str, float] = {}
    for cls in sorted(set(predicted)):
        mine = pred_a == cls
        if mine.sum() < MIN_PREDICTIONS_FOR_THRESHOLD:
            continue
        conf = confidence[mine]
        right = truth_a[mine] == cls
        order = np.argsort(-conf)
        precision = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
        reaching = np.nonzero(precision >= (by_class or {}).get(cls, target))[0]
        # the largest prefix (lowest threshold) whose precision still reaches the target
        out[cls] = float(conf[order][reaching[-1]]) if len(reaching) else 1.0
    return out


def score(
    truth: Sequence[str],
    predicted: Sequence[str],
    confidence: np.ndarray,
    labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Metrics over `labels` (default: every label seen); a class the model never predicts
    counts as missed, not as absent."""
    labels = sorted(set(truth) | set(predicted)) if labels is None else sorted(labels)
    p, r, f, n = precision_recall_fscore_support(
        truth, predicted, labels=labels, average=None, zero_division=0
    )
    correct = np.asarray(truth) == np.asarray(predicted)
    return {
        "macro_f1": float(np.mean(f)),
        "accuracy": float(accuracy_score(truth, predicted)),
        "ece": expected_calibration_error(correct, np.asarray(confidence)),
        "n": len(truth),
        "per_class": {
            label: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(n[i]),
            }
            for i, label in enumerate(labels)
        },
        "labels": list(labels),
        "confusion": confusion_matrix(truth, predicted, labels=labels).tolist(),
    }
