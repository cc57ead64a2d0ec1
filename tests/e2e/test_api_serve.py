"""A real `causa serve --workers 2`: a key's rate limit holds in total across both API
processes (they share it in Redis), what is over it is a 429 that says when to retry, and
/metrics sums the requests of both processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
from prometheus_client import parser
from prometheus_client.multiprocess import MultiProcessCollector

from tests.e2e.cluster import print_tails
from tests.helpers import wait_for
from worker import processes

API_PROCESSES = 2
START_TIMEOUT_S = 90.0  # two processes, each importing the model libraries and loading the model
LIMIT = 20  # a key's requests per minute
SENT = 2 * LIMIT
CONNECTIONS = 20  # each a client of its own, sending at once: both processes accept some


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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


@contextmanager
def serve(logdir: Path, env: dict[str, str]) -> Iterator[str]:
    """`causa serve --workers 2` on a free port, until both processes answer; its base URL.
    Stopped at the end, whatever happens."""
    port = free_port()
    args = ["serve", "--workers", str(API_PROCESSES), "--port", str(port)]
    proc = processes.start("api", args, env, logdir)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"causa serve exited at start: see {logdir / 'api.log'}")
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, timeout=START_TIMEOUT_S, what="causa serve to answer", interval=0.2)
        # /healthz answers as soon as one process is up: wait for the other one too
        wait_for(
            lambda: started(logdir) == API_PROCESSES,
            timeout=START_TIMEOUT_S,
            what=f"{API_PROCESSES} API processes started",
            interval=0.2,
        )
        yield url
    except BaseException:
        print_tails(logdir, ["api"])
        raise
    finally:
        processes.stop([proc])


def started(logdir: Path) -> int:
    """How many API processes have started their app (uvicorn logs it in each)."""
    return (logdir / "api.log").read_text(errors="replace").count("Application startup complete")


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
    with serve(tmp_path, env) as url:
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
