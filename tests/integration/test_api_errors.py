"""Whatever a client sends, the answer is the API's one error shape with a status that says
whose fault it is: never a 500, never a stack trace (the app raises its server errors here,
so a 500 fails the test)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from flows import keys
from tests.helpers import integer_tickets

JSON = {"Content-Type": "application/json"}


def cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def one_error(answer: Any, status: int, code: str, field: str | None = None) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json() == {
        "error": {
            "status": status,
            "code": code,
            "message": answer.json()["error"]["message"],
            "field": field,
        }
    }, answer.text
    assert answer.json()["error"]["message"] and "Traceback" not in answer.text


@pytest.fixture
def client(rt: Any, model: Path) -> Iterator[TestClient]:
    with TestClient(create_app(rt)) as c:
        yield c


@pytest.fixture
def admin(rt: Any) -> dict[str, str]:
    return {"X-API-Key": keys.create(rt.store, "errors-admin", "admin", None)["key"]}


# method, path, what else the request carries, then the answer: status, code, field
BAD = [
    ("GET", "/nope", {}, 404, "not_found", None),
    ("POST", "/v1/predict", {"content": b"[]"}, 422, "invalid", "body"),
    ("POST", "/v1/predict", {"content": b'"vpn"'}, 422, "invalid", "body"),
    ("POST", "/v1/predict", {"content": b'{"text": "vpn"'}, 422, "invalid", "body"),
    ("POST", "/v1/predict", {"content": b'{"text": "vpn \xff"}'}, 422, "invalid", "body"),
    ("POST", "/v1/predict", {"json": {"text": None}}, 422, "invalid", "body"),
    ("GET", "/v1/tickets/T%00", {}, 422, "invalid", "path.number"),
    ("POST", "/v1/tickets/T%00/label", {"json": {"cause": "Red"}}, 422, "invalid", "path.number"),
    ("GET", "/v1/tasks/a%00b", {}, 422, "invalid", "path.task_id"),
    (
        "GET",
        "/v1/tickets?cursor=" + cursor({"at": "x", "number": "T1"}),
        {},
        422,
        "invalid",
        "cursor",
    ),
    (
        "GET",
        "/v1/tickets?cursor=" + cursor({"at": 1, "number": ["T1"]}),
        {},
        422,
        "invalid",
        "cursor",
    ),
    ("GET", "/v1/tickets?cursor=" + cursor(["at", "number"]), {}, 422, "invalid", "cursor"),
    ("POST", "/v1/tickets/classify", {"json": {"numbers": ["T\x00"]}}, 422, "invalid", "numbers.0"),
    (
        "POST",
        "/v1/admin/requeue-failed",
        {"json": {"numbers": ["T\x00"]}},
        422,
        "invalid",
        "numbers.0",
    ),
    ("POST", "/v1/admin/reclassify", {"json": {}}, 422, "invalid", "numbers"),
    ("GET", "/v1/tickets/NOPE", {}, 404, "not_found", None),
]


@pytest.mark.parametrize(
    ("method", "path", "extra", "status", "code", "field"),
    BAD,
    ids=[f"{m} {p[:40]} {e}"[:80] for m, p, e, *_ in BAD],
)
def test_what_a_client_gets_wrong_is_a_4xx_in_the_one_shape(
    client: TestClient,
    admin: dict[str, str],
    method: str,
    path: str,
    extra: dict[str, Any],
    status: int,
    code: str,
    field: str | None,
) -> None:
    answer = client.request(method, path, headers={**admin, **JSON}, **extra)
    one_error(answer, status, code, field)


def test_a_wrong_method_says_which_are_allowed_and_a_get_ignores_a_body(
    client: TestClient, admin: dict[str, str]
) -> None:
    wrong = client.delete("/v1/predict", headers=admin)
    one_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["Allow"] == "POST"
    model = client.request("GET", "/v1/model", headers={**admin, **JSON}, content=b'{"x": 1}')
    assert model.status_code == 200 and model.json()["classes"], model.text


@pytest.mark.parametrize(
    "given",
    ["causa_\x00" + "x" * 42, "causa_" + "é" * 43, "causa_" + "x" * 43 + "\n", "x" * 10_000],
)
def test_a_malformed_key_is_a_401_without_asking_the_database(
    client: TestClient, given: str
) -> None:
    answer = client.get("/v1/model", headers={b"X-API-Key": given.encode()})
    one_error(answer, 401, "unauthenticated")


@pytest.fixture
def integer_numbers(
    database_url: str, settings: Any, model: Path, runtime_for: Callable[..., Any]
) -> Iterator[Any]:
    """The runtime of causa on a table whose ticket numbers are integers (ticket 1)."""
    with integer_tickets(database_url, settings, 1) as (_, custom):
        yield runtime_for(custom)


def test_a_number_the_ticket_table_cannot_hold_is_a_422_from_the_database(
    integer_numbers: Any,
) -> None:
    # given causa on a table whose ticket numbers are integers
    rt = integer_numbers
    review = {"X-API-Key": keys.create(rt.store, "errors-review", "review", None)["key"]}
    with TestClient(create_app(rt)) as client:
        assert client.get("/v1/tickets/1", headers=review).json()["number"] == "1"
        # when a client names a ticket that cannot exist there, the database refuses the value
        for answer in (
            client.get("/v1/tickets/INC1", headers=review),
            client.post("/v1/tickets/INC1/label", json={"cause": "Red"}, headers=review),
            client.post("/v1/tickets/classify", json={"numbers": ["INC1"]}, headers=review),
        ):
            # then it is the client's error, 422, and says why
            one_error(answer, 422, "invalid")
            assert "integer" in answer.json()["error"]["message"], answer.text
