"""`causa health`, the containers' healthcheck: 0 only when the database and the broker
answer, 1 within seconds when either does not, and never a password on its output."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

# A healthcheck must answer well inside docker's timeout (15 s in docker-compose.yml) and
# never wait out the store's retry backoff (about 15 s with the default settings).
FAIL_FAST_S = 10.0
PASSWORD = "s3cret-pw"


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def health(tmp_path: Path, **env: str) -> tuple[int, str, float]:
    full_env = {**os.environ, **env}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "health"],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # no .env here
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def test_healthy_when_the_database_and_the_broker_answer(
    conn: psycopg.Connection[Any], redis_url: str, tmp_path: Path
) -> None:
    # given the suite's migrated database and its Redis
    code, output, _ = health(tmp_path)
    # then both checks pass, one line each
    assert code == 0, output
    database, broker = output.splitlines()
    assert database.startswith("database: ok (backlog"), output
    assert broker == "broker: ok"


def test_unhealthy_at_once_when_the_broker_is_down(
    conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    # given a broker URL, with a password, where nothing listens
    url = f"redis://:{PASSWORD}@127.0.0.1:{closed_port()}/0"
    code, output, seconds = health(tmp_path, REDIS_URL=url)
    # then the check fails fast, says which part, and keeps the password to itself
    assert code == 1, output
    assert seconds < FAIL_FAST_S, f"took {seconds:.1f} s"
    assert any(line.startswith("database: ok") for line in output.splitlines()), output
    assert any(line.startswith("broker: error") for line in output.splitlines()), output
    assert PASSWORD not in output


def test_unhealthy_at_once_when_the_database_is_down(redis_url: str, tmp_path: Path) -> None:
    # given a database URL, with a password, where nothing listens
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port()}/test"
    code, output, seconds = health(tmp_path, DATABASE_URL=url)
    # then the check fails well before the store's retries would give up
    assert code == 1, output
    assert seconds < FAIL_FAST_S, f"took {seconds:.1f} s"
    lines = output.splitlines()
    assert any(line.startswith("database: error") for line in lines), output
    assert "refused" in output.lower(), "the cause is given, not only a timeout"
    assert "broker: ok" in lines, output
    assert PASSWORD not in output


def test_unhealthy_when_no_database_is_configured(redis_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["CAUSA_HOME"] = str(tmp_path / "no-services")  # no `causa up` URLs to fall back on
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "health"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "database: error" in done.stdout and "DATABASE_URL" in done.stdout
