"""Throughput: tickets per second end to end, causa's batches against the naive approach.

Loads N pending tickets into a benchmark database on the embedded services, starts a worker
(2 processes) with the current model (or a bootstrap model on demo data), enqueues the
backlog as beat would, and times until every ticket is final. Then the naive approach (one
Celery task and one UPDATE per ticket, 2 processes) on the first tickets of the same data.

    python bench/throughput.py [--tickets 50000] [--naive-tickets 5000] [--json]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from shared.settings import load_settings
from worker.app import make_app


def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--tickets", type=int, default=50_000)
    p.add_argument(
        "--naive-tickets",
        type=int,
        default=5_000,
        help="tickets for the naive run (it is ~30x slower)",
    )
    p.add_argument("--concurrency", type=int, default=2)
    args = p.parse_args()
    base = load_settings()
    home = base.home
    with common.environment(home, args.database_url, args.redis_url) as (settings, env):
        models, info = common.model_dir(base, home)
        print(
            f"model {info.version} from {models} ({info.decision}, trained on"
            f" {info.n_train} tickets); machine: {common.machine()}",
            file=sys.stderr,
        )
        env["CAUSA_MODELS_DIR"] = str(models)
        env["CAUSA_POLL_INTERVAL"] = "3600"  # the benchmark enqueues the backlog itself
        url = settings.require_database_url()
        with psycopg.connect(url, autocommit=True) as conn:
            common.fresh_table(conn, settings)
            common.load(conn, args.tickets)
            conn.execute("VACUUM ANALYZE tickets")
            worker = ["worker", "--concurrency", str(args.concurrency)]
            with common.running(home / "bench-logs", env, worker=worker):
                started = time.monotonic()
                common.enqueue(settings, args.tickets)
                common.wait_final(conn, args.tickets)
                causa_s = time.monotonic() - started
            causa_rate = args.tickets / causa_s

            n = min(args.naive_tickets, args.tickets)
            common.fresh_table(conn, settings)
            common.load(conn, n)
            naive = [
                "-A",
                "bench.naive",
                "worker",
                "-Q",
                "causa",
                "--concurrency",
                str(args.concurrency),
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ]
            with common.running(home / "bench-logs-naive", env, worker=naive, module="celery"):
                app = make_app(settings)
                started = time.monotonic()
                for i in range(n):
                    app.send_task("bench.naive.classify_one", args=[f"B{i:07d}"])
                common.wait_final(conn, n, query=common.DECIDED_ROWS_SQL)
                naive_s = time.monotonic() - started
            naive_rate = n / naive_s
    ratio = causa_rate / naive_rate
    common.emit(
        [
            ("tickets (causa)", f"{args.tickets:,}"),
            ("causa tickets/s", f"{causa_rate:,.0f}"),
            ("tickets (naive)", f"{n:,}"),
            ("naive tickets/s", f"{naive_rate:,.0f}"),
            ("ratio", f"{ratio:.1f}x"),
            ("worker processes", str(args.concurrency)),
            ("model", info.version),
        ],
        f"throughput on {common.machine()}",
        {
            "tickets": args.tickets,
            "tickets_per_s": round(causa_rate, 1),
            "naive_tickets": n,
            "naive_tickets_per_s": round(naive_rate, 1),
            "ratio": round(ratio, 2),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
