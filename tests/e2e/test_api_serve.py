"""A real `causa serve --workers 2`: a key's rate limit holds in total across both API
processes (they share it in Redis), what is over it is a 429 that says when to retry, and
/metrics sums the requests of both processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
from prometheus_client import parser
from prometheus_client.multiprocess import MultiProcessCollector

from tests.e2e.cluster import serving

API_PROCESSES = 2
START_TIMEOUT_S = 90.0  # two processes, each importing the model libraries and loading the model
LIMIT = 20  # a key's requests per minute
SENT = 2 * LIMIT
CONNECTIONS = 20  # each a client of its own, sending at once: both processes accept some


def causa(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def predictions_per_process(metrics_dir: Path) -> dict[str, float]:
    """Requests to /v1/predict each process counted (its own file in the multiprocess dir)."""
    counted = {}
    for path in metrics_dir.glob("counter_*.db"):
        samples = [
            s
            for family in MultiProcessCollector.merge([str(path)], accumulate=False)  # type: ignore[no-untyped-call]
            for s in family.samples
            if s.name == "causa_api_requests_total" and s.labels.get("route") == "/v1/predict"
        ]
        counted[path.stem] = sum(s.value for s in samples)
    return counted


def test_a_key_s_limit_holds_in_total_across_two_api_processes_sharing_redis(
    conn: psycopg.Connection[Any], model: Path, redis_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "CAUSA_MODELS_DIR": str(model)}
    create = ["api-key", "create", "e2e-limited", "--scope", "predict"]
    made = json.loads(causa(*create, "--rate-limit", f"{LIMIT}/minute", "--json", env=env))
    assert made["rate_limit"] == f"{LIMIT}/minute" and made["scopes"] == ["predict"]
    key = {"X-API-Key": made["key"]}
    with serving(tmp_path, env, API_PROCESSES, START_TIMEOUT_S) as url:
        # when a client sends twice the key's limit within a minute, over many connections
        def send(n: int) -> list[httpx.Response]:
            with httpx.Client(base_url=url, timeout=30) as client:  # a connection of its own
                return [
                    client.post("/v1/predict", json={"text": f"vpn caida {n}-{i}"}, headers=key)
                    for i in range(SENT // CONNECTIONS)
                ]

        with ThreadPoolExecutor(CONNECTIONS) as pool:
            answers = [a for batch in pool.map(send, range(CONNECTIONS)) for a in batch]
        metrics = httpx.get(f"{url}/metrics", timeout=10).text

    # then both processes served some of them
    served = predictions_per_process(Path(env["CAUSA_HOME"]) / "metrics" / f"api-{port_of(url)}")
    assert sum(served.values()) == SENT, served
    assert len([n for n in served.values() if n > 0]) == API_PROCESSES, served

    # and exactly the limit was answered, in total, the rest refused with when to retry
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * LIMIT + [429] * (SENT - LIMIT), statuses
    for refused in (a for a in answers if a.status_code == 429):
        assert refused.json()["error"]["code"] == "rate_limited", refused.text
        retry_after = refused.headers["Retry-After"]
        assert retry_after.isdigit() and 1 <= int(retry_after) <= 60, retry_after
        assert refused.headers["RateLimit-Limit"] == str(LIMIT)
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert refused.headers["RateLimit-Reset"].isdigit(), refused.headers

    # and each process loaded the model once, at its start (not once per request thread)
    assert (tmp_path / "api.log").read_text().count('"model loaded"') == API_PROCESSES

    # and /metrics, scraped from one process, counts the requests of both
    by_status = {
        s.labels["status"]: s.value
        for family in parser.text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "causa_api_requests_total" and s.labels["route"] == "/v1/predict"
    }
    assert by_status == {"200": LIMIT, "429": SENT - LIMIT}, by_status


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])
