"""Monitoring tasks: the drift report, the watch, retention and live accuracy."""

from __future__ import annotations

from typing import Any

from flows.accuracy import accuracy_report
from flows.drift import drift_report as report_drift
from flows.retention import retain as apply_retention
from flows.watch import watch as queue_watch
from worker import names
from worker.app import app


@app.task(name=names.DRIFT)
def drift_report() -> dict[str, Any]:
    return report_drift(app.runtime)


@app.task(name=names.WATCH, expires=60)
def watch() -> dict[str, Any]:
    """Beat, every CAUSA_WATCH_INTERVAL: the stall alarm and the dead-letter digest."""
    rt = app.runtime
    return queue_watch(rt.store, rt.notifier, rt.redis, rt.settings)


@app.task(name=names.RETAIN)
def retain() -> dict[str, int]:
    """Beat, at CAUSA_RETENTION_CRON: old decisions, events and training runs deleted."""
    rt = app.runtime
    return apply_retention(rt.store, rt.settings, rt.registry)


@app.task(name=names.ACCURACY)
def live_accuracy() -> dict[str, Any]:
    """Beat, at CAUSA_ACCURACY_CRON: per-cause precision of reviewed decisions, stored as a
    live_accuracy event; a cause below its target is notified."""
    return accuracy_report(app.runtime)
