"""Classification tasks: each hands its arguments to one flow with this process's runtime."""

from __future__ import annotations

import time
from typing import Any

from flows import classify
from worker import metrics, names
from worker.app import app


@app.task(name=names.CLASSIFY)
def classify_pending(
    limit: int | None = None, numbers: list[str] | None = None
) -> dict[str, object]:
    start = time.monotonic()
    summary = classify.classify_pending(app.runtime, limit, numbers)
    metrics.count(summary, time.monotonic() - start)
    return summary


@app.task(name=names.POLL)
def poll_pending() -> dict[str, Any]:
    """Beat's safety net: cover the backlog (missed events, expired leases) with tasks."""
    return classify.cover_backlog(app.runtime)
