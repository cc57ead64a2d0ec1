"""Real causa processes for end-to-end and fault tests, and the audit that proves
'exactly once': triggers record every write of a result into the ticket row and every claim
of a work item (its attempt), committed writes only."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.helpers import wait_for
from worker import processes
from worker.services import free_port

AUDIT = """
CREATE TABLE IF NOT EXISTS causa_audit (number text, status text, at timestamptz DEFAULT now());
TRUNCATE causa_audit;
CREATE OR REPLACE FUNCTION causa_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO causa_audit (number, status) VALUES (NEW.number, NEW.causa_status);
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER causa_audit AFTER UPDATE ON tickets FOR EACH ROW
    WHEN (NEW.causa_status IN ('classified', 'needs_review'))
    EXECUTE FUNCTION causa_audit();
CREATE TABLE IF NOT EXISTS causa_audit_claims (number text, attempts integer, claimed_by text);
TRUNCATE causa_audit_claims;
CREATE OR REPLACE FUNCTION causa_audit_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO causa_audit_claims VALUES (NEW.number, NEW.attempts, NEW.claimed_by);
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER causa_audit_claim AFTER UPDATE ON causa.work FOR EACH ROW
    WHEN (NEW.attempts > OLD.attempts)
    EXECUTE FUNCTION causa_audit_claim();
"""

# Short leases and limits so that recovery takes seconds; they keep DESIGN.md's timing rules
# (hard limit + longest backoff < lease < visibility timeout).
FAST_RECOVERY = {
    "CAUSA_LEASE_SECONDS": "4",
    "CAUSA_TASK_TIME_LIMIT": "2",
    "CAUSA_RETRY_ATTEMPTS": "2",
    "CAUSA_RETRY_INITIAL": "0.05",
    "CAUSA_RETRY_MAX": "0.1",
    "CAUSA_RETRY_JITTER": "0",
    "CAUSA_POLL_INTERVAL": "0.5",
}


def install_audit(conn: psycopg.Connection[Any]) -> None:
    conn.execute(AUDIT)


def writes_per_ticket(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """How many times each ticket's row was written with a final result."""
    rows = conn.execute("SELECT number, count(*) FROM causa_audit GROUP BY 1").fetchall()
    return {n: int(k) for n, k in rows}


def attempts_per_ticket(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """How many attempts each claimed ticket took: its work item's `attempts` at its last
    claim (the work item itself is gone once the ticket is decided)."""
    rows = conn.execute(
        "SELECT number, max(attempts) FROM causa_audit_claims GROUP BY 1"
    ).fetchall()
    return {n: int(k) for n, k in rows}


@contextmanager
def cluster(
    logdir: Path, models_dir: Path, *names: str, **env: str
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Start `names` (worker, worker2, beat, listener), yield them, stop them all. An empty
    value removes that variable from the processes' environment."""
    full_env = {**os.environ, "CAUSA_MODELS_DIR": str(models_dir), **env}
    full_env = {k: v for k, v in full_env.items() if v != ""}
    args = {
        "worker": ["worker", "--concurrency", "2"],
        "beat": ["beat"],
        "listener": ["listen"],
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in names:
            kind = name.rstrip("0123456789")
            extra = {
                "worker": ["--name", f"{name}@%h"],
                "beat": ["--schedule", str(logdir / f"{name}-schedule")],
            }.get(kind, [])
            procs[name] = processes.start(name, args[kind] + extra, full_env, logdir)
        processes.wait_ready(logdir, procs)
        yield procs
    except BaseException:
        print_tails(logdir, procs)  # pytest shows them with the failure
        raise
    finally:
        processes.stop(list(procs.values()))


def print_tails(logdir: Path, names: Iterable[str], lines: int = 60) -> None:
    for name in names:
        log = logdir / f"{name}.log"
        if log.exists():
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            print(f"--- last {len(tail)} lines of {log}", *tail, sep="\n")


def started(logdir: Path) -> int:
    """How many API processes have started their app (uvicorn logs it in each)."""
    return (logdir / "api.log").read_text(errors="replace").count("Application startup complete")


@contextmanager
def serving(logdir: Path, env: dict[str, str], workers: int, timeout: float) -> Iterator[str]:
    """`causa serve` with `workers` processes on a free port, until every one answers; its base
    URL. Stopped at the end, whatever happens; its log's tail is printed on a failure."""
    port = free_port()
    args = ["serve", "--port", str(port), *(["--workers", str(workers)] if workers > 1 else [])]
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
        wait_for(healthy, timeout=timeout, what="causa serve to answer", interval=0.2)
        # /healthz answers as soon as one process is up: wait for the others too
        wait_for(
            lambda: started(logdir) == workers,
            timeout=timeout,
            what=f"{workers} API processes started",
            interval=0.2,
        )
        yield url
    except BaseException:
        print_tails(logdir, ["api"])
        raise
    finally:
        processes.stop([proc])
