"""Throughput of the Supabase (REST) adapter beside the direct one, on the same tickets.

There is no hosted PostgREST here: the REST run goes through tests/postgrest.py, a stand-in
that forwards each RPC call to the embedded PostgreSQL over a new connection, so its figure
is a floor for the client side, not a measurement of Supabase's servers.

    python bench/rest.py [--tickets 20000] [--json]
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from shared.settings import load_settings


def service_key() -> str:
    def part(obj: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'role': 'service_role'})}.YmVuY2htYXJr"


def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--tickets", type=int, default=20_000)
    args = p.parse_args()
    from tests.postgrest import PostgREST

    base = load_settings()
    with common.environment(base.home, args.database_url, args.redis_url) as (settings, env):
        models, info = common.model_dir(base, base.home)
        env.update(CAUSA_MODELS_DIR=str(models), CAUSA_POLL_INTERVAL="3600")
        url = settings.require_database_url()
        with psycopg.connect(url, autocommit=True) as conn:
            logs = base.home / "bench-logs-direct"
            direct = common.end_to_end(conn, settings, env, logs, args.tickets)
            key = service_key()
            with PostgREST(url, key) as server:
                rest_env = {k: v for k, v in env.items() if k != "DATABASE_URL"}
                rest_env.update(SUPABASE_URL=server.url, SUPABASE_SERVICE_ROLE_KEY=key)
                logs = base.home / "bench-logs-rest"
                rest = common.end_to_end(conn, settings, rest_env, logs, args.tickets)
                calls = list(server.calls)
    batches = max(1, sum(1 for c in calls if c == "causa_apply"))
    per_batch = len(calls) / batches
    common.emit(
        [
            ("tickets", f"{args.tickets:,}"),
            ("direct tickets/s", f"{direct:,.0f}"),
            ("REST tickets/s", f"{rest:,.0f}"),
            ("REST requests", f"{len(calls):,}"),
            ("REST requests per batch", f"{per_batch:.1f}"),
            ("model", info.version),
        ],
        f"direct vs REST adapter on {common.machine()}",
        {
            "tickets": args.tickets,
            "direct_tickets_per_s": round(direct, 1),
            "rest_tickets_per_s": round(rest, 1),
            "rest_requests_per_batch": round(per_batch, 2),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
