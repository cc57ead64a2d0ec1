"""Training tasks: run on the training queue so a long fit never delays classification."""

from __future__ import annotations

from typing import Any

import structlog

from training import dataset, registry
from training.train import retrain as run_training
from worker.app import TRAINING_QUEUE, app
from worker.runtime import runtime

log = structlog.get_logger("causa.training")

# A training takes minutes (10 at most by design); these limits stop a runaway one and stay
# below the broker's visibility timeout, so Redis never hands the same training to a second
# worker while the first still runs.
TRAINING_TIME_LIMIT_S = 1800
TRAINING_SOFT_LIMIT_S = 1700
# One training at a time across every worker: the lock outlives the hard time limit.
TRAINING_LOCK = "causa:lock:training"


def comparison_text(summary: dict[str, Any]) -> str:
    """The comparison table of a training, as plain text for a notification."""
    challenger, champion = summary["challenger"] or {}, summary["champion"] or {}
    lines = [f"{'metric':<22}{'challenger':>12}{'champion':>12}"]
    for key in ("macro_f1", "accuracy", "ece"):
        old = champion.get(key)
        lines.append(f"{key:<22}{challenger.get(key, 0):>12.4f}{'—' if old is None else old:>12}")
    for cls, f1 in challenger.get("per_class_f1", {}).items():
        old = champion.get("per_class_f1", {}).get(cls, "—")
        lines.append(f"{'F1 ' + cls:<22}{f1:>12.4f}{old:>12}")
    return "\n".join(lines)


def train_and_report(trigger: str) -> dict[str, Any]:
    """Train on the tickets people labelled, promote the challenger if it wins; record the
    decision and notify. Skipped (not queued) while another training runs."""
    rt = runtime()
    lock = rt.redis.lock(TRAINING_LOCK, timeout=TRAINING_TIME_LIMIT_S + 60, blocking=False)
    if not lock.acquire():
        log.info("training skipped: another one is running", trigger=trigger)
        return {"decision": "skipped", "reason": "another training is running"}
    try:
        rt.notifier.send("training started", f"trigger: {trigger}", "")
        try:
            examples = dataset.assemble(rt.store.labelled())
            summary = run_training(examples, rt.settings, trigger=trigger).summary()
        except Exception as exc:
            rt.notifier.send(
                "training failed",
                f"{type(exc).__name__} ({trigger})",
                f"trigger: {trigger}\n{type(exc).__name__}: {exc}",
                level="failure",
            )
            raise
        rt.store.record_event("training", {"trigger": trigger, **summary})
        promoted = summary["decision"] == "promote"
        rt.notifier.send(
            "training completed",
            f"model {'promoted: ' + str(summary['version']) if promoted else 'rejected'}",
            f"trigger: {trigger}\n{summary['reason']}\n\n{comparison_text(summary)}",
            level="success" if promoted else "info",
        )
        return summary
    finally:
        lock.release()


def roll_back(version: str | None, replacing: str | None, trigger: str) -> dict[str, Any]:
    """Put a backup back in service. With `replacing`, only while that version is still in
    service: a repeated request changes nothing."""
    rt = runtime()
    current = registry.read_manifest(rt.settings.registry_dir)
    in_service = current.version if current else None
    if (replacing is not None and in_service != replacing) or (
        version is not None and in_service == version
    ):
        return {"version": in_service, "decision": "unchanged: already rolled back"}
    info = registry.rollback(
        rt.settings.registry_dir, version, keep_backups=rt.settings.keep_backups
    )
    result = {"version": info.version, "replaced": in_service, "decision": info.decision}
    rt.store.record_event("rollback", {"trigger": trigger, **result})
    rt.notifier.send(
        "model rolled back",
        f"model {info.version} back in service",
        f"replaced {in_service}; trigger: {trigger}",
        level="warning",
    )
    return result


@app.task(
    name="tasks.training.retrain",
    queue=TRAINING_QUEUE,
    time_limit=TRAINING_TIME_LIMIT_S,
    soft_time_limit=TRAINING_SOFT_LIMIT_S,
)
def retrain(trigger: str = "schedule") -> dict[str, Any]:
    """Train a challenger on the tickets people labelled; promote it if it wins."""
    return train_and_report(trigger)


@app.task(name="tasks.training.rollback", queue=TRAINING_QUEUE)
def rollback(version: str | None = None, replacing: str | None = None) -> dict[str, Any]:
    """Put a backup model back in service (default: the newest backup)."""
    return roll_back(version, replacing, trigger="task")
