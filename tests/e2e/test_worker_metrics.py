"""A worker with CAUSA_METRICS_PORT serves Prometheus metrics summed over its pool processes."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path
from typing import Any

import psycopg

from tests.e2e.cluster import cluster
from tests.helpers import demo_rows, insert, statuses, wait_for
from worker.services import free_port


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def total(text: str, metric: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{metric}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def test_a_worker_counts_what_all_its_pool_processes_decided(
    conn: psycopg.Connection[Any], model: Path, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    with cluster(tmp_path, model, "worker", CAUSA_METRICS_PORT=str(port), CAUSA_BATCH_SIZE="10"):
        # given 120 tickets, in batches of 10 over two pool processes
        insert(conn, demo_rows(120))
        from tasks import classify  # the queue is the workers': send the tasks by name

        for _ in range(12):
            classify.classify_pending.delay()
        wait_for(lambda: set(statuses(conn)) <= {"classified", "needs_review"}, timeout=60)
        # then the worker's one endpoint counts every ticket, whichever process decided it
        wait_for(
            lambda: total(scrape(port), "causa_worker_tickets_total") == 120,
            timeout=30,
            what="120 tickets counted",
        )
        text = scrape(port)
    assert total(text, "causa_worker_batches_total") >= 12
    assert total(text, "causa_worker_batch_seconds_count") >= 12
