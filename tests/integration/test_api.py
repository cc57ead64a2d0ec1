"""The HTTP API in process (FastAPI's TestClient) on the real store, Redis and model: auth on
every route, bad input, labels, pages, admin tasks, hot swap."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.app import create_app
from api.guard import scope_of
from flows import keys
from shared.text import normalize
from tests.helpers import KEY, demo_rows, insert, wait_for
from training import registry

SCOPES = ("predict", "review", "admin")


@pytest.fixture
def client(rt: Any, model: Path) -> Iterator[TestClient]:
    with TestClient(create_app(rt), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def key_for(rt: Any) -> Callable[..., str]:
    """A new key of a scope (and rate limit): its secret."""
    made = iter(range(1000))

    def make(scope: str, rate_limit: str | None = None) -> str:
        return str(keys.create(rt.store, f"{scope}-{next(made)}", scope, rate_limit)["key"])

    return make


def headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def v1_routes() -> list[APIRoute]:
    from api.app import v1

    return [r for r in v1.routes if isinstance(r, APIRoute)]


def required_scope(route: APIRoute) -> str | None:
    scopes = [scope_of(d.call) for d in route.dependant.dependencies]
    return next((s for s in scopes if s), None)


def example_path(route: APIRoute) -> str:
    return route.path.replace("{number}", "T000001").replace("{task_id}", "nope")


def method_of(route: APIRoute) -> str:
    return sorted(route.methods or ["GET"])[0]


@pytest.mark.parametrize("route", v1_routes(), ids=lambda r: f"{method_of(r)} {r.path}")
def test_every_route_refuses_no_key_a_wrong_key_a_revoked_key_and_a_lesser_scope(
    route: APIRoute, client: TestClient, rt: Any, key_for: Callable[..., str]
) -> None:
    # every /v1 route names the scope it needs: a new route cannot skip the check
    scope = required_scope(route)
    assert scope in SCOPES, f"{route.path} has no key check"
    method, path = method_of(route), example_path(route)
    assert client.request(method, path).status_code == 401
    assert client.request(method, path, headers=headers("causa_" + "x" * 43)).status_code == 401
    assert client.request(method, path, headers={"Authorization": "Bearer nope"}).status_code == 401
    revoked = key_for("admin")
    assert rt.store.revoke_api_key(rt.store.api_keys()[-1]["name"])
    answer = client.request(method, path, headers=headers(revoked))
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthenticated"
    for lesser in SCOPES[: SCOPES.index(scope)]:
        answer = client.request(method, path, headers=headers(key_for(lesser)))
        assert answer.status_code == 403, (lesser, answer.text)
        assert answer.json()["error"]["code"] == "forbidden"
    # and the scope itself passes the check (whatever the route then says of the request)
    answer = client.request(method, path, headers=headers(key_for(scope)))
    assert answer.status_code not in (401, 403), answer.text


def test_predict_answers_per_text_and_writes_nothing(
    client: TestClient, key_for: Callable[..., str], conn: psycopg.Connection[Any]
) -> None:
    key = key_for("predict")
    body = {"text": "no puedo imprimir", "explain": True}
    one = client.post("/v1/predict", json=body, headers=headers(key))
    assert one.status_code == 200, one.text
    (p,) = one.json()["predictions"]
    assert p["verdict"] in ("classified", "needs_review") and 0 <= p["confidence"] <= 1
    assert abs(sum(p["probabilities"].values()) - 1) < 1e-3 and len(p["alternatives"]) == 3
    # the bootstrap model explains itself: terms of the text that raised the cause
    assert p["explanation"] and all(t["weight"] > 0 for t in p["explanation"])
    assert {t["term"] for t in p["explanation"]} <= {
        "no",
        "puedo",
        "imprimir",
        "no puedo",
        "puedo imprimir",
    }
    many = client.post(
        "/v1/predict", json={"texts": ["vpn caida", "olvide mi clave"]}, headers=headers(key)
    )
    assert len(many.json()["predictions"]) == 2
    assert many.json()["predictions"][0]["explanation"] is None  # not asked for
    assert conn.execute("SELECT count(*) FROM causa.decisions").fetchone() == (0,)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "   \n"}, "text"),
        ({"text": "a\x00b"}, "text"),
        ({"text": "x" * 1_000_000}, "text"),
        ({"texts": ["ok", 3]}, "texts.1"),
        ({"texts": []}, "texts"),
        ({"text": "a", "texts": ["b"]}, "body"),
        ({"texts": ["ok"] * 1001}, "texts"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    client: TestClient, key_for: Callable[..., str], body: dict[str, Any], field: str
) -> None:
    answer = client.post("/v1/predict", json=body, headers=headers(key_for("predict")))
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid" and error["field"] == field, error


def test_a_body_too_large_is_413_and_broken_json_422(
    client: TestClient, key_for: Callable[..., str]
) -> None:
    key = headers(key_for("predict"))
    huge = b'{"text": "' + b"x" * 6_000_000 + b'"}'
    answer = client.post("/v1/predict", content=huge, headers=key)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_large"
    # streamed without a length (chunked): counted as it comes, refused the same way...
    chunks = [b'{"text": "', *[b"x" * 1_000_000] * 6, b'"}']
    answer = client.post("/v1/predict", content=iter(chunks), headers=key)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_large"
    # ...and a streamed body within the limit reaches the route whole
    small = [b'{"text": "no puedo ', b'imprimir"}']
    json_type = {**key, "Content-Type": "application/json"}
    answer = client.post("/v1/predict", content=iter(small), headers=json_type)
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 1
    broken = client.post("/v1/predict", content=b'{"text": "\xff\xfe"', headers=key)
    assert broken.status_code == 422 and broken.json()["error"]["code"] == "invalid"


def test_a_label_through_the_api_is_a_human_label_never_overwritten(
    client: TestClient, key_for: Callable[..., str], conn: psycopg.Connection[Any]
) -> None:
    insert(conn, demo_rows(3))
    review = headers(key_for("review"))
    # a person labels T000000; T000001 is classified by causa, then confirmed by a person
    done = client.post("/v1/tickets/T000000/label", json={"cause": "Red"}, headers=review)
    assert done.json() == {"number": "T000000", "cause": "Red", "changed": True}
    classified = client.post(
        "/v1/tickets/classify", json={"numbers": ["T000000", "T000001"]}, headers=review
    )
    assert classified.json()["claimed"] == 1, "the labelled ticket is no longer work"
    ticket = client.get("/v1/tickets/T000001", headers=review).json()
    # the decision keeps why: terms of the ticket's text that raised the predicted cause
    explained = ticket["explanation"]
    assert explained and all(t["weight"] > 0 for t in explained), ticket
    words = set(re.findall(r"\w+", normalize(ticket["text"])))
    assert all(set(re.findall(r"\w+", t["term"])) <= words for t in explained), explained
    stored = conn.execute(
        "SELECT explanation FROM causa.decisions WHERE number = 'T000001'"
    ).fetchone()
    assert stored == (explained,)
    confirm = client.post(
        "/v1/tickets/T000001/label", json={"cause": ticket["predicted"]}, headers=review
    )
    assert confirm.json()["changed"] is False
    rows = conn.execute(
        "SELECT number, status, source, worker FROM causa.decisions ORDER BY id"
    ).fetchall()
    name = rows[0][3]
    assert rows[0][:3] == ("T000000", "labelled", "human") and name.startswith("api:review-")
    assert [r[:3] for r in rows[1:]] == [
        ("T000001", rows[1][1], "model"),
        ("T000001", "labelled", "human"),
    ]
    assert conn.execute("SELECT causa FROM tickets WHERE number = 'T000000'").fetchone() == ("Red",)
    assert (
        client.post("/v1/tickets/NOPE/label", json={"cause": "Red"}, headers=review).status_code
        == 404
    )


def test_tickets_are_paged_by_cursor_oldest_first(
    client: TestClient, key_for: Callable[..., str], conn: psycopg.Connection[Any]
) -> None:
    insert(conn, demo_rows(7))
    review = headers(key_for("review"))
    seen: list[str] = []
    cursor = None
    while True:
        params = {"status": "pending", "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/tickets", params=params, headers=review).json()
        seen += [t["number"] for t in page["items"]]
        assert all(t["text"] for t in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"T{i:06d}" for i in range(7)]
    bad = client.get("/v1/tickets", params={"cursor": "nonsense"}, headers=review)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"


def test_an_admin_task_is_queued_and_followed_by_its_id(
    client: TestClient, key_for: Callable[..., str], redis_url: str
) -> None:
    admin = headers(key_for("admin"))
    queued = client.post("/v1/admin/drift", headers=admin)
    assert queued.status_code == 202, queued.text
    task = client.get(f"/v1/tasks/{queued.json()['task_id']}", headers=admin).json()
    assert task["state"] == "queued" and task["requested_by"].startswith("api:admin-")
    assert client.get("/v1/tasks/unknown", headers=admin).status_code == 404
    bad = client.post("/v1/admin/rollback", json={"version": "../etc"}, headers=admin)
    assert bad.status_code == 422


def test_a_promoted_model_is_served_without_a_restart(
    client: TestClient, key_for: Callable[..., str], model: Path
) -> None:
    key = headers(key_for("predict"))

    def predicted_by() -> str:
        answer = client.post("/v1/predict", json={"text": "vpn"}, headers=key)
        return str(answer.json()["model_version"])

    before = predicted_by()
    current = registry.load_current(model, KEY)
    new = registry.promote(model, current.pipeline, key=KEY, classes=current.classes, n_train=9)
    assert new.version != before
    assert client.get("/v1/model", headers=key).json()["version"] == new.version
    # predictions look for a new model at most once a second
    wait_for(lambda: predicted_by() == new.version, timeout=5, what="the new model predicting")


def test_probes_need_no_key_and_metrics_count_requests(
    client: TestClient, key_for: Callable[..., str]
) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    client.post("/v1/predict", json={"text": "vpn"}, headers=headers(key_for("predict")))
    text = client.get("/metrics").text
    assert 'causa_api_requests_total{method="POST",route="/v1/predict",status="200"}' in text
    assert "causa_model_info{version=" in text and 'causa_queue_depth{state="pending"}' in text
    assert "causa_api_predictions_total{" in text


def test_the_api_works_the_same_through_the_supabase_rest_adapter(
    settings: Any,
    model: Path,
    conn: psycopg.Connection[Any],
    database_url: str,
    runtime_for: Callable[..., Any],
) -> None:
    # the real supabase client against the PostgREST stand-in (the hosted one cannot run here)
    from pydantic import SecretStr

    from tests.integration.test_store_contract import SERVICE_KEY
    from tests.postgrest import PostgREST

    with PostgREST(database_url, SERVICE_KEY) as server:
        rest = runtime_for(
            settings,
            database_url=None,
            supabase_url=server.url,
            supabase_key=SecretStr(SERVICE_KEY),
        )
        insert(conn, demo_rows(2))
        key = keys.create(rest.store, "via-rest", "review", None)["key"]
        with TestClient(create_app(rest), raise_server_exceptions=False) as c:
            page = c.get("/v1/tickets", params={"status": "pending"}, headers=headers(key))
            assert [t["number"] for t in page.json()["items"]] == ["T000000", "T000001"]
            label = c.post("/v1/tickets/T000000/label", json={"cause": "Red"}, headers=headers(key))
            assert label.json()["changed"] is True
            predicted = c.post("/v1/predict", json={"text": "vpn"}, headers=headers(key))
            assert predicted.status_code == 200
        assert {"causa_tickets", "causa_label", "causa_api_key_find"} <= set(server.calls)
