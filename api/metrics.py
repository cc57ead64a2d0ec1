"""Prometheus metrics of the API: requests by route and status, latency, predictions by cause
and verdict, and, read when scraped, the queue depth and the model in service (its version as
a label). `causa serve` sets PROMETHEUS_MULTIPROC_DIR, so every process's counts are summed
into one answer (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Iterator
from typing import Any

import structlog
from fastapi import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flows.runtime import Runtime

log = structlog.get_logger("causa.api")
REQUESTS = Counter(
    "causa_api_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
LATENCY = Histogram(
    "causa_api_request_seconds",
    "Time to answer a request",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
PREDICTIONS = Counter(
    "causa_api_predictions_total", "Texts predicted by /v1/predict", ["cause", "verdict"]
)


class Observe:
    """ASGI middleware: count and time every request under its route's template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(path, scope["method"], str(status)).inc()
            LATENCY.labels(path).observe(time.perf_counter() - start)


def predicted(predictions: list[dict[str, Any]]) -> None:
    counted = collections.Counter((p["cause"], p["verdict"]) for p in predictions)
    for (cause, verdict), n in counted.items():
        PREDICTIONS.labels(cause, verdict).inc(n)


class Live:
    """What is read when Prometheus scrapes: the queue depth and the model in service."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("causa_queue_depth", "Tickets in the queue", labels=["state"])
        try:
            counts = self.rt.store.pending_count()
            for state in ("pending", "retry", "claimed"):
                depth.add_metric([state], counts[state])
        except Exception as exc:  # the database is down: the other metrics still answer
            log.warning("queue depth not read for metrics", error=type(exc).__name__)
        yield depth
        model = GaugeMetricFamily(
            "causa_model_info", "The model in service (1), by version", labels=["version"]
        )
        loaded = self.rt.models.get()
        if loaded is not None:
            model.add_metric([loaded.version], 1)
        yield model


def exposition(rt: Runtime) -> Response:
    live = CollectorRegistry()
    live.register(Live(rt))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)  # type: ignore[no-untyped-call]
    else:
        counted = REGISTRY
    body = generate_latest(counted) + generate_latest(live)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
