"""schemathesis against the app's own OpenAPI schema, in process: every operation, with an
admin key, on a throwaway database and no worker. No answer may be a 5xx or break the schema
(an undeclared status, a body that is not the declared model, a wrong content type)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import psycopg
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.case import Case
from schemathesis.python import asgi

from api.app import NOT_BLANK, _text, create_app
from flows import keys
from shared.settings import load_settings
from tests.helpers import demo_rows, insert

# Enough to reach every declared status of each operation and still finish in about a minute.
EXAMPLES_PER_OPERATION = 20
UNLIMITED = "1000000/minute"  # rate limits are tested elsewhere: none may answer here

# The schema the app serves, read at collection (one test per operation); the app itself is
# built per test on that test's runtime, and must serve this same schema.
# (schemathesis.pytest.from_fixture would read it from that app, but fails on pytest 9.)
SERVED = create_app(settings=load_settings()).openapi()
# A body over CAUSA_API_MAX_BODY_BYTES is refused with 413 whatever the schema says of it (a
# limit in bytes, which JSON Schema cannot state): a refusal, but not on schemathesis' lists.
REFUSED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "413", "429"]
CHECKS = {
    "negative_data_rejection": {"expected-statuses": [*REFUSED, "5xx"]},
    "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "5xx"]},
}
schema = schemathesis.openapi.from_dict(
    SERVED, config=SchemathesisConfig.from_dict({"checks": CHECKS})
)


@pytest.fixture
def api_runtime(conn: psycopg.Connection[Any], runtime_for: Any, settings: Any, model: Path) -> Any:
    """A fresh table with some tickets, a model; probes not limited per address."""
    insert(conn, demo_rows(20))
    return runtime_for(settings, api_public_rate_limit=UNLIMITED)


@pytest.fixture
def app(api_runtime: Any) -> Iterator[FastAPI]:
    app = create_app(api_runtime)
    assert app.openapi() == SERVED
    yield app
    asgi.shutdown_lifespans()  # schemathesis keeps every app it called started


@pytest.fixture
def admin(api_runtime: Any) -> dict[str, str]:
    made = keys.create(api_runtime.store, "schema-admin", "admin", UNLIMITED)
    return {"X-API-Key": made["key"]}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    # one app and database per operation, shared by its examples: on purpose (what an
    # example writes is fair game for the next one)
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_no_answer_is_a_5xx_or_outside_the_schema(
    case: Case[Any], app: FastAPI, admin: dict[str, str]
) -> None:
    if case.method == "GET" and case.path == "/v1/tickets" and "cursor" in (case.query or {}):
        # a cursor is opaque: one made up fits the schema (a string) but names no place in a
        # page, so it is refused, and that is right
        answer = case.call(app=app, headers=admin)
        case.validate_response(
            answer, excluded_checks=[schemathesis.checks.positive_data_acceptance]
        )
        assert answer.status_code == 422, answer.text
        return
    case.call_and_validate(app=app, headers=admin)


def test_the_schema_says_what_a_text_may_be_as_the_api_checks_it() -> None:
    # schemathesis reads patterns with jsonschema_rs, whose \s is not Python's: the pattern
    # spells out what str.strip() removes, so both read it as `_text` checks a text
    validator = jsonschema_rs.validator_for({"type": "string", "pattern": NOT_BLANK})
    last_blank = 0x3000  # U+3000, the ideographic space: no character above it is blank
    for c in map(chr, range(last_blank + 2)):
        for text in (c, f" {c}\n", c * 3):
            assert validator.is_valid(text) == _accepts(text), repr(text)


def _accepts(text: str) -> bool:
    try:
        _text(text, 100)
    except ValueError:
        return False
    return True
