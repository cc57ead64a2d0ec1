"""Predictions without a ticket: what causa would decide for given texts, nothing written (the
HTTP API's /v1/predict). The same model, cleaning and thresholds as the worker's batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flows.classify import ALTERNATIVES, Model, verdict
from shared.text import clean


def predict(model: Model, texts: Sequence[str], threshold: float) -> list[dict[str, Any]]:
    """Per text: the cause, its confidence, the verdict causa would give (with the threshold
    that decided it), the next causes, and every cause's probability."""
    proba = model.predict_proba([clean(t) for t in texts])
    out = []
    for row in proba:
        ranked = sorted(zip(model.classes, row.tolist(), strict=True), key=lambda cp: -cp[1])
        cause, confidence = ranked[0]
        out.append(
            {
                "cause": cause,
                "confidence": round(confidence, 6),
                "verdict": str(verdict(model, cause, confidence, threshold)),
                "threshold": model.thresholds.get(cause, threshold),
                "alternatives": [
                    {"cause": c, "p": round(p, 6)} for c, p in ranked[1 : 1 + ALTERNATIVES]
                ],
                "probabilities": {c: round(p, 6) for c, p in ranked},
            }
        )
    return out
