"""The workers' Prometheus metrics (CAUSA_METRICS_PORT): tickets decided by status, batches
by outcome, and batch time, summed over the worker's pool processes (prometheus-client's
multiprocess mode: the directory is set before any process imports the client).

`causa worker` (and `causa serve`) calls `prepare` before Celery (uvicorn) starts; the main
process serves /metrics (`serve`, from worker_init); each pool process counts what its
batches did (`count`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(home: Path, name: str) -> None:
    """An empty directory for the metrics of a process family (`worker-9100`, `api-8000`),
    named in the environment the processes it starts inherit."""
    directory = (home / "metrics" / name).absolute()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[DIR_ENV] = str(directory)


def serve(port: int) -> None:
    """Serve /metrics (every pool process's counts summed) on `port`, in a thread."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, registry=registry)


def process_gone(pid: int) -> None:
    """A pool process ended: its live gauges go (its counts stay in the sums)."""
    if os.environ.get(DIR_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class _Counters:
    """Made on first use, in the process that counts (after the directory is set)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.tickets = Counter(
            "causa_worker_tickets_total", "Tickets a batch decided or gave up", ["status"]
        )
        self.batches = Counter("causa_worker_batches_total", "Classify tasks", ["outcome"])
        self.seconds = Histogram(
            "causa_worker_batch_seconds",
            "Time a classify task took",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
        )


_counters: _Counters | None = None


def count(summary: dict[str, Any], seconds: float) -> None:
    """What one classify task did (its summary), when the worker serves metrics."""
    global _counters
    if not os.environ.get(DIR_ENV):
        return
    if _counters is None:
        _counters = _Counters()
    outcome = (
        "timed_out"
        if summary.get("timed_out")
        else ("skipped" if summary.get("skipped") else "done")
    )
    _counters.batches.labels(outcome).inc()
    _counters.seconds.observe(seconds)
    for status in ("classified", "needs_review", "failed", "retrying", "stale"):
        if n := summary.get(status):
            _counters.tickets.labels(status).inc(int(n))
