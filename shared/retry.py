"""Retry policies: transient database errors are retried with exponential backoff and jitter,
everything else fails at once with its cause kept. The one place that decides what is transient."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import httpx
import psycopg
import psycopg_pool
import structlog
from postgrest.exceptions import APIError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from shared.settings import Retries

log = structlog.get_logger("causa.retry")
T = TypeVar("T")

# Errors without a SQLSTATE (the server never answered): connection refused or lost, no
# connection free in the pool, a timeout. The same call can succeed a moment later.
TRANSIENT = (
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
    ConnectionError,
    TimeoutError,
)


# Through PostgREST, the database's error arrives as its SQLSTATE in `code`; an HTTP error
# without a PostgREST body arrives as the status code; PostgREST's own PGRST000-PGRST003 say
# it cannot reach the database or has no connection free (HTTP 503/504).
# Among SQLSTATEs: connection exceptions (08), serialization failures and deadlocks, too many
# connections, the server shutting down, a statement or lock timeout. Any other SQLSTATE is
# about the statement or its data (54000: a value too large, 22...: invalid data, among them
# 22023, the queue functions refusing bad input by name): the same call fails again, so it is
# not transient.
TRANSIENT_CODES = re.compile(
    r"^(5\d\d|429|408|08\w\w\w|40001|40P01|53300|57P0[123]|57014|55P03|PGRST00[0-3])$"
)


# A server's Retry-After is honoured up to this long; beyond it the policy's own delays apply.
RETRY_AFTER_CAP_S = 60.0


class RateLimited(Exception):
    """HTTP 429: the server asked to wait `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"HTTP 429 Too Many Requests; Retry-After {retry_after:g} s")
        self.retry_after = retry_after


def raise_on_rate_limit(response: httpx.Response) -> None:
    """An httpx response hook: turn a 429 into RateLimited with its Retry-After."""
    if response.status_code == 429:
        try:
            after = float(response.headers.get("Retry-After", "0"))
        except ValueError:  # an HTTP date: wait by the policy instead
            after = 0.0
        raise RateLimited(min(max(after, 0.0), RETRY_AFTER_CAP_S))


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, psycopg.Error) and exc.sqlstate:  # the server answered: by its code
        return bool(TRANSIENT_CODES.match(exc.sqlstate))
    if isinstance(exc, httpx.TransportError | RateLimited):  # connection lost, timeouts, 429
        return True
    if isinstance(exc, APIError):
        return bool(TRANSIENT_CODES.match(str(exc.code or "")))
    return isinstance(exc, TRANSIENT)


def _log_retry(what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "retrying",
            operation=what,
            attempt=state.attempt_number,
            delay_s=round(state.upcoming_sleep, 2),
            error=type(exc).__name__,
            detail=str(exc)[:300],
        )

    return before_sleep


def policy(settings: Retries, what: str) -> Retrying:
    """Default: 1 -> 2 -> 4 -> 8 s (plus jitter), 4 retries, then the last error is raised."""
    backoff = wait_exponential_jitter(
        initial=settings.retry_initial, max=settings.retry_max, jitter=settings.retry_jitter
    )

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = exc.retry_after if isinstance(exc, RateLimited) else 0.0
        return max(float(backoff(state)), asked)

    return Retrying(
        retry=retry_if_exception(is_transient),
        wait=wait,
        stop=stop_after_attempt(settings.retry_attempts + 1),
        before_sleep=_log_retry(what),
        reraise=True,
    )


def call(settings: Retries, what: str, fn: Callable[[], T]) -> T:
    return policy(settings, what)(fn)
