"""Drift: does the model in service still see the kind of tickets it was judged on?

When a model is promoted, its behaviour on its holdout goes into the manifest (the
reference): the share of each predicted class, the mean confidence, the needs_review rate and
the share of words its vocabulary does not know. The drift report compares the model's
recent decisions with that reference.

The rule: "drift" when the PSI of the predicted-class distribution is above
settings.drift_threshold, or when the share of unknown words rose by more than UNKNOWN_JUMP
(new products, a new language, pasted logs: words the model cannot weigh at all). Fewer than
settings.drift_min_tickets recent decisions of the model give "not enough data"; a model
promoted before drift monitoring has no reference and gives "no reference". Mean confidence
and the needs_review rate are reported beside the verdict, not judged: they move with the
other two and with the confidence threshold setting.

Everything here is pure: no I/O, no clock. flows/drift.py gathers the recent decisions,
stores the report and notifies.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from shared.text import clean
from training import candidates

# The share an empty bin counts as, so that its log term stays finite: a class of 10 % that
# vanished scores about 0.7 on its own (clearly drift), not infinity.
EPSILON = 1e-4
# The unknown-word share may rise this much (absolute) before it is drift on its own: ten
# more words in a hundred that the model has never seen means its features no longer cover
# the tickets, whatever the class distribution says.
UNKNOWN_JUMP = 0.10
# The newest decisions one report reads: far more than a stable PSI over a dozen classes
# needs, and a bounded amount of memory on a busy desk.
RECENT_LIMIT = 10_000
# Shares, rates and PSI are stored to this many decimals; finer digits are sampling noise.
DIGITS = 4

OK, DRIFT, NOT_ENOUGH, NO_REFERENCE, NO_MODEL = (
    "ok",
    "drift",
    "not enough data",
    "no reference",
    "no model",
)


def rounded(x: float | None) -> float | None:
    return None if x is None else round(float(x), DIGITS)


# --- the pieces ------------------------------------------------------------------------------


def psi(expected_shares: Mapping[str, float], actual_shares: Mapping[str, float]) -> float:
    """Population stability index: sum over bins of (actual - expected) * ln(actual / expected).
    0 for the same distribution; 0.1 is a slight change, above 0.2 a major one. A bin missing
    or empty on either side counts as EPSILON."""
    total = 0.0
    for key in set(expected_shares) | set(actual_shares):
        e = max(float(expected_shares.get(key, 0.0)), EPSILON)
        a = max(float(actual_shares.get(key, 0.0)), EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def shares(labels: Sequence[str], classes: Sequence[str] = ()) -> dict[str, float]:
    """The share of each label; every class in `classes` present, 0.0 when never seen."""
    counts = Counter(labels)
    n = len(labels)
    return {c: (counts.get(c, 0) / n if n else 0.0) for c in sorted(set(classes) | set(counts))}


def word_vectorizer(model: Any) -> TfidfVectorizer | None:
    """The fitted word-level TF-IDF inside a pipeline (alone, in a FeatureUnion, the
    features of a stack, the first of a vote's); None when the model has none."""
    return next(
        (
            v
            for v in candidates.vectorizers(model)
            if v.analyzer == "word" and hasattr(v, "vocabulary_")
        ),
        None,
    )


def tokenizer(vectorizer: TfidfVectorizer) -> Callable[[str], list[str]]:
    """The vectorizer's own words of a text: its preprocessor (shared.text.normalize) then
    its tokenizer, the unigrams its analyzer starts from (n-grams are built from these)."""
    preprocess = vectorizer.build_preprocessor()
    tokenize = vectorizer.build_tokenizer()
    return lambda text: list(tokenize(preprocess(text)))


def unknown_share(model: Any, texts: Sequence[str]) -> float | None:
    """The mean, over tickets, of the share of a ticket's words the model's vocabulary does
    not hold (None without a word vectorizer or without words). A mean of per-ticket shares,
    so one pasted log file weighs as one ticket."""
    vectorizer = word_vectorizer(model)
    if vectorizer is None:
        return None
    vocabulary = vectorizer.vocabulary_
    words_of = tokenizer(vectorizer)
    per_ticket = []
    for text in texts:
        words = words_of(text)
        if words:
            per_ticket.append(sum(w not in vocabulary for w in words) / len(words))
    return float(np.mean(per_ticket)) if per_ticket else None


# --- the reference, at promotion ---------------------------------------------------------------


def reference(
    model_pipeline: Any,
    classes: Sequence[str],
    thresholds: Mapping[str, float],
    texts: Sequence[str],
    threshold: float,
) -> dict[str, Any]:
    """The model's behaviour on its holdout texts, as the worker would decide them
    (shared.classify: cleaned text, empty texts skipped, a prediction below its class's
    threshold, or the global one, is needs_review)."""
    cleaned = [t for t in (clean(t) for t in texts) if t]
    if not cleaned:
        return {}
    proba = np.asarray(model_pipeline.predict_proba(cleaned))
    best = proba.argmax(axis=1)
    predicted = [str(classes[i]) for i in best]
    confidence = proba[np.arange(len(best)), best]
    review = [
        float(c) < thresholds.get(p, threshold) for p, c in zip(predicted, confidence, strict=True)
    ]
    return {
        "classes": {k: rounded(v) for k, v in shares(predicted, classes).items()},
        "mean_confidence": rounded(float(np.mean(confidence))),
        "needs_review": rounded(float(np.mean(review))),
        "unknown_words": rounded(unknown_share(model_pipeline, cleaned)),
        "tickets": len(cleaned),
        "threshold": threshold,
    }


# --- the comparison -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    reference: float | None
    recent: float | None

    @property
    def change(self) -> float | None:
        if self.reference is None or self.recent is None:
            return None
        return self.recent - self.reference

    def as_dict(self) -> dict[str, float | None]:
        return {
            "reference": rounded(self.reference),
            "recent": rounded(self.recent),
            "change": rounded(self.change),
        }


@dataclass(frozen=True)
class DriftReport:
    verdict: str  # ok | drift | not enough data | no reference
    reason: str  # one line: why this verdict, and what to do when something is to be done
    tickets: int  # recent decisions with a prediction, the ones compared
    empty: int  # recent decisions without one (empty text): not compared
    psi: float | None
    classes: dict[str, dict[str, float | None]]  # {class: {reference, recent}} shares
    mean_confidence: Change
    needs_review: Change
    unknown_words: Change

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["psi"] = rounded(self.psi)
        for name in ("mean_confidence", "needs_review", "unknown_words"):
            out[name] = getattr(self, name).as_dict()
        return out


def compare(
    reference: Mapping[str, Any],
    recent_decisions: Sequence[Mapping[str, Any]],
    unknown_share: float | None,
    *,
    threshold: float = 0.2,
    min_tickets: int = 200,
) -> DriftReport:
    """Recent decisions of one model ({predicted, confidence, status}) against its reference;
    `unknown_share` is that of the recent texts. The verdict follows the module's rule."""
    decided = [d for d in recent_decisions if d.get("predicted") is not None]
    n = len(decided)
    predicted = [str(d["predicted"]) for d in decided]
    ref_classes: dict[str, float] = dict(reference.get("classes") or {})
    recent_classes = shares(predicted, list(ref_classes))
    confidence = Change(
        reference.get("mean_confidence"),
        float(np.mean([float(d["confidence"] or 0.0) for d in decided])) if n else None,
    )
    review = Change(
        reference.get("needs_review"),
        sum(d.get("status") == "needs_review" for d in decided) / n if n else None,
    )
    unknown = Change(reference.get("unknown_words"), unknown_share)
    value = psi(ref_classes, recent_classes) if ref_classes and n else None
    classes = {
        c: {"reference": rounded(ref_classes.get(c)), "recent": rounded(recent_classes.get(c, 0.0))}
        for c in sorted(set(ref_classes) | set(recent_classes))
    }

    if not ref_classes:
        verdict = NO_REFERENCE
        reason = (
            "the model in service has no reference (it was promoted before drift monitoring):"
            " retrain it (`causa train`) to get one"
        )
    elif n < min_tickets:
        verdict = NOT_ENOUGH
        reason = f"{n} recent decisions of this model; a verdict needs {min_tickets}"
    else:
        jump = unknown.change
        why = []
        if value is not None and value > threshold:
            why.append(f"PSI {value:.3f} > {threshold}")
        if jump is not None and jump > UNKNOWN_JUMP:
            why.append(
                f"unknown words {unknown.reference:.1%} → {unknown.recent:.1%}"
                f" (+{jump:.1%} > {UNKNOWN_JUMP:.0%})"
            )
        verdict = DRIFT if why else OK
        reason = (
            "; ".join(why)
            if why
            else f"PSI {value or 0.0:.3f} ≤ {threshold}, unknown words"
            f" {'n/a' if jump is None else f'{jump:+.1%}'} (≤ +{UNKNOWN_JUMP:.0%})"
        )
    return DriftReport(
        verdict,
        reason,
        n,
        len(recent_decisions) - n,
        value,
        classes,
        confidence,
        review,
        unknown,
    )
