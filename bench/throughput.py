"""Throughput: tickets per second end to end, causa's batches against the naive approach,
and against what the model alone predicts on the same cores.

Loads N pending tickets into a benchmark database on the embedded services, starts a worker
(2 processes) with a model, enqueues the backlog as beat would, and times until every ticket
is final. Then the same model alone: 2 processes, no database, no broker, predicting (with
explanations, as the worker does unless CAUSA_EXPLAIN=false) the same texts in batches of
CAUSA_BATCH_SIZE; the ratio of the two is the share of the model's speed that causa keeps
end to end. Both, in turn, `--rounds` times (medians; the shares' range). Then the naive
approach (one Celery task and one UPDATE per ticket, 2 processes) on the first tickets.

The first row is the bootstrap model on demo data (made once under CAUSA_HOME/bench-models);
`--models DIR` adds a row for the model in that directory (e.g. the default model of
`bench/training.py --keep DIR`).

    python bench/throughput.py [--tickets 50000] [--naive-tickets 5000] [--models DIR] [--json]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from shared.settings import load_settings
from training import registry
from worker.app import make_app

ROOT = Path(__file__).resolve().parents[1]


ALONE = """
import json, sys, time
from pathlib import Path
from flows.classify import predictions
from shared.settings import load_settings
from shared.text import clean
from training import registry
from worker import demodata
settings = load_settings()
models = registry.ModelRegistry.local(Path(sys.argv[1]), registry.signing_key(settings))
model = models.load_current()
tickets = demodata.generate(int(sys.argv[2]), seed=11)  # those common.load writes
texts = [clean(t.short_description + " " + t.description) for t in tickets]
size = settings.batch_size
print("ready", flush=True)
sys.stdin.readline()
started = time.perf_counter()
for i in range(0, len(texts), size):
    predictions(model, texts[i : i + size], settings.explain)
print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)
"""


def model_alone(models: Path, tickets: int, processes: int, env: dict[str, str]) -> float:
    """Tickets per second of `processes` processes predicting `tickets` texts between them,
    started together once each has loaded the model."""
    share = tickets // processes
    children = [
        subprocess.Popen(
            [sys.executable, "-c", ALONE, str(models), str(share)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for _ in range(processes)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    started = time.monotonic()
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        child.communicate(timeout=3600)
    return share * processes / (time.monotonic() - started)


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
    p.add_argument("--models", type=Path, help="also measure the model in this directory")
    p.add_argument("--rounds", type=int, default=3, help="end to end and alone, in turn")
    args = p.parse_args()
    base = load_settings()
    home = base.home
    rows: list[tuple[str, str]] = []
    summary: list[dict[str, Any]] = []
    with common.environment(home, args.database_url, args.redis_url) as (settings, env):
        apart = base.model_copy(update={"models_dir": home / "bench-models"})
        first, info = common.model_dir(apart, home)
        chosen = [("bootstrap", first, info)]
        if args.models is not None:
            key = registry.signing_key(base)
            other = registry.read_manifest(args.models, key)
            if other is None:
                raise SystemExit(f"no model in {args.models}: train one there first")
            chosen.append(("given", args.models, other))
        env["CAUSA_POLL_INTERVAL"] = "3600"  # the benchmark enqueues the backlog itself
        url = settings.require_database_url()
        with psycopg.connect(url, autocommit=True) as conn:
            for name, models, model in chosen:
                print(
                    f"model {model.version} ({name}) from {models}; {common.machine()}",
                    file=sys.stderr,
                )
                env["CAUSA_MODELS_DIR"] = str(models)
                rounds = []  # end to end, then the model alone, in turn: the machine's
                for _ in range(args.rounds):  # ups and downs fall on both
                    rate = common.end_to_end(
                        conn, settings, env, home / "bench-logs", args.tickets, args.concurrency
                    )
                    rounds.append((rate, model_alone(models, args.tickets, args.concurrency, env)))
                shares = sorted(rate / alone for rate, alone in rounds)
                summary.append(
                    {
                        "model": model.version,
                        "kind": name,
                        "n_train": model.n_train,
                        "tickets_per_s": round(statistics.median(r for r, _ in rounds), 1),
                        "model_alone_tickets_per_s": round(
                            statistics.median(a for _, a in rounds), 1
                        ),
                        "share_of_model_alone": round(statistics.median(shares), 3),
                        "share_range": [round(shares[0], 3), round(shares[-1], 3)],
                    }
                )
            env["CAUSA_MODELS_DIR"] = str(first)
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
                naive_rate = n / (time.monotonic() - started)
    for row in summary:
        row["times_naive"] = round(row["tickets_per_s"] / naive_rate, 1)
        rows.append(
            (
                f"{row['kind']} model {row['model']} ({row['n_train']:,} labels)",
                f"{row['tickets_per_s']:,.0f} tickets/s end to end; model alone"
                f" {row['model_alone_tickets_per_s']:,.0f}; share"
                f" {row['share_of_model_alone']:.2f} ({row['share_range'][0]:.2f}-"
                f"{row['share_range'][1]:.2f}); {row['times_naive']:.0f}x naive",
            )
        )
    rows += [
        ("tickets (causa)", f"{args.tickets:,}"),
        ("naive tickets/s", f"{naive_rate:,.0f} ({n:,} tickets, the first model)"),
        ("worker processes", str(args.concurrency)),
    ]
    common.emit(
        rows,
        f"throughput on {common.machine()}",
        {
            "tickets": args.tickets,
            "models": summary,
            "naive_tickets": n,
            "naive_tickets_per_s": round(naive_rate, 1),
            # the first row's figures under the names earlier runs used
            "tickets_per_s": summary[0]["tickets_per_s"],
            "ratio": summary[0]["times_naive"],
        },
        args.json,
    )


if __name__ == "__main__":
    main()
