"""What `causa status` reports: the queue, the model, the last decisions, the workers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flows.listening import last_seen
from flows.runtime import Runtime
from shared.contract import Event, Status

RECENT_WINDOW_S = 300  # "classified in the last 5 minutes" and the rate over it


def age_seconds(iso: str, now: datetime | None = None) -> float:
    return ((now or datetime.now(UTC)) - datetime.fromisoformat(iso)).total_seconds()


def gather(rt: Runtime) -> dict[str, Any]:
    store = rt.store
    statuses = store.status_counts()
    backlog = store.pending_count()
    activity = store.activity(RECENT_WINDOW_S)
    events = store.latest_events()
    # Counts above a threshold are the planner's estimates (they stay cheap on a huge table).
    estimated = sorted(
        {
            *statuses.get("estimated", []),
            *(["backlog"] if backlog.get("estimated") else []),
            *(["classified_last_5_min"] if activity.get("decided_estimated") else []),
        }
    )
    report: dict[str, Any] = {
        "table": rt.settings.table,
        "backlog": backlog["pending"] + backlog["retry"],
        "estimated": ["backlog" if e == "pending" else e for e in estimated],
        "oldest_pending_s": activity["oldest_pending_s"],
        "claimed": backlog["claimed"],
        "needs_review": statuses.get(Status.NEEDS_REVIEW, 0),
        "failed": statuses.get(Status.FAILED, 0),
        "statuses": statuses,
        "classified_last_5_min": activity["decided_recently"],
        "rate_per_s": round(activity["decided_recently"] / RECENT_WINDOW_S, 2),
    }
    info = rt.registry.current()
    report["model"] = (
        {
            "version": info.version,
            "age_s": round(age_seconds(info.created_at)),
            "macro_f1": info.metrics.get("macro_f1"),
            "decision": info.decision,
        }
        if info
        else None
    )
    training = events.get(Event.TRAINING)
    report["last_training"] = (
        {"at": training["at"], **{k: training["payload"].get(k) for k in ("decision", "reason")}}
        if training
        else None
    )
    drift = events.get(Event.DRIFT)
    report["drift"] = (
        {"at": drift["at"], **{k: drift["payload"].get(k) for k in ("verdict", "psi")}}
        if drift
        else None
    )
    try:
        report["listener"] = last_seen(rt)
        report["queued_tasks"] = rt.queue.waiting()
        report["workers"] = rt.queue.workers()
    except Exception as exc:  # the broker is down: say so, report the rest
        report["listener"] = None
        report["queued_tasks"] = None
        report["workers"] = None
        report["broker_error"] = f"{type(exc).__name__}: {exc}"
    return report
