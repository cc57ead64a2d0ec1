"""A real `causa flower` against the test broker, beside a real worker: basic auth always on,
the workers and the classify tasks visible, Prometheus metrics served."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from tests.e2e.cluster import cluster
from tests.helpers import demo_rows, insert, statuses, wait_for
from worker import processes
from worker.services import free_port

READY_MARK = b"Visit me at"  # Flower logs it once its HTTP server listens
START_TIMEOUT_S = 60.0
GENERATED = re.compile(rb"generated password: (\S+)")


@contextmanager
def flower(logdir: Path, **env: str) -> Iterator[tuple[str, Path]]:
    """`causa flower` on a free port; yields its base URL and its log (stdout and stderr).
    An empty value removes that variable from its environment."""
    port = free_port()
    full_env = {k: v for k, v in {**os.environ, **env}.items() if v != ""}
    proc = processes.start("flower", ["flower", "--port", str(port)], full_env, logdir)
    log = logdir / "flower.log"
    try:
        wait_for(
            lambda: _exited(proc, log) or READY_MARK in log.read_bytes(),
            timeout=START_TIMEOUT_S,
            what="flower to listen",
        )
        yield f"http://127.0.0.1:{port}", log
    finally:
        processes.stop([proc])


def readme_async_apply_answer() -> dict[str, Any]:
    """The answer to `async-apply` that README.md shows (its `…` read as a string)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    shown = re.findall(r"`(\{\"task-id\".*?\})`", readme)
    assert len(shown) == 1, f"README.md shows one async-apply answer: {shown}"
    answer: dict[str, Any] = json.loads(shown[0].replace("…", "id"))
    return answer


def _exited(proc: subprocess.Popen[bytes], log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"flower exited at start: {log.read_text()}")
    return False


def test_flower_is_behind_basic_auth_and_shows_workers_and_classify_tasks(
    conn: psycopg.Connection[Any], model: Path, redis_url: str, tmp_path: Path
) -> None:
    auth = ("causa", "flower-test-pw")
    with (
        flower(tmp_path, CAUSA_FLOWER_USER=auth[0], CAUSA_FLOWER_PASSWORD=auth[1]) as (url, log),
        cluster(tmp_path, model, "worker", "listener"),
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        # given tickets that the listener announces and the worker classifies
        insert(conn, demo_rows(60))
        wait_for(
            lambda: statuses(conn).keys() <= {"classified", "needs_review"},
            timeout=60,
            what="the tickets classified",
        )

        # then without credentials, or with a wrong password, the UI and the API refuse
        for path in ("/", "/workers", "/tasks", "/api/workers", "/api/tasks"):
            assert http.get(path).status_code == 401, path
            assert http.get(path, auth=(auth[0], "wrong")).status_code == 401, path
            assert http.get(path, auth=("someone", auth[1])).status_code == 401, path
        refused = http.post("/api/task/async-apply/tasks.classify.classify_pending", json={})
        assert refused.status_code == 401

        # and with them, the worker is listed
        assert http.get("/", auth=auth).status_code == 200
        workers = wait_for(
            lambda: http.get("/api/workers", params={"refresh": "1"}, auth=auth).json(),
            timeout=30,
            what="flower to list the worker",
        )
        assert any(name.startswith("worker@") for name in workers), workers

        # and the classify tasks the worker ran are listed by name
        def classify_tasks_done() -> list[dict[str, Any]]:
            response = http.get("/api/tasks", auth=auth)
            assert response.status_code == 200
            tasks = response.json().values()
            return [
                t
                for t in tasks
                if t["name"] == "tasks.classify.classify_pending" and t["state"] == "SUCCESS"
            ]

        done = wait_for(classify_tasks_done, timeout=30, what="classify tasks done, in flower")
        assert all(str(t["worker"]).startswith("worker@") for t in done), done

        # and a task applied through Flower's API (how admins trigger work) runs
        applied = http.post(
            "/api/task/async-apply/tasks.classify.classify_pending",
            json={"kwargs": {"limit": 10}},
            auth=auth,
        )
        assert applied.status_code == 200, applied.text
        # its answer is the task id alone (no `state`: causa has no result backend), and the
        # README shows that shape
        assert applied.json().keys() == {"task-id"}, applied.text
        assert readme_async_apply_answer().keys() == applied.json().keys()
        task_id = applied.json()["task-id"]
        wait_for(
            lambda: (
                http.get(f"/api/task/info/{task_id}", auth=auth).json().get("state") == "SUCCESS"
            ),
            timeout=30,
            what="the task applied through Flower to succeed",
        )

        # and Prometheus metrics and the health check answer without credentials (by design)
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        assert "flower_events_total" in metrics.text
        assert 'task="tasks.classify.classify_pending"' in metrics.text
        assert http.get("/healthcheck").text == "OK"

    # and the password never reached the log
    assert auth[1] not in log.read_text()


def test_without_a_password_one_is_generated_printed_once_and_works(
    redis_url: str, tmp_path: Path
) -> None:
    with (
        flower(tmp_path, CAUSA_FLOWER_PASSWORD="") as (url, log),
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        found = GENERATED.findall(log.read_bytes())
        assert len(found) == 1, "the generated password is printed exactly once"
        password = found[0].decode()
        assert http.get("/api/workers").status_code == 401
        assert http.get("/api/workers", auth=("causa", password)).status_code == 200
        command_lines = [
            " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])
        ]
        assert command_lines and not any(password in c for c in command_lines), (
            "the credentials are on no command line"
        )
    # printed once on stderr, and no log line ever repeats it
    assert log.read_bytes().count(password.encode()) == 1


def test_flower_refuses_to_start_without_a_broker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["CAUSA_HOME"] = str(tmp_path / "no-services")  # no `causa up` URLs to fall back on
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "flower"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # no .env here
    )
    assert done.returncode == 2
    assert "REDIS_URL" in done.stderr
