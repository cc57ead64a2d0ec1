"""Monitoring tasks: the drift report and the watch. Thin: call one function, report."""

from __future__ import annotations

from typing import Any

import structlog

from shared.watch import watch as queue_watch
from tasks.training import retrain
from training import drift
from worker.app import app
from worker.runtime import runtime

log = structlog.get_logger("causa.drift")


def report_drift(trigger: str = "schedule") -> dict[str, Any]:
    """Compare the model's recent decisions with its holdout; store the report, notify on
    drift and, with CAUSA_DRIFT_RETRAIN, start a retraining. Beat and `causa admin` call it."""
    rt = runtime()
    result = drift.check(rt.store, rt.models.get(), rt.settings, rt.notifier)
    retraining = result["verdict"] == drift.DRIFT and rt.settings.drift_retrain
    if retraining:
        retrain.delay(trigger="drift")
    summary = {
        "verdict": result["verdict"],
        "psi": result["psi"],
        "tickets": result["tickets"],
        "model_version": result["model_version"],
        "retrain": retraining,
        "trigger": trigger,
    }
    log.info("drift report", reason=result["reason"], **summary)
    return summary


@app.task(name="tasks.monitoring.drift_report")
def drift_report() -> dict[str, Any]:
    return report_drift()


@app.task(name="tasks.monitoring.watch", expires=60)
def watch() -> dict[str, Any]:
    """Beat, every CAUSA_WATCH_INTERVAL: the stall alarm and the dead-letter digest."""
    rt = runtime()
    return queue_watch(rt.store, rt.notifier, rt.redis, rt.settings)
