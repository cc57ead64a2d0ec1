"""What `causa status` reports: the queue, the model, the last decisions, the workers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.settings import Settings
from shared.store import FunctionStore
from training import registry

RECENT_WINDOW_S = 300  # "classified in the last 5 minutes" and the rate over it
INSPECT_TIMEOUT_S = 1.0  # how long workers get to answer a ping


def age_seconds(iso: str, now: datetime | None = None) -> float:
    return ((now or datetime.now(UTC)) - datetime.fromisoformat(iso)).total_seconds()


def workers_online(timeout: float = INSPECT_TIMEOUT_S) -> list[str]:
    """Celery workers that answer a ping (remote control over the broker)."""
    from worker.app import app

    return sorted((app.control.inspect(timeout=timeout).ping() or {}).keys())


def gather(settings: Settings, store: FunctionStore) -> dict[str, Any]:
    statuses = store.status_counts()
    backlog = store.pending_count()
    activity = store.activity(RECENT_WINDOW_S)
    events = store.latest_events()
    report: dict[str, Any] = {
        "table": settings.table,
        "backlog": backlog["pending"] + backlog["retry"],
        "oldest_pending_s": activity["oldest_pending_s"],
        "claimed": backlog["claimed"],
        "needs_review": statuses.get("needs_review", 0),
        "failed": statuses.get("failed", 0),
        "statuses": statuses,
        "classified_last_5_min": activity["decided_recently"],
        "rate_per_s": round(activity["decided_recently"] / RECENT_WINDOW_S, 2),
    }
    info = registry.read_manifest(settings.registry_dir)
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
    training = events.get("training")
    report["last_training"] = (
        {"at": training["at"], **{k: training["payload"].get(k) for k in ("decision", "reason")}}
        if training
        else None
    )
    drift = events.get("drift")
    report["drift"] = (
        {"at": drift["at"], **{k: drift["payload"].get(k) for k in ("verdict", "psi")}}
        if drift
        else None
    )
    try:
        from tasks.classify import queued_tasks

        report["queued_tasks"] = queued_tasks()
        report["workers"] = workers_online()
    except Exception as exc:  # the broker is down: say so, report the rest
        report["queued_tasks"] = None
        report["workers"] = None
        report["broker_error"] = f"{type(exc).__name__}: {exc}"
    return report


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The report as (what, value) rows for the table."""
    model, training, drift = report["model"], report["last_training"], report["drift"]
    workers = report["workers"]
    return [
        ("backlog (pending)", str(report["backlog"])),
        ("oldest pending ticket", duration(report["oldest_pending_s"])),
        ("claimed (in flight)", str(report["claimed"])),
        ("needs review", str(report["needs_review"])),
        ("failed (dead letter)", str(report["failed"])),
        ("classified, last 5 min", f"{report['classified_last_5_min']} ({report['rate_per_s']}/s)"),
        ("queued tasks", str(report["queued_tasks"])),
        (
            "model in service",
            f"{model['version']}, {duration(model['age_s'])} old, macro-F1"
            f" {model['macro_f1'] if model['macro_f1'] is not None else '—'}"
            if model
            else "none: run `causa train --bootstrap`",
        ),
        (
            "last training",
            f"{training['decision']}: {training['reason']} ({training['at']})" if training else "—",
        ),
        ("drift", f"{drift['verdict']}, PSI {drift['psi']} ({drift['at']})" if drift else "—"),
        (
            "workers online",
            ", ".join(workers) or "none" if workers is not None else report.get("broker_error", ""),
        ),
    ]
