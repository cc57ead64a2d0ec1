"""Live accuracy: how often the model is right where people checked, per cause, over a window.

A decision counts once a person reviewed it: the model decided a ticket (classified or
needs_review) and a person later labelled it, by correcting the cause or by confirming it
(causa_label records a confirmation as a label too). It is *correct* when the person's cause
is the one the model predicted, *overridden* otherwise. A decision nobody reviewed is never
counted as correct: precision is correct/reviewed, and `decided` beside `reviewed` says how
much of the window people looked at. Which decision a label reviews is the SQL's
(causa_live_decisions): the model's last decision of the ticket before the label.

`figures` is the arithmetic, on plain rows; `live_accuracy` reads the window's rows and
computes them (the dashboard calls it); `check` is beat's periodic task: it computes, stores
the figures as a `live_accuracy` event (their history) and notifies when a cause falls below
its precision target by more than CAUSA_ACCURACY_MARGIN with at least
CAUSA_ACCURACY_MIN_REVIEWED reviewed decisions: once per cause per day while it stays there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from flows.runtime import Runtime
from shared.contract import Event, Status
from shared.notify import Notify
from shared.settings import Settings
from shared.store import AccuracyStore
from training.registry import ModelError

log = structlog.get_logger("causa.accuracy")
PAGE = 10_000  # decisions per call of causa_live_decisions: one short query each
# A cause below its target is notified at most once per this many seconds (per cause): a
# figure over a 7-day window moves slowly, and the same news every hour is noise.
NOTIFY_EVERY_S = 24 * 3600
VERDICTS = (Status.CLASSIFIED.value, Status.NEEDS_REVIEW.value)
DIGITS = 4  # precision and override rates are rounded to this many decimals


@dataclass
class Tally:
    decided: int = 0
    reviewed: int = 0
    correct: int = 0
    corrected_to: Counter[str] = field(default_factory=Counter)

    def add(self, label: str | None, predicted: str) -> None:
        self.decided += 1
        if label is None:
            return
        self.reviewed += 1
        if label == predicted:
            self.correct += 1
        else:
            self.corrected_to[label] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "decided": self.decided,
            "reviewed": self.reviewed,
            "correct": self.correct,
            "overridden": self.reviewed - self.correct,
            "precision": ratio(self.correct, self.reviewed),
            "override_rate": ratio(self.reviewed - self.correct, self.reviewed),
        }


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, DIGITS) if whole else None


def figures(
    rows: Iterable[Mapping[str, Any]],
    *,
    targets: Mapping[str, float],
    default_target: float,
    margin: float,
    min_reviewed: int,
    causes: Iterable[str] = (),
) -> dict[str, Any]:
    """Per predicted cause and in all: decided, reviewed, correct, overridden, precision
    (correct/reviewed; None when nobody reviewed one), override rate, the cause's precision
    target and whether it is below it by more than `margin` over at least `min_reviewed`
    reviewed decisions; also split by verdict (classified, needs_review). A row is a decision:
    {predicted, status, label} (label: the cause a person gave later; None: not reviewed).
    `causes`: causes to list even without a decision (the model's classes)."""
    total, by_cause = Tally(), {c: Tally() for c in causes}
    by_verdict = {v: Tally() for v in VERDICTS}
    cause_verdict: dict[str, dict[str, Tally]] = {}
    for row in rows:
        predicted, label, status = str(row["predicted"]), row.get("label"), str(row["status"])
        for tally in (
            total,
            by_cause.setdefault(predicted, Tally()),
            by_verdict.setdefault(status, Tally()),
            cause_verdict.setdefault(predicted, {}).setdefault(status, Tally()),
        ):
            tally.add(label, predicted)
    out_causes = {}
    for cause in sorted(by_cause):
        tally = by_cause[cause]
        target = targets.get(cause, default_target)
        figure = tally.as_dict()
        enough = tally.reviewed >= min_reviewed
        figure |= {
            "target": target,
            "enough_reviewed": enough,
            "below_target": bool(
                enough and figure["precision"] is not None and figure["precision"] < target - margin
            ),
            "corrected_to": dict(tally.corrected_to.most_common()),
            "by_verdict": {v: t.as_dict() for v, t in sorted(cause_verdict.get(cause, {}).items())},
        }
        out_causes[cause] = figure
    return {
        **total.as_dict(),
        "margin": margin,
        "min_reviewed": min_reviewed,
        "below_target": [c for c, f in out_causes.items() if f["below_target"]],
        "by_verdict": {v: t.as_dict() for v, t in by_verdict.items()},
        "causes": out_causes,
    }


def window_rows(
    store: AccuracyStore, since: datetime, until: datetime, model_version: str | None = None
) -> Iterator[dict[str, Any]]:
    """Every decision of the window with its later label, page after page (keyset)."""
    after: dict[str, Any] | None = None
    while True:
        page = store.live_decisions(
            since.isoformat(), until.isoformat(), model_version, after, PAGE
        )
        yield from page
        if len(page) < PAGE:
            return
        after = {"at": page[-1]["at"], "id": page[-1]["id"]}


def compute(
    store: AccuracyStore,
    settings: Settings,
    causes: Iterable[str] = (),
    now: datetime | None = None,
    days: int | None = None,
) -> dict[str, Any]:
    """The live-accuracy figures of the window that ends now (see `figures`), JSON-safe."""
    now = now or datetime.now(UTC)
    days = days or settings.accuracy_window_days
    since = now - timedelta(days=days)
    result = figures(
        window_rows(store, since, now),
        targets=settings.precision_targets,
        default_target=settings.target_precision,
        margin=settings.accuracy_margin,
        min_reviewed=settings.accuracy_min_reviewed,
        causes=causes,
    )
    return {
        "window_days": days,
        "since": since.isoformat(timespec="seconds"),
        "computed_at": now.isoformat(timespec="seconds"),
        **result,
    }


def model_classes(rt: Runtime) -> list[str]:
    """The causes of the model in service (from its manifest; none when there is no model)."""
    try:
        info = rt.registry.current()
    except ModelError:
        return []
    return list(info.classes) if info else []


def live_accuracy(rt: Runtime) -> dict[str, Any]:
    """The figures over the last CAUSA_ACCURACY_WINDOW_DAYS, every cause of the model in
    service listed: {window_days, since, computed_at, decided, reviewed, correct, overridden,
    precision, override_rate, margin, min_reviewed, below_target: [cause], by_verdict:
    {verdict: counts}, causes: {cause: {decided, reviewed, correct, overridden, precision,
    override_rate, target, enough_reviewed, below_target, corrected_to, by_verdict}}}."""
    return compute(rt.store, rt.settings, model_classes(rt))


def check(
    store: AccuracyStore,
    notifier: Notify,
    settings: Settings,
    causes: Iterable[str] = (),
    now: datetime | None = None,
) -> dict[str, Any]:
    """Compute the figures, store them as a `live_accuracy` event, and notify each cause
    below its target (by more than the margin, with enough reviewed decisions), at most once
    per cause per NOTIFY_EVERY_S."""
    result = compute(store, settings, causes, now)
    store.record_event(Event.LIVE_ACCURACY, result)
    for cause in result["below_target"]:
        f = result["causes"][cause]
        notifier.send(
            "precision below target",
            f"{cause}: {f['precision']:.1%} of {f['reviewed']} reviewed, target {f['target']:.0%}",
            notification_text(cause, f, result),
            level="warning",
            key=f"live-accuracy:{cause}",
            every=NOTIFY_EVERY_S,
        )
    return result


def notification_text(cause: str, f: Mapping[str, Any], result: Mapping[str, Any]) -> str:
    """One cause's figures in a few lines, and what to do."""
    corrected = ", ".join(f"{c} ({n})" for c, n in list(f["corrected_to"].items())[:3])
    return "\n".join(
        [
            f"Over the last {result['window_days']} days people reviewed {f['reviewed']} of the"
            f" {f['decided']} tickets causa gave {cause}: {f['correct']} confirmed,"
            f" {f['overridden']} corrected (override rate {f['override_rate']:.1%}).",
            f"Precision {f['precision']:.1%} is below the target {f['target']:.0%} by more than"
            f" CAUSA_ACCURACY_MARGIN={result['margin']}.",
            f"Corrected to: {corrected or 'nothing'}.",
            "Raise its threshold (`causa thresholds --suggest`, then `--apply`), add it to"
            " CAUSA_NEVER_AUTO for now, or label more of its tickets and retrain.",
        ]
    )


def accuracy_report(rt: Runtime) -> dict[str, Any]:
    """Beat's task: compute, store and notify (see `check`); a small summary."""
    result = check(rt.store, rt.notifier, rt.settings, model_classes(rt))
    summary = {
        "decided": result["decided"],
        "reviewed": result["reviewed"],
        "precision": result["precision"],
        "below_target": result["below_target"],
        "window_days": result["window_days"],
    }
    log.info("live accuracy", **summary)
    return summary
