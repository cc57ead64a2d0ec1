"""The API when Redis or PostgreSQL goes away under it (tests/proxy.py in front of each, cut
while the app runs): predictions go on, admin calls are refused in the one error shape, the
probes say what is down, and when it is back everything answers again."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from flows import keys
from tests.helpers import demo_rows, insert, wait_for
from tests.proxy import Proxy, through, upstream_of

# A request that does not need the part that is down answers promptly: the first one after
# the cut within the part's connect timeout (1 s for Redis), the next ones at once, as ever.
PROMPT_S = 2.0
QUICK_S = 0.5  # a prediction takes ~20 ms; waiting for Redis would take 1 s
QUICK_IN_A_ROW = 5
BACK_WITHIN_S = 15.0  # after the proxy forwards again: a reconnect or two


def one_error(answer: Any, status: int, code: str) -> None:
    """The answer is the API's one error shape, with this status and code."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body.keys() == {"error"}, body
    assert body["error"].keys() == {"status", "code", "message", "field"}, body
    assert (body["error"]["status"], body["error"]["code"]) == (status, code), body
    assert body["error"]["message"] and "Traceback" not in answer.text


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    answer = call()
    return answer, time.monotonic() - start


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[tuple[Proxy, str]]:
    """A proxy in front of the suite's Redis, and the URL that reaches Redis through it."""
    parts = urlsplit(redis_url)
    assert parts.hostname and parts.port, f"a Redis on TCP, not {redis_url}"
    with Proxy((parts.hostname, parts.port)) as proxy:
        yield proxy, parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()


@pytest.mark.parametrize("how", ["down", "partitioned"])
def test_without_redis_predictions_go_on_admin_calls_wait_and_readyz_names_the_broker(
    conn: psycopg.Connection[Any],
    settings: Any,
    model: Path,
    runtime_for: Callable[..., Any],
    redis_proxy: tuple[Proxy, str],
    how: str,
) -> None:
    # given the API, with Redis (rate limits, the readiness check) through the proxy
    proxy, through_proxy = redis_proxy
    rt = runtime_for(settings, redis_url=SecretStr(through_proxy))
    insert(conn, demo_rows(3))
    made = {s: keys.create(rt.store, f"outage-{s}", s, None)["key"] for s in keys.SCOPES}
    predict, review, admin = ({"X-API-Key": made[s]} for s in keys.SCOPES)
    with TestClient(create_app(rt)) as client:  # a server error raises here: none may happen
        assert client.post("/v1/admin/drift", headers=admin).status_code == 202
        assert client.get("/readyz").status_code == 200

        # when Redis goes away: stopped (connections refused) or cut off (nothing answers)
        proxy.cut(blackhole=how == "partitioned")

        # then predictions and the review queue go on (fail open): the first one finds Redis
        # missing (at most its connect timeout), the next ones do not wait for it at all
        for i in range(1 + QUICK_IN_A_ROW):
            answer, took = timed(
                lambda: client.post("/v1/predict", json={"text": "vpn caida"}, headers=predict)
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"][0]["cause"], answer.text
            assert took < (PROMPT_S if i == 0 else QUICK_S), f"prediction {i}: {took:.2f} s"
        page = client.get("/v1/tickets", params={"status": "pending"}, headers=review)
        assert page.status_code == 200 and len(page.json()["items"]) == 3, page.text

        # and admin calls are refused (fail closed), in the one error shape
        refused, took = timed(lambda: client.post("/v1/admin/drift", headers=admin))
        one_error(refused, 503, "unavailable")
        assert "Redis" in refused.json()["error"]["message"] and took < PROMPT_S

        # and the process is up, but not ready: the broker is named, the rest answers
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        report = ready.json()
        assert report["ready"] is False and report["broker"] != "ok", report
        assert report["database"] == "ok" and report["model"] == "ok", report

        # when Redis is back, admin calls are taken again and the API is ready
        proxy.restore()
        wait_for(
            lambda: client.post("/v1/admin/drift", headers=admin).status_code == 202,
            timeout=BACK_WITHIN_S,
            what="an admin call taken once Redis is back",
        )
        assert client.get("/readyz").status_code == 200


def test_without_the_database_cached_keys_still_predict_and_the_rest_is_a_503(
    conn: psycopg.Connection[Any],
    settings: Any,
    model: Path,
    runtime_for: Callable[..., Any],
    redis_url: str,
    database_url: str,
) -> None:
    with Proxy(upstream_of(database_url)) as proxy:
        # given the API on a database behind the proxy (a call is not retried: the test is
        # about what the client sees once the retries are spent)
        rt = runtime_for(
            settings, database_url=SecretStr(through(database_url, proxy.port)), retry_attempts=0
        )
        insert(conn, demo_rows(3))
        review = {"X-API-Key": keys.create(rt.store, "outage-review", "review", None)["key"]}
        unseen = {"X-API-Key": keys.create(rt.store, "outage-unseen", "predict", None)["key"]}
        with TestClient(create_app(rt)) as client:
            assert client.get("/v1/tickets/T000001", headers=review).status_code == 200

            # when the database goes away
            proxy.cut()

            # then a key looked up in the last CAUSA_API_KEY_CACHE_S still predicts (no
            # database in that), and what needs the database is a 503, never a 500
            answer = client.post("/v1/predict", json={"text": "vpn caida"}, headers=review)
            assert answer.status_code == 200, answer.text
            one_error(client.get("/v1/tickets/T000001", headers=review), 503, "unavailable")
            one_error(
                client.post("/v1/predict", json={"text": "x"}, headers=unseen), 503, "unavailable"
            )
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["database"] != "ok", ready.text
            assert ready.json()["broker"] == "ok"

            # when it is back, so is the API
            proxy.restore()
            wait_for(
                lambda: client.get("/v1/tickets/T000001", headers=review).status_code == 200,
                timeout=BACK_WITHIN_S,
                what="the ticket read once the database is back",
            )
