"""Predictions without a ticket: what causa would decide for given texts, nothing written (the
HTTP API's /v1/predict, `causa predict`). The same model, cleaning and thresholds as the
worker's batches, and why: the terms that raised the predicted cause most."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from flows.classify import ALTERNATIVES, Model, predictions, threshold_in_force, verdict
from shared.text import clean


def predict(
    model: Model,
    texts: Sequence[str],
    threshold: float,
    explain: bool = False,
    never: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Per text: the cause, its confidence, the verdict causa would give (with the threshold
    that decided it: None for a cause never applied automatically), the next causes, every
    cause's probability, and with `explain` the explanation (the terms that raised the cause
    most, with their weights; None when not asked for or for a model that is not explained:
    for a single text it costs a quarter to a third more than predicting it)."""
    proba, explained = predictions(model, [clean(t) for t in texts], explain)
    out = []
    for i, row in enumerate(proba):
        ranked = sorted(zip(model.classes, row.tolist(), strict=True), key=lambda cp: -cp[1])
        cause, confidence = ranked[0]
        out.append(
            {
                "cause": cause,
                "confidence": round(confidence, 6),
                "verdict": str(verdict(model, cause, confidence, threshold, never)),
                "threshold": threshold_in_force(model.thresholds, cause, threshold, never),
                "alternatives": [
                    {"cause": c, "p": round(p, 6)} for c, p in ranked[1 : 1 + ALTERNATIVES]
                ],
                "probabilities": {c: round(p, 6) for c, p in ranked},
                "explanation": explained[i],
            }
        )
    return out
