"""Latency: insert-to-classified time at a steady insert rate, for the event path (worker,
beat and listener) and for polling alone (worker and beat, no listener).

Tickets are inserted one statement each at --rate per second for --seconds, as a service
desk's tool would; latency is decided_at - received_at of causa's decisions (received_at:
when the insert queued the ticket), both stamped by PostgreSQL.

    python bench/latency.py [--rate 100] [--seconds 60] [--json]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from shared.settings import load_settings
from worker import demodata

# From the model's decisions: received_at is when the ticket entered the queue (its insert).
PERCENTILES = """
SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM decided_at - received_at) * 1000)
  FROM causa.decisions WHERE source = 'model' AND received_at IS NOT NULL
"""


def stream(conn: psycopg.Connection[Any], rate: float, seconds: float) -> int:
    n = int(rate * seconds)
    tickets = demodata.generate(n, seed=5)
    started = time.monotonic()
    for i, t in enumerate(tickets):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        conn.execute(
            "INSERT INTO tickets (number, short_description, description) VALUES (%s, %s, %s)",
            [f"L{i:07d}", t.short_description, t.description],
        )
    return n


def measure(
    settings: Any, env: dict[str, str], home: Path, rate: float, seconds: float, listener: bool
) -> dict[str, float]:
    commands = {
        "worker": ["worker", "--concurrency", "2"],
        "beat": ["beat", "--schedule", str(home / "bench-beat-schedule")],
    }
    if listener:
        commands["listener"] = ["listen"]
    with psycopg.connect(settings.require_database_url(), autocommit=True) as conn:
        common.fresh_table(conn, settings)
        with common.running(home / "bench-logs-latency", env, module="worker.cli", **commands):
            n = stream(conn, rate, seconds)
            common.wait_final(conn, n)
        row = conn.execute(PERCENTILES).fetchone()
    assert row is not None
    p50, p95, p99 = row[0]
    return {"p50": round(p50, 1), "p95": round(p95, 1), "p99": round(p99, 1)}


def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--seconds", type=float, default=60.0)
    args = p.parse_args()
    base = load_settings()
    with common.environment(base.home, args.database_url, args.redis_url) as (settings, env):
        models, info = common.model_dir(base, base.home)
        env["CAUSA_MODELS_DIR"] = str(models)
        print(f"model {info.version}; machine: {common.machine()}", file=sys.stderr)
        event = measure(settings, env, base.home, args.rate, args.seconds, listener=True)
        poll = measure(settings, env, base.home, args.rate, args.seconds, listener=False)
    rows = [(f"event path {q}", f"{v:,.1f} ms") for q, v in event.items()]
    rows += [
        (f"polling alone {q} (every {settings.poll_interval:g} s)", f"{v:,.1f} ms")
        for q, v in poll.items()
    ]
    common.emit(
        rows,
        f"latency at {args.rate:g} tickets/s for {args.seconds:g} s on {common.machine()}",
        {"latency_ms": event, "poll_latency_ms": poll},
        args.json,
    )


if __name__ == "__main__":
    main()
