"""`causa health`: does the database answer, does the broker? Each check gives up after a
few seconds and skips the store's retry backoff: a healthcheck must fail fast."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
import redis

from shared.settings import Settings
from shared.store import FunctionStore, function_call, make_store, not_installed

TIMEOUT_S = 3  # well inside the containers' healthcheck timeout (15 s)


def _within(seconds: float, fn: Callable[[], object]) -> object:
    """fn's result or error, or TimeoutError after `seconds` (fn goes on in a daemon thread)."""
    outcome: list[tuple[object, BaseException | None]] = []

    def target() -> None:
        try:
            outcome.append((fn(), None))
        except BaseException as exc:  # handed to the caller
            outcome.append((None, exc))

    thread = threading.Thread(target=target, daemon=True, name="causa-health")
    thread.start()
    thread.join(seconds)
    if not outcome:
        raise TimeoutError(f"no answer within {seconds:g} s")
    value, error = outcome[0]
    if error is not None:
        raise error
    return value


def database(s: Settings) -> str:
    """causa_pending_count answers: over one connection (direct), or through the REST API."""
    if s.database_url is None:
        store: FunctionStore = make_store(s)
        return f"ok (backlog {_within(TIMEOUT_S, store.pending_count)})"
    query, values = function_call("causa_pending_count", {})
    with psycopg.connect(s.database_url.get_secret_value(), connect_timeout=TIMEOUT_S) as conn:
        conn.execute(f"SET statement_timeout = {TIMEOUT_S * 1000}")
        try:
            row = conn.execute(query, values).fetchone()
        except psycopg.errors.UndefinedFunction as exc:
            raise not_installed(s, "causa_pending_count") from exc
    return f"ok (backlog {row[0] if row else None})"


def broker(s: Settings) -> str:
    client = redis.Redis.from_url(
        s.require_redis_url(), socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


CHECKS: dict[str, Callable[[Settings], str]] = {"database": database, "broker": broker}
