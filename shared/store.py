"""The ticket store: the queue operations, as calls of the SQL functions in schema.sql.

The direct adapter talks to PostgreSQL over a psycopg pool. Every call is retried on transient
errors (shared.retry); every call is safe to repeat: a claim, an apply and a fail carry a
request id (a repeated one returns what the first returned), and the claim token decides
what is still ours.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import orjson
from postgrest.exceptions import APIError
from psycopg import errors, sql
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from shared import retry
from shared.contract import Status
from shared.settings import ConfigError, Settings, TicketTable
from shared.text import clean

# Supabase's transaction pooler (and PgBouncer in transaction mode) listens here; it cannot
# keep prepared statements across transactions.
POOLER_PORT = 6543
# A database that does not answer within these is down for this attempt: the retry policy
# and the circuit breaker take it from there (the pool's own default wait is 30 s).
CONNECT_TIMEOUT_S = 5
# TCP keepalives and a user timeout on every connection: one whose peer is gone without a
# word (a host cut off, a NAT that forgot it) fails within about a minute instead of hanging.
KEEPALIVE: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}
POOL_WAIT_S = 5.0
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
    alternatives: list[dict[str, Any]] | None = None  # the next causes: [{cause, p}]
    digest: str | None = None  # sha256 of the text the model saw
    # the terms that raised the cause most: [{term, weight}] (None: not explained)
    explanation: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Caller:
    """Who makes a queue call, and its request id: a repeated call with the same id (a lost
    reply, a retry) returns what the first one did."""

    worker: str
    request_id: str
    task: str | None = None


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


class QueueStore(Protocol):
    """What classifying a batch needs: claim, write results, give tickets back."""

    def claim(
        self, caller: Caller, batch: int, numbers: Sequence[str] | None = None
    ) -> list[Claimed]: ...

    def apply(self, caller: Caller, results: Sequence[Result]) -> dict[str, int]: ...

    def fail(self, caller: Caller, failures: Sequence[Failure]) -> dict[str, int]: ...


class BacklogStore(Protocol):
    """What covering the backlog needs: how much waits."""

    def pending_count(self) -> dict[str, Any]: ...


class LabelStore(Protocol):
    """What training needs: the tickets people labelled."""

    def labelled(self) -> Iterator[Labelled]: ...


class EventStore(Protocol):
    """causa.events: what was decided (trainings, rollbacks, drift reports, admin actions)."""

    def record_event(self, kind: str, payload: dict[str, Any]) -> None: ...


class ActivityStore(Protocol):
    """What the watch reads: the oldest pending ticket, recent decisions, dead letters."""

    def activity(self, window: int = 300, failed_since: str | None = None) -> dict[str, Any]: ...


class DecisionStore(EventStore, Protocol):
    """What the drift report reads (the model's recent decisions) and stores."""

    def recent(self, since: str, limit: int = 10_000) -> list[dict[str, Any]]: ...


class AccuracyStore(EventStore, Protocol):
    """What live accuracy and the threshold suggestion read: the model's decisions over a
    window with the label a person gave each later (None: not reviewed), and what they store."""

    def live_decisions(
        self,
        since: str,
        until: str | None = None,
        model_version: str | None = None,
        after: dict[str, Any] | None = None,
        limit: int = 10_000,
    ) -> list[dict[str, Any]]: ...


class AdminStore(EventStore, Protocol):
    """What the operator's flows change: decided or dead-lettered tickets back to the queue."""

    def requeue(
        self,
        statuses: Sequence[str],
        numbers: Sequence[str] | None = None,
        model_version: str | None = None,
    ) -> int: ...


class HistoryStore(EventStore, Protocol):
    """What `causa backfill` needs: count, then queue, the tickets the cut-off leaves alone."""

    def backfill(
        self, apply: bool, since: datetime | None = None, limit: int | None = None
    ) -> dict[str, Any]: ...


class RetentionStore(Protocol):
    """What the retention task deletes: old decisions, events and replies, one batch a call."""

    def retain(self, decision_days: int, event_days: int, batch: int) -> dict[str, int]: ...


class ReviewStore(Protocol):
    """What people's tools read and write through causa: tickets by state, one ticket, a
    person's label (recorded with who gave it)."""

    def tickets(
        self, status: str, limit: int, after: dict[str, Any] | None
    ) -> list[dict[str, Any]]: ...

    def ticket(self, number: str) -> dict[str, Any] | None: ...

    def label(self, number: str, cause: str, by: str) -> dict[str, bool]: ...


class DeskStore(Protocol):
    """What the review desk's dashboard reads."""

    def dashboard(self, days: int) -> dict[str, Any]: ...

    def event_history(
        self, kinds: Sequence[str], since: str, limit: int = 1000
    ) -> list[dict[str, Any]]: ...


class KeyStore(Protocol):
    """The HTTP API's keys (only their hashes) and the record of the admin tasks it queued."""

    def create_api_key(
        self, name: str, prefix: str, digest: str, scope: str, rate_limit: str | None
    ) -> dict[str, Any]: ...

    def find_api_key(self, prefix: str) -> dict[str, Any] | None: ...

    def api_keys(self) -> list[dict[str, Any]]: ...

    def revoke_api_key(self, name: str) -> bool: ...

    def task_run(
        self,
        task_id: str,
        name: str,
        state: str,
        by: str | None = None,
        summary: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None: ...

    def task(self, task_id: str) -> dict[str, Any] | None: ...


class TicketStore(
    QueueStore,
    ReviewStore,
    DeskStore,
    KeyStore,
    BacklogStore,
    LabelStore,
    ActivityStore,
    DecisionStore,
    AccuracyStore,
    AdminStore,
    HistoryStore,
    RetentionStore,
    Protocol,
):
    """Every queue operation: what the adapters below implement (and `causa status` reads)."""

    def status_counts(self) -> dict[str, Any]: ...

    def latest_events(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def is_pooled(url: str) -> bool:
    return urlsplit(url).port == POOLER_PORT


def function_call(
    function: str, args: dict[str, Any], schema: str = "public"
) -> tuple[sql.Composed, list[Any]]:
    """`SELECT schema.function(name => %s, ...)` and its values, lists and dicts as jsonb: a
    call with named arguments, the way PostgREST makes it (causa's entry points are in
    `public`, the schema PostgREST exposes)."""
    query = sql.SQL("SELECT {}({})").format(
        sql.Identifier(schema, function),
        sql.SQL(", ").join(sql.SQL("{} => %s").format(sql.Identifier(k)) for k in args),
    )
    return query, [
        Jsonb(v, dumps=orjson.dumps) if isinstance(v, list | dict) else v for v in args.values()
    ]


def as_json(items: Sequence[Result] | Sequence[Failure]) -> list[dict[str, Any]]:
    """Results or failures as the JSON objects causa_apply and causa_fail take. The error is
    the one free text (an exception's message): cleaned, since jsonb holds no NUL and no lone
    surrogate, and one of them would have the whole call refused."""
    rows = [vars(i) for i in items]  # no deep copy (asdict): 20 ms a batch
    return [{**r, "error": clean(r["error"])} if r["error"] else r for r in rows]


def _who(caller: Caller, call: str) -> dict[str, Any]:
    """The arguments that say who writes: worker, task, and the call's own request id."""
    return {
        "p_request_id": f"{caller.request_id}:{call}",
        "p_worker": caller.worker,
        "p_task": caller.task,
    }


class FunctionStore:
    """The queue operations, each one call of a SQL function with named arguments.
    Adapters differ only in how they make that call (`_call`)."""

    settings: Settings

    def _call(self, function: str, args: dict[str, Any]) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; the store opens them again when used."""

    def claim(
        self, caller: Caller, batch: int, numbers: Sequence[str] | None = None
    ) -> list[Claimed]:
        s = self.settings
        rows = self._call(
            "causa_claim",
            {
                "p_worker": caller.worker,
                "p_batch": batch,
                "p_lease_seconds": s.lease_seconds,
                "p_max_attempts": s.max_attempts,
                "p_numbers": list(numbers) if numbers is not None else None,
                "p_since": s.classify_since.isoformat() if s.classify_since else None,
                "p_request_id": caller.request_id,
                "p_max_chars": s.max_text_chars,
            },
        )
        return [Claimed(r["number"], r["text"], r["attempts"], r["claim_token"]) for r in rows]

    def apply(self, caller: Caller, results: Sequence[Result]) -> dict[str, int]:
        if not results:
            return {"applied": 0, "stale": 0}
        out: dict[str, int] = self._call(
            "causa_apply",
            {
                "p_results": as_json(results),
                "p_mode": self.settings.mode,
                **_who(caller, "apply"),
            },
        )
        return out

    def fail(self, caller: Caller, failures: Sequence[Failure]) -> dict[str, int]:
        if not failures:
            return {"retrying": 0, "failed": 0, "stale": 0}
        out: dict[str, int] = self._call(
            "causa_fail",
            {
                "p_failures": as_json(failures),
                "p_max_attempts": self.settings.max_attempts,
                **_who(caller, "fail"),
            },
        )
        return out

    def pending_count(self) -> dict[str, Any]:
        """{pending, retry, claimed, estimated}: each count stops at a cap (it runs every
        poll); above it `pending` is the planner's estimate and `estimated` says so."""
        since = self.settings.classify_since
        out: dict[str, Any] = self._call(
            "causa_pending_count", {"p_since": since.isoformat() if since else None}
        )
        return out

    def status_counts(self) -> dict[str, Any]:
        """Tickets by status; `estimated` lists the counts that are the planner's estimate."""
        out: dict[str, Any] = self._call("causa_status_counts", {})
        return out

    def labelled(self) -> Iterator[Labelled]:
        after: str | None = None
        while True:
            page = self._call("causa_labelled", {"p_after": after, "p_limit": LABEL_PAGE})
            yield from (Labelled(r["number"], r["text"] or "", r["cause"]) for r in page)
            if len(page) < LABEL_PAGE:
                return
            after = page[-1]["number"]

    def requeue(
        self,
        statuses: Sequence[str],
        numbers: Sequence[str] | None = None,
        model_version: str | None = None,
    ) -> int:
        """Put decided or dead-lettered tickets back in the queue (never a person's label)."""
        out = self._call(
            "causa_requeue",
            {
                "p_statuses": list(statuses),
                "p_numbers": list(numbers) if numbers is not None else None,
                "p_model_version": model_version,
            },
        )
        return int(out["requeued"])

    def backfill(
        self, apply: bool, since: datetime | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """History on purpose: {tickets, cutoff}, the tickets without a cause the cut-off
        (CAUSA_CLASSIFY_SINCE, else the first migration's time) leaves alone, received since
        `since` when given, at most `limit`; with `apply` they are queued, else only counted."""
        cutoff = self.settings.classify_since
        out: dict[str, Any] = self._call(
            "causa_backfill",
            {
                "p_apply": apply,
                "p_since": since.isoformat() if since else None,
                "p_limit": limit,
                "p_classify_since": cutoff.isoformat() if cutoff else None,
            },
        )
        return out

    def activity(self, window: int = 300, failed_since: str | None = None) -> dict[str, Any]:
        """Oldest pending age, decisions in the last `window` s, dead letters since then."""
        out: dict[str, Any] = self._call(
            "causa_activity", {"p_window": window, "p_failed_since": failed_since}
        )
        return out

    def recent(self, since: str, limit: int = 10_000) -> list[dict[str, Any]]:
        """The model's decisions since an ISO time, newest first (for the drift report)."""
        out: list[dict[str, Any]] = self._call("causa_recent", {"p_since": since, "p_limit": limit})
        return out

    def live_decisions(
        self,
        since: str,
        until: str | None = None,
        model_version: str | None = None,
        after: dict[str, Any] | None = None,
        limit: int = 10_000,
    ) -> list[dict[str, Any]]:
        """A page of the model's decisions from `since` to `until` (ISO times) and the label a
        person gave each later, oldest first, after the cursor {at, id} (causa_live_decisions)."""
        out: list[dict[str, Any]] = self._call(
            "causa_live_decisions",
            {
                "p_since": since,
                "p_until": until,
                "p_model_version": model_version,
                "p_after": after,
                "p_limit": limit,
            },
        )
        return out

    def retain(self, decision_days: int, event_days: int, batch: int) -> dict[str, int]:
        """One batch of retention: {decisions, events, requests} deleted."""
        out: dict[str, int] = self._call(
            "causa_retain",
            {"p_decision_days": decision_days, "p_event_days": event_days, "p_batch": batch},
        )
        return out

    def record_event(self, kind: str, payload: dict[str, Any]) -> None:
        self._call("causa_record_event", {"p_kind": kind, "p_payload": payload})

    def dashboard(self, days: int) -> dict[str, Any]:
        """The last `days` days by hour: decisions by status, backlog, causes, confidence."""
        out: dict[str, Any] = self._call("causa_dashboard", {"p_days": days})
        return out

    def event_history(
        self, kinds: Sequence[str], since: str, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Events of these kinds since an ISO time, oldest first: [{kind, at, payload}]."""
        out: list[dict[str, Any]] = self._call(
            "causa_event_history", {"p_kinds": list(kinds), "p_since": since, "p_limit": limit}
        )
        return out

    def latest_events(self) -> dict[str, Any]:
        """{kind: {at, payload}}: the newest training decision, drift report, admin action."""
        out: dict[str, Any] = self._call("causa_latest_events", {})
        return out

    def tickets(
        self, status: str, limit: int, after: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        """Tickets of one state, oldest first, `limit` after the cursor {at, number}."""
        out: list[dict[str, Any]] = self._call(
            "causa_tickets",
            {
                "p_status": status,
                "p_limit": limit,
                "p_after": after,
                "p_max_chars": self.settings.max_text_chars,
            },
        )
        return out

    def ticket(self, number: str) -> dict[str, Any] | None:
        out: dict[str, Any] | None = self._call(
            "causa_ticket", {"p_number": number, "p_max_chars": self.settings.max_text_chars}
        )
        return out

    def label(self, number: str, cause: str, by: str) -> dict[str, bool]:
        """A person's label, as an edit of the ticket: {found, changed}."""
        out: dict[str, bool] = self._call(
            "causa_label", {"p_number": number, "p_cause": cause, "p_by": by}
        )
        return out

    def create_api_key(
        self, name: str, prefix: str, digest: str, scope: str, rate_limit: str | None
    ) -> dict[str, Any]:
        out: dict[str, Any] = self._call(
            "causa_api_key_create",
            {
                "p_name": name,
                "p_prefix": prefix,
                "p_hash": digest,
                "p_scope": scope,
                "p_rate_limit": rate_limit,
            },
        )
        return out

    def find_api_key(self, prefix: str) -> dict[str, Any] | None:
        out: dict[str, Any] | None = self._call("causa_api_key_find", {"p_prefix": prefix})
        return out

    def api_keys(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._call("causa_api_keys", {})
        return out

    def revoke_api_key(self, name: str) -> bool:
        return bool(self._call("causa_api_key_revoke", {"p_name": name}))

    def task_run(
        self,
        task_id: str,
        name: str,
        state: str,
        by: str | None = None,
        summary: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        self._call(
            "causa_task_run",
            {
                "p_id": task_id,
                "p_name": name,
                "p_state": state,
                "p_by": by,
                "p_summary": summary,
                "p_error": error,
            },
        )

    def task(self, task_id: str) -> dict[str, Any] | None:
        out: dict[str, Any] | None = self._call("causa_task_get", {"p_id": task_id})
        return out


# A SQL function that does not exist: PostgreSQL's SQLSTATE, and PostgREST's "not in the
# schema cache" (the name or the arguments match no function).
MISSING_FUNCTION_CODES = ("42883", "PGRST202")
# causa's functions refusing bad arguments by name (invalid_parameter_value).
REFUSED_CODE = "22023"


class Refused(ValueError):
    """A causa SQL function refused the call's arguments: the message names what was wrong
    and what to give. The same call fails again: not retried."""

    @classmethod
    def of(cls, message: str | None, hint: str | None) -> Refused:
        return cls(f"{message}{f' ({hint})' if hint else ''}")


def not_installed(table: TicketTable, function: str) -> ConfigError:
    """The error for a call of one of causa's SQL functions that the database lacks: causa
    was never migrated there (or an older causa was). Not transient: retrying cannot help."""
    return ConfigError(
        f"causa is not installed in this database: run `causa migrate`"
        f" (table {table.table}; missing: {function}())"
    )


class PostgresStore(FunctionStore):
    """Direct PostgreSQL adapter. Opens its pool on first use, never at import or construction."""

    def __init__(self, settings: Settings, *, max_connections: int = 4) -> None:
        self.settings = settings
        self._url = settings.require_database_url()
        self._max = max_connections
        self._pool: ConnectionPool[Any] | None = None

    @property
    def pool(self) -> ConnectionPool[Any]:
        if self._pool is None:
            kwargs: dict[str, Any] = {
                "autocommit": True,
                "connect_timeout": CONNECT_TIMEOUT_S,
                **KEEPALIVE,
            }
            if is_pooled(self._url):
                kwargs["prepare_threshold"] = None
            self._pool = ConnectionPool(
                self._url,
                min_size=1,
                max_size=self._max,
                kwargs=kwargs,
                open=True,
                name="causa",
                timeout=POOL_WAIT_S,
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _call(self, function: str, args: dict[str, Any]) -> Any:
        query, values = function_call(function, args)

        def once() -> Any:
            with self.pool.connection() as conn:
                row: TupleRow | None = conn.execute(query, values).fetchone()
                return row[0] if row else None

        try:
            return retry.call(self.settings, function, once)
        except errors.UndefinedFunction as exc:
            raise not_installed(self.settings, function) from exc
        except errors.InvalidParameterValue as exc:
            raise Refused.of(exc.diag.message_primary, exc.diag.message_hint) from exc


class SupabaseStore(FunctionStore):
    """Supabase adapter: the same SQL functions through PostgREST (`client.rpc`), for projects
    reached by URL and service-role key, without a database password."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._url, self._key = settings.require_supabase()
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            # lazy: the Supabase client is heavy and only this adapter needs it
            from supabase import ClientOptions, create_client

            # causa's retry policy is the only one: the client's own (GET only) is off.
            client = create_client(
                self._url,
                self._key,
                options=ClientOptions(
                    postgrest_client_retry=False,
                    # a Timeout object: a number is cut to whole seconds by postgrest
                    postgrest_client_timeout=httpx.Timeout(self.settings.rest_timeout),
                ),
            )
            client.postgrest.session.event_hooks["response"].append(retry.raise_on_rate_limit)
            self._client = client
        return self._client

    def _call(self, function: str, args: dict[str, Any]) -> Any:
        try:
            return retry.call(
                self.settings, function, lambda: self.client.rpc(function, args).execute().data
            )
        except APIError as exc:
            if str(exc.code or "") in MISSING_FUNCTION_CODES:
                raise not_installed(self.settings, function) from exc
            if str(exc.code or "") == REFUSED_CODE:
                raise Refused.of(exc.message, exc.hint) from exc
            raise


def make_store(settings: Settings) -> FunctionStore:
    """The direct connection when DATABASE_URL is set, else Supabase by URL and key."""
    if settings.database_url is not None:
        return PostgresStore(settings)
    return SupabaseStore(settings)
