"""What the review desk's dashboard shows, as series ready to draw: decisions per hour by
verdict, the backlog, each cause's share by day, the model's confidence, drift over time, the
model timeline and live accuracy. One read of the decisions (causa_dashboard) and one of the
events; nothing here writes."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from flows import accuracy
from flows.runtime import Runtime
from shared.contract import Event

STATUSES = ("classified", "needs_review", "failed", "labelled")
BINS = 20  # confidence histogram bins, as causa_dashboard counts them
TIMELINE = (Event.TRAINING, Event.ROLLBACK, Event.THRESHOLDS)
# Stored live-accuracy figures younger than this are shown; older ones are computed again.
ACCURACY_FRESH = timedelta(hours=2)


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def hour_label(value: str) -> str:
    return _at(value).strftime("%d %b %Hh")


def day_label(value: str) -> str:
    return _at(value).strftime("%d %b")


def shape(raw: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """causa_dashboard's counts and the events as the dashboard's series (pure: tested)."""
    hours = [b["hour"] for b in raw["backlog"]]
    index = {_at(h): i for i, h in enumerate(hours)}
    decisions = {s: [0] * len(hours) for s in STATUSES}
    for row in raw["hourly"]:
        i = index.get(_at(row["hour"]))
        if i is not None and row["status"] in decisions:
            decisions[row["status"]][i] += row["n"]
    days = sorted({row["day"] for row in raw["causes"]}, key=_at)
    day_index = {d: i for i, d in enumerate(days)}
    causes: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    for row in raw["causes"]:
        causes[row["cause"]][day_index[row["day"]]] += row["n"]
    confidence = {s: [0] * BINS for s in ("classified", "needs_review")}
    for row in raw["confidence"]:
        confidence[row["status"]][row["bin"]] += row["n"]
    drift = [
        {
            "at": e["at"],
            "psi": e["payload"].get("psi"),
            "unknown_words": (e["payload"].get("unknown_words") or {}).get("recent"),
            "threshold": (e["payload"].get("rule") or {}).get("psi_above"),
            "verdict": e["payload"].get("verdict"),
        }
        for e in events
        if e["kind"] == Event.DRIFT
    ]
    timeline, f1_of, last = [], {}, None
    for e in sorted(events, key=lambda e: _at(e["at"])):
        if e["kind"] not in TIMELINE:
            continue
        version = e["payload"].get("version")
        f1 = (e["payload"].get("challenger") or {}).get("macro_f1")
        if e["kind"] == Event.TRAINING and e["payload"].get("decision") != "promote":
            version = None  # a rejected challenger never served
        elif f1 is not None and version:
            f1_of[version] = f1
        # a rollback or a thresholds revision puts a known model (back) in service
        f1 = f1 if f1 is not None else f1_of.get(version, last)
        last = f1 if version else last
        timeline.append(
            {
                "at": e["at"],
                "kind": e["kind"],
                "version": version,
                "macro_f1": f1,
                "label": version or f"{e['kind']}: not promoted",
            }
        )
    return {
        "since": raw["since"],
        "hours": hours,
        "decisions": {s: v for s, v in decisions.items() if any(v)},
        "backlog": [b["n"] for b in raw["backlog"]],
        "days": days,
        "causes": dict(sorted(causes.items(), key=lambda kv: -sum(kv[1]))),
        "confidence": confidence,
        "drift": drift,
        "timeline": timeline,
    }


def gather(rt: Runtime, days: int) -> dict[str, Any]:
    """The dashboard over the last `days` days, with live accuracy over its own window."""
    raw = rt.store.dashboard(days)
    events = rt.store.event_history([Event.DRIFT, *TIMELINE], raw["since"], limit=10_000)
    stored = rt.store.latest_events().get(Event.LIVE_ACCURACY)
    return {
        **shape(raw, events + models_as_events(rt, events, raw["since"])),
        "accuracy": latest_accuracy(stored, _at(raw["now"])) or accuracy.live_accuracy(rt),
    }


def latest_accuracy(stored: dict[str, Any] | None, now: datetime) -> dict[str, Any] | None:
    """The live-accuracy figures beat stored last ({at, payload} of the newest event), if
    they are recent (it computes them every hour; reading a busy week's decisions on every
    page view would not be cheap)."""
    if stored is None or now - _at(stored["at"]) > ACCURACY_FRESH:
        return None
    figures: dict[str, Any] = stored["payload"]
    return figures


def models_as_events(rt: Runtime, events: list[dict[str, Any]], since: str) -> list[dict[str, Any]]:
    """The models in the registry made since `since` that no training event names (a first
    model, `causa train --bootstrap`), as the promotions they were."""
    named = {e["payload"].get("version") for e in events if e["kind"] == Event.TRAINING}
    return [
        {
            "kind": Event.TRAINING,
            "at": info.created_at,
            "payload": {
                "decision": "promote",
                "version": info.version,
                "challenger": {"macro_f1": info.metrics.get("macro_f1")},
            },
        }
        for _, info in rt.registry.models()
        if info.version not in named and _at(info.created_at) >= _at(since)
    ]
