"""Scale: the queue's speed with a large backlog, against the same with a small one.

Fills the ticket table with --rows pending tickets in one INSERT ... SELECT over
generate_series (demo texts; the insert trigger queues them), VACUUM ANALYZEs it, then:

  - claim: --claims calls of causa_claim of a batch of 1,000, each in a transaction rolled
    back (the queue stays as filled; VACUUM between them), timed by the caller: p50, p99;
  - tickets/s end to end: a worker (2 processes) decides 17 batches, enqueued as beat would;
    the rate from the 1,000th to the 16,000th ticket decided, by the decisions' own times;
  - the cost of causa_pending_count, causa_status_counts and causa_activity (the median of 5
    calls, after the run: with its decisions in the log).

The same with 20,000 pending tickets; then both, and their ratios against the targets (the
claim's p50 at most 2x the small backlog's, tickets/s at least 0.8x).

    python bench/scale.py [--rows 1000000] [--json]
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from shared.settings import Settings, load_settings
from worker import demodata

BASELINE_ROWS = 20_000
BATCH = 1_000
FIRST, LAST = 1_000, 16_000  # tickets/s is timed from the FIRST-th to the LAST-th decision
DISTINCT_TEXTS = 2_000  # demo tickets the fill repeats
CALLS = 5  # calls of each status function

# N pending tickets in one statement (%s: N, the demo's short descriptions, descriptions).
FILL = """
INSERT INTO tickets (number, short_description, description)
SELECT 'S' || lpad(i::text, 8, '0'),
       d.shorts[1 + i %% cardinality(d.shorts)], d.longs[1 + i %% cardinality(d.longs)]
  FROM generate_series(0, %s - 1) AS i, (SELECT %s::text[] AS shorts, %s::text[] AS longs) AS d
"""
# One claim as a worker makes it; only its size comes back (the texts stay in the server).
CLAIM = """
SELECT jsonb_array_length(public.causa_claim(
    p_worker => 'bench-scale', p_batch => %s, p_lease_seconds => %s, p_max_attempts => %s,
    p_request_id => %s, p_max_chars => %s))
"""
# Seconds between the FIRST-th and the LAST-th decision (%s: FIRST, LAST).
WINDOW = """
SELECT extract(epoch FROM max(decided_at) FILTER (WHERE n = %s)
                          - max(decided_at) FILTER (WHERE n = %s))
  FROM (SELECT decided_at, row_number() OVER (ORDER BY decided_at, id) AS n
          FROM causa.decisions) AS d
"""
STATUS_FUNCTIONS = ("causa_pending_count", "causa_status_counts", "causa_activity")


def fill(conn: psycopg.Connection[Any], rows: int) -> float:
    """`rows` pending tickets, queued by the insert trigger; seconds it took (with VACUUM
    ANALYZE of the table and the work items)."""
    demo = demodata.generate(DISTINCT_TEXTS, seed=11)
    started = time.monotonic()
    conn.execute(FILL, [rows, [t.short_description for t in demo], [t.description for t in demo]])
    conn.execute("VACUUM ANALYZE tickets")
    conn.execute("VACUUM ANALYZE causa.work")
    return time.monotonic() - started


def claim_times(conn: psycopg.Connection[Any], settings: Settings, calls: int) -> list[float]:
    """Milliseconds of `calls` claims of a batch, each rolled back and its dead row versions
    vacuumed away before the next (so that they weigh on neither size)."""
    times = []
    for _ in range(calls):
        conn.execute("VACUUM causa.work")
        with conn.transaction(force_rollback=True):
            started = time.perf_counter()
            row = conn.execute(
                CLAIM,
                [
                    BATCH,
                    settings.lease_seconds,
                    settings.max_attempts,
                    uuid.uuid4().hex,
                    settings.max_text_chars,
                ],
            ).fetchone()
            times.append((time.perf_counter() - started) * 1000)
        if not row or row[0] != BATCH:
            raise SystemExit(f"a claim returned {row and row[0]} tickets, not {BATCH}")
    return times


def function_costs(conn: psycopg.Connection[Any]) -> dict[str, float]:
    """Milliseconds of each status function: the median of CALLS calls."""
    costs = {}
    for name in STATUS_FUNCTIONS:
        times = []
        for _ in range(CALLS):
            started = time.perf_counter()
            conn.execute(f"SELECT public.{name}()").fetchone()
            times.append((time.perf_counter() - started) * 1000)
        costs[name] = statistics.median(times)
    return costs


def throughput(
    conn: psycopg.Connection[Any], settings: Settings, env: dict[str, str], logdir: Path
) -> float:
    """Tickets/s of a worker from the FIRST-th to the LAST-th decision."""
    worker = ["worker", "--concurrency", "2"]
    with common.running(logdir, env, worker=worker):
        common.enqueue(settings, LAST + BATCH)
        common.wait_final(conn, LAST)
    row = conn.execute(WINDOW, [LAST, FIRST]).fetchone()
    if not row or not row[0]:
        raise SystemExit("no decisions to time")
    return (LAST - FIRST) / float(row[0])


def measure(
    conn: psycopg.Connection[Any],
    settings: Settings,
    env: dict[str, str],
    home: Path,
    rows: int,
    claims: int,
) -> dict[str, Any]:
    print(f"{rows:,} pending tickets ...", file=sys.stderr)
    common.fresh_table(conn, settings)
    fill_s = fill(conn, rows)
    times = claim_times(conn, settings, claims)
    q = statistics.quantiles(times, n=100, method="inclusive")
    rate = throughput(conn, settings, env, home / "bench-logs-scale")
    return {
        "rows": rows,
        "fill_s": round(fill_s, 1),
        "claim_p50_ms": round(q[49], 1),
        "claim_p99_ms": round(q[98], 1),
        "tickets_per_s": round(rate, 1),
        "function_ms": {k: round(v, 2) for k, v in function_costs(conn).items()},
    }


def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--rows", type=int, default=1_000_000, help="pending tickets of the large run")
    p.add_argument("--claims", type=int, default=100, help="claims timed at each size")
    args = p.parse_args()
    if args.rows < BASELINE_ROWS:
        raise SystemExit(f"--rows must be at least the baseline's {BASELINE_ROWS:,}")
    base = load_settings()
    with common.environment(base.home, args.database_url, args.redis_url) as (settings, env):
        models, info = common.model_dir(base, base.home)
        print(f"model {info.version}; machine: {common.machine()}", file=sys.stderr)
        env["CAUSA_MODELS_DIR"] = str(models)
        env["CAUSA_POLL_INTERVAL"] = "3600"  # the benchmark enqueues the batches itself
        with psycopg.connect(settings.require_database_url(), autocommit=True) as conn:
            small = measure(conn, settings, env, base.home, BASELINE_ROWS, args.claims)
            large = measure(conn, settings, env, base.home, args.rows, args.claims)
    claim_ratio = large["claim_p50_ms"] / small["claim_p50_ms"]
    rate_ratio = large["tickets_per_s"] / small["tickets_per_s"]

    def row(measure: str, key: str, unit: str, target: str = "") -> list[str]:
        a, b = small[key], large[key]
        return [measure, f"{a:,.1f} {unit}", f"{b:,.1f} {unit}", f"{b / a:.2f}x", target]

    rows = [
        ["pending tickets", f"{small['rows']:,}", f"{large['rows']:,}", "", ""],
        row("fill and VACUUM ANALYZE", "fill_s", "s"),
        row(f"claim of {BATCH:,} p50", "claim_p50_ms", "ms", "≤ 2x"),
        row(f"claim of {BATCH:,} p99", "claim_p99_ms", "ms"),
        row(f"tickets/s ({FIRST:,}th to {LAST:,}th decided)", "tickets_per_s", "", "≥ 0.8x"),
    ]
    for name in STATUS_FUNCTIONS:
        a, b = small["function_ms"][name], large["function_ms"][name]
        rows.append([name, f"{a:,.2f} ms", f"{b:,.2f} ms", f"{b / a:.2f}x", ""])
    met = claim_ratio <= 2 and rate_ratio >= 0.8
    rows.append(["targets met", "", "", "yes" if met else "no", ""])
    common.emit(
        rows,
        f"scale: {args.rows:,} against {BASELINE_ROWS:,} pending on {common.machine()}",
        {
            "baseline": small,
            "large": large,
            "claim_p50_ratio": round(claim_ratio, 2),
            "tickets_per_s_ratio": round(rate_ratio, 2),
            "targets_met": met,
        },
        args.json,
        columns=(
            "measure",
            f"{BASELINE_ROWS:,} pending",
            f"{args.rows:,} pending",
            "ratio",
            "target",
        ),
    )


if __name__ == "__main__":
    main()
