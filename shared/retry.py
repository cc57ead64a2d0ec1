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
from psycopg import errors
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from shared.settings import Settings

log = structlog.get_logger("causa.retry")
T = TypeVar("T")

# Connection lost or refused, server shutting down, a timeout, a lost race between
# transactions: the same call can succeed a moment later.
TRANSIENT = (
    psycopg.OperationalError,  # connection refused/lost, admin shutdown (its subclasses)
    errors.SerializationFailure,
    errors.DeadlockDetected,
    errors.QueryCanceled,  # statement_timeout
    errors.LockNotAvailable,
    psycopg_pool.PoolTimeout,
    ConnectionError,
    TimeoutError,
)


# Through PostgREST, the database's error arrives as its SQLSTATE in `code`; an HTTP error
# without a PostgREST body arrives as the status code.
TRANSIENT_CODES = re.compile(r"^(5\d\d|429|408|08\w\w\w|40001|40P01|57P0[123]|57014|55P03)$")


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, psycopg.errors.ProgrammingError | psycopg.errors.DataError):
        return False
    if isinstance(exc, httpx.TransportError):  # connection refused or lost, timeouts
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


def policy(settings: Settings, what: str) -> Retrying:
    """Default: 1 -> 2 -> 4 -> 8 s (plus jitter), 4 retries, then the last error is raised."""
    return Retrying(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential_jitter(
            initial=settings.retry_initial, max=settings.retry_max, jitter=settings.retry_jitter
        ),
        stop=stop_after_attempt(settings.retry_attempts + 1),
        before_sleep=_log_retry(what),
        reraise=True,
    )


def call(settings: Settings, what: str, fn: Callable[[], T]) -> T:
    return policy(settings, what)(fn)
