"""The ticket store: the queue operations, as calls of the SQL functions in schema.sql.

The direct adapter talks to PostgreSQL over a psycopg pool. Every call is retried on transient
errors (shared.retry); every write is safe to repeat because the claim token decides what
is still ours.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from shared import retry
from shared.settings import Settings

Status = Literal["classified", "needs_review"]
# Supabase's transaction pooler (and PgBouncer in transaction mode) listens here; it cannot
# keep prepared statements across transactions.
POOLER_PORT = 6543
LABEL_PAGE = 5000  # rows per page when reading labelled tickets for training


@dataclass(frozen=True)
class Claimed:
    number: str
    text: str
    attempts: int
    claim_token: str


@dataclass(frozen=True)
class Result:
    number: str
    claim_token: str
    status: Status
    predicted: str | None
    confidence: float | None
    model_version: str
    error: str | None = None


@dataclass(frozen=True)
class Failure:
    number: str
    claim_token: str
    error: str


@dataclass(frozen=True)
class Labelled:
    number: str
    text: str
    cause: str


class TicketStore(Protocol):
    def claim(
        self, worker: str, batch: int, numbers: Sequence[str] | None = None
    ) -> list[Claimed]: ...

    def apply(self, results: Sequence[Result]) -> dict[str, int]: ...

    def fail(self, failures: Sequence[Failure]) -> dict[str, int]: ...

    def pending_count(self) -> dict[str, int]: ...

    def status_counts(self) -> dict[str, int]: ...

    def labelled(self) -> Iterator[Labelled]: ...


def is_pooled(url: str) -> bool:
    return urlsplit(url).port == POOLER_PORT


class PostgresStore:
    """Direct PostgreSQL adapter. Opens its pool on first use, never at import or construction."""

    def __init__(self, settings: Settings, *, max_connections: int = 4) -> None:
        self.settings = settings
        self._url = settings.require_database_url()
        self._max = max_connections
        self._pool: ConnectionPool[Any] | None = None

    @property
    def pool(self) -> ConnectionPool[Any]:
        if self._pool is None:
            kwargs: dict[str, Any] = {"autocommit": True}
            if is_pooled(self._url):
                kwargs["prepare_threshold"] = None
            self._pool = ConnectionPool(
                self._url,
                min_size=1,
                max_size=self._max,
                kwargs=kwargs,
                open=True,
                name="causa",
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _call(self, what: str, query: str, params: Sequence[object]) -> Any:
        def once() -> Any:
            with self.pool.connection() as conn:
                row: TupleRow | None = conn.execute(query, params).fetchone()
                return row[0] if row else None

        return retry.call(self.settings, what, once)

    def claim(self, worker: str, batch: int, numbers: Sequence[str] | None = None) -> list[Claimed]:
        s = self.settings
        rows = self._call(
            "claim",
            "SELECT causa_claim(%s, %s, %s, %s, %s, %s)",
            [
                worker,
                batch,
                s.lease_seconds,
                s.max_attempts,
                json.dumps(list(numbers)) if numbers is not None else None,
                s.classify_since,
            ],
        )
        return [Claimed(r["number"], r["text"], r["attempts"], r["claim_token"]) for r in rows]

    def apply(self, results: Sequence[Result]) -> dict[str, int]:
        if not results:
            return {"applied": 0, "stale": 0}
        payload = json.dumps([asdict(r) for r in results])
        out: dict[str, int] = self._call(
            "apply", "SELECT causa_apply(%s::jsonb, %s)", [payload, self.settings.mode]
        )
        return out

    def fail(self, failures: Sequence[Failure]) -> dict[str, int]:
        if not failures:
            return {"retrying": 0, "failed": 0, "stale": 0}
        payload = json.dumps([asdict(f) for f in failures])
        out: dict[str, int] = self._call(
            "fail", "SELECT causa_fail(%s::jsonb, %s)", [payload, self.settings.max_attempts]
        )
        return out

    def pending_count(self) -> dict[str, int]:
        out: dict[str, int] = self._call(
            "pending_count", "SELECT causa_pending_count(%s)", [self.settings.classify_since]
        )
        return out

    def status_counts(self) -> dict[str, int]:
        out: dict[str, int] = self._call("status_counts", "SELECT causa_status_counts()", [])
        return out

    def labelled(self) -> Iterator[Labelled]:
        after: str | None = None
        while True:
            page = self._call("labelled", "SELECT causa_labelled(%s, %s)", [after, LABEL_PAGE])
            yield from (Labelled(r["number"], r["text"] or "", r["cause"]) for r in page)
            if len(page) < LABEL_PAGE:
                return
            after = page[-1]["number"]
