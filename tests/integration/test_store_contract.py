"""One contract, both adapters: the direct PostgreSQL store and the Supabase store (the real
`supabase` client against tests/postgrest.py, a stand-in for PostgREST's RPC endpoint that
runs the calls on the real test database — the hosted service cannot run here)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
import structlog
from pydantic import SecretStr

from shared.contract import Status
from shared.settings import ConfigError, Settings
from shared.store import FunctionStore, Result, SupabaseStore, make_store
from tests.helpers import caller, demo_rows, insert
from tests.postgrest import PostgREST


def jwt(role: str) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'role': role, 'iss': 'supabase'})}.c2lnbmF0dXJlLXRlc3Q"


SERVICE_KEY = jwt("service_role")
FAST = {"retry_initial": 0.01, "retry_max": 0.02, "retry_jitter": 0.0}


@pytest.fixture(params=["postgres", "supabase"])
def adapter(
    request: pytest.FixtureRequest, conn: Any, settings: Settings, database_url: str
) -> Iterator[tuple[FunctionStore, PostgREST | None]]:
    if request.param == "postgres":
        store = make_store(settings.model_copy(update=FAST))
        yield store, None
        store.close()
        return
    with PostgREST(database_url, SERVICE_KEY) as server:
        store = rest_store(settings, server)
        assert isinstance(store, SupabaseStore)
        yield store, server


def rest_store(settings: Settings, server: PostgREST) -> FunctionStore:
    """The Supabase adapter pointed at the stand-in, with quick retries."""
    return make_store(
        settings.model_copy(
            update={
                "database_url": None,
                "supabase_url": server.url,
                "supabase_key": SecretStr(SERVICE_KEY),
                **FAST,
            }
        )
    )


def results(claimed: list[Any], cause: str = "Red") -> list[Result]:
    return [Result(c.number, c.claim_token, Status.CLASSIFIED, cause, 0.9, "v1") for c in claimed]


def test_claim_apply_is_idempotent(adapter: Any, conn: psycopg.Connection[Any]) -> None:
    store, _ = adapter
    insert(conn, demo_rows(5))
    claimed = store.claim(caller("w"), 3)
    assert len(claimed) == 3 and all(c.attempts == 1 for c in claimed)
    assert store.apply(caller(), results(claimed)) == {"applied": 3, "stale": 0}
    assert store.apply(caller(), results(claimed)) == {"applied": 0, "stale": 3}
    assert store.pending_count() == {"pending": 2, "retry": 0, "claimed": 0, "estimated": False}
    assert store.status_counts() == {
        "pending": 2,
        "claimed": 0,
        "classified": 3,
        "needs_review": 0,
        "failed": 0,
        "labelled": 0,
        "estimated": [],
    }


def test_lease_expiry_and_reclaim(adapter: Any, conn: psycopg.Connection[Any]) -> None:
    store, _ = adapter
    insert(conn, demo_rows(3))
    store.settings = store.settings.model_copy(update={"lease_seconds": 0})
    first = store.claim(caller("w"), 3)
    again = store.claim(caller("w"), 3)
    assert len(first) == 3 and len(again) == 1 and again[0].attempts == 2
    # the reclaimed ticket's old token is stale; the two nobody took are still this claim's
    assert store.apply(caller(), results(first)) == {"applied": 2, "stale": 1}


def test_human_label_wins(adapter: Any, conn: psycopg.Connection[Any]) -> None:
    store, _ = adapter
    insert(conn, demo_rows(1))
    claimed = store.claim(caller("w"), 1)
    conn.execute("UPDATE tickets SET causa = 'Accesos'")
    assert store.apply(caller(), results(claimed)) == {"applied": 0, "stale": 1}
    assert [r.cause for r in store.labelled()] == ["Accesos"]


def test_dead_letter(adapter: Any, conn: psycopg.Connection[Any]) -> None:
    from shared.store import Failure

    store, _ = adapter
    insert(conn, demo_rows(1))
    for expected in ({"retrying": 1, "failed": 0, "stale": 0},) * 2 + (
        {"retrying": 0, "failed": 1, "stale": 0},
    ):
        c = store.claim(caller("w"), 1)[0]
        assert store.fail(caller(), [Failure(c.number, c.claim_token, "boom")]) == expected
    assert store.claim(caller("w"), 1) == []


def test_supabase_retries_5xx_and_fails_4xx_at_once_without_leaking_the_key(
    conn: psycopg.Connection[Any],
    settings: Settings,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    insert(conn, demo_rows(2))
    with PostgREST(database_url, SERVICE_KEY) as server:
        store = rest_store(settings, server)
        server.fail_next = [503, 502]
        with structlog.testing.capture_logs() as logs:
            assert len(store.claim(caller("w"), 2)) == 2
        assert [e["attempt"] for e in logs if e["event"] == "retrying"] == [1, 2]
        server.fail_next = [400]
        calls = len(server.calls)
        with pytest.raises(Exception, match="injected"):
            store.pending_count()
        assert len(server.calls) == calls + 1, "a 4xx is not retried"
    assert SERVICE_KEY not in capsys.readouterr().err + json.dumps(logs, default=str)


def test_supabase_honours_retry_after_on_429(
    conn: psycopg.Connection[Any], settings: Settings, database_url: str
) -> None:
    insert(conn, demo_rows(1))
    with PostgREST(database_url, SERVICE_KEY) as server:
        store = rest_store(settings, server)
        server.fail_next, server.retry_after = [429], "0.5"
        started = time.monotonic()
        with structlog.testing.capture_logs() as logs:
            assert store.pending_count()["pending"] == 1
        waited = time.monotonic() - started
    assert waited >= 0.5, "the policy's own delay is 0.01 s: Retry-After was honoured"
    assert [e["delay_s"] for e in logs if e["event"] == "retrying"] == [0.5]


def test_an_anon_key_is_refused(settings: Settings) -> None:
    s = settings.model_copy(
        update={
            "database_url": None,
            "supabase_url": "https://x.supabase.co",
            "supabase_key": SecretStr(jwt("anon")),
        }
    )
    with pytest.raises(ConfigError, match="service-role key"):
        make_store(s)


def test_the_rest_stand_in_serves_only_the_exposed_schema(database_url: str) -> None:
    # given the stand-in for PostgREST, which exposes `public` only, as Supabase does
    headers = {"apikey": SERVICE_KEY, "Authorization": f"Bearer {SERVICE_KEY}"}
    with PostgREST(database_url, SERVICE_KEY) as server:
        url = f"{server.url}/rest/v1/rpc/expire"
        # when a caller asks for one of causa's internal functions in its own schema
        refused = httpx.post(
            url, json={"p_max_attempts": 3}, headers=headers | {"Content-Profile": "causa"}
        )
        # then the schema is refused, and the name alone finds nothing in `public`
        assert refused.status_code == 406 and refused.json()["code"] == "PGRST106"
        missing = httpx.post(url, json={"p_max_attempts": 3}, headers=headers)
        assert missing.status_code == 404 and missing.json()["code"] == "42883"


def test_a_rest_call_that_hangs_fails_at_the_timeout_and_is_retried(
    conn: psycopg.Connection[Any], settings: Settings, database_url: str
) -> None:
    # given a REST store with a 0.5 s timeout and a server whose next answer takes 3 s
    insert(conn, demo_rows(2))
    with PostgREST(database_url, SERVICE_KEY) as server:
        store = rest_store(settings.model_copy(update={"rest_timeout": 0.5}), server)
        server.hang_next = 3.0
        started = time.monotonic()
        # when it claims; then the hung call failed at its timeout and the retry claimed
        assert len(store.claim(caller("w"), 2)) == 2
        assert time.monotonic() - started < 2.5, "the hang was not waited out"
        assert server.calls.count("causa_claim") == 2


def test_postgrest_errors_about_reaching_the_database_are_transient() -> None:
    from postgrest.exceptions import APIError

    from shared import retry

    def api_error(code: str) -> APIError:
        return APIError({"code": code, "message": "m", "details": None, "hint": None})

    # PGRST000-003: the database unreachable, no connection free (HTTP 503/504)
    assert all(retry.is_transient(api_error(f"PGRST00{i}")) for i in range(4))
    # a missing function, a bad request, a value too large: the same again next time
    assert not any(retry.is_transient(api_error(c)) for c in ("PGRST202", "PGRST100", "54000"))


@pytest.mark.parametrize(
    "key",
    [jwt("anon"), jwt("authenticated"), "sb_publishable_abc123", "not-a-key"],
)
def test_only_a_service_role_or_secret_key_is_accepted(settings: Settings, key: str) -> None:
    def with_key(k: str) -> Settings:
        return settings.model_copy(
            update={
                "database_url": None,
                "supabase_url": "https://x.supabase.co",
                "supabase_key": SecretStr(k),
            }
        )

    # a key that would run causa's calls as another role is refused, naming what it is
    with pytest.raises(ConfigError, match="service-role key") as refused:
        with_key(key).require_supabase()
    assert key not in str(refused.value), "the key itself is never printed"
    # the service-role JWT and a secret key are accepted
    for good in (SERVICE_KEY, "sb_secret_abc123"):
        assert with_key(good).require_supabase()[1] == good
