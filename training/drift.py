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

Everything but `report` and `check` is pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline

from shared.notify import Notify
from shared.settings import Settings
from shared.store import TicketStore
from shared.text import clean
from training.registry import LoadedModel

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


def _round(x: float | None) -> float | None:
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
    """The fitted word-level TF-IDF inside a pipeline (alone, in a FeatureUnion, or the
    features of a stack); None when the model has none."""
    if isinstance(model, TfidfVectorizer):
        fitted = hasattr(model, "vocabulary_")
        return model if fitted and model.analyzer == "word" else None
    if isinstance(model, Pipeline):
        parts = [step for _, step in model.steps]
    elif isinstance(model, FeatureUnion):
        parts = [step for _, step in model.transformer_list]
    else:
        return None
    for part in parts:
        found = word_vectorizer(part)
        if found is not None:
            return found
    return None


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
        "classes": {k: _round(v) for k, v in shares(predicted, classes).items()},
        "mean_confidence": _round(float(np.mean(confidence))),
        "needs_review": _round(float(np.mean(review))),
        "unknown_words": _round(unknown_share(model_pipeline, cleaned)),
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
            "reference": _round(self.reference),
            "recent": _round(self.recent),
            "change": _round(self.change),
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
        out["psi"] = _round(self.psi)
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
        c: {"reference": _round(ref_classes.get(c)), "recent": _round(recent_classes.get(c, 0.0))}
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


# --- the report, with the store -----------------------------------------------------------------


def report(
    store: TicketStore, model: LoadedModel, settings: Settings, now: datetime | None = None
) -> dict[str, Any]:
    """The drift report of the model in service over the recent window, JSON-safe. Only the
    decisions of this model version count; `other_versions` says how many were left aside."""
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=settings.drift_window_hours)
    decisions = store.recent(since.isoformat(), RECENT_LIMIT)
    mine = [d for d in decisions if d.get("model_version") == model.version]
    texts = [clean(d.get("text")) for d in mine if d.get("predicted") is not None]
    compared = compare(
        model.info.reference,
        mine,
        unknown_share(model.pipeline, texts),
        threshold=settings.drift_threshold,
        min_tickets=settings.drift_min_tickets,
    )
    return {
        "verdict": compared.verdict,
        "reason": compared.reason,
        "model_version": model.version,
        "tickets": compared.tickets,
        "psi": _round(compared.psi),
        "other_versions": len(decisions) - len(mine),
        "window_hours": settings.drift_window_hours,
        "since": since.isoformat(timespec="seconds"),
        # the store returns at most RECENT_LIMIT decisions, the newest: a sample of the window
        "limited": len(decisions) >= RECENT_LIMIT,
        "rule": {"psi_above": settings.drift_threshold, "unknown_words_jump": UNKNOWN_JUMP},
        "reference_tickets": model.info.reference.get("tickets"),
        **{k: v for k, v in compared.as_dict().items() if k not in ("verdict", "reason", "psi")},
    }


def check(
    store: TicketStore,
    model: LoadedModel | None,
    settings: Settings,
    notifier: Notify,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Compute the report, store it as a "drift" event, notify when the verdict is drift.
    Every run is stored, so `causa status` shows the latest one, whatever it says."""
    if model is None:
        result: dict[str, Any] = {
            "verdict": NO_MODEL,
            "reason": "no model in service: train one with `causa train --bootstrap`",
            "model_version": None,
            "tickets": 0,
            "psi": None,
        }
    else:
        result = report(store, model, settings, now)
    store.record_event("drift", result)
    if result["verdict"] == DRIFT:
        notifier.send(
            "drift detected",
            f"model {result['model_version']}, PSI {result['psi']}",
            notification_text(result, retrain=settings.drift_retrain),
            level="warning",
            key="drift",
            # every report over one window sees the same drift: say it once per window
            every=settings.drift_window_hours * 3600,
        )
    return result


def notification_text(result: Mapping[str, Any], *, retrain: bool) -> str:
    """The drift report in a few lines: the rule that fired, the numbers, what to do."""
    lines = [
        result["reason"],
        f"{result['tickets']} decisions since {result['since']}",
    ]
    for name in ("mean_confidence", "needs_review", "unknown_words"):
        c = result[name]
        if c["reference"] is not None and c["recent"] is not None:
            lines.append(f"{name.replace('_', ' ')}: {c['reference']:.1%} → {c['recent']:.1%}")
    moved = sorted(
        result["classes"].items(),
        key=lambda kv: -abs((kv[1]["recent"] or 0.0) - (kv[1]["reference"] or 0.0)),
    )[:3]
    for cls, v in moved:
        lines.append(f"class {cls}: {v['reference'] or 0.0:.1%} → {v['recent'] or 0.0:.1%}")
    lines.append(
        "retraining started (CAUSA_DRIFT_RETRAIN)"
        if retrain
        else "label recent tickets and retrain (`causa train`), or set CAUSA_DRIFT_RETRAIN=true"
    )
    return "\n".join(lines)
