"""Monitoring tasks: the drift report, the watch and retention."""

from __future__ import annotations

from typing import Any

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
