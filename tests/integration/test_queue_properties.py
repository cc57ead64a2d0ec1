"""Bad input to the queue functions, tried systematically (hypothesis), on real PostgreSQL.

Whatever a caller sends (JSON of the wrong shape, wrong types, missing or unknown keys, huge
arrays, unknown statuses, numbers where strings belong, NULLs), a function either refuses it
(SQLSTATE 22023, a message that names the argument, a hint) and changes nothing, or the call
is well-formed and does what schema.sql says: a token that holds no claim is stale. A refused
call runs for real (autocommit), so "changes nothing" is what the tables show afterwards; a
well-formed call that may write runs in a transaction rolled back after the example.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import structlog
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from postgrest.exceptions import APIError
from psycopg.types.json import Jsonb

from shared.contract import Status
from shared.retry import is_transient
from shared.settings import Settings
from shared.store import Failure, FunctionStore, Refused, Result, make_store
from shared.text import clean
from tests.helpers import caller, demo_rows, insert, integer_tickets
from tests.integration.test_store_contract import FAST, SERVICE_KEY, rest_store
from tests.postgrest import PostgREST

# The state a test builds once is shared by its examples: refused calls leave it as it is,
# and calls that write are rolled back.
EXAMPLES = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
MAX_ITEMS = 10_000  # causa.max_items()
TABLES = [
    "tickets",
    *(f"causa.{t}" for t in ("work", "decisions", "outcomes", "events", "requests")),
]
INT_MIN, INT_MAX = -(2**31), 2**31 - 1  # PostgreSQL's integer
TICKETS = [f"T{i:06d}" for i in range(8)]  # the queue fixture's tickets (demo_rows(8))


def snapshot(conn: psycopg.Connection[Any]) -> dict[str, list[str]]:
    """Every row of the ticket table and causa's tables, as text."""
    return {
        t: [r[0] for r in conn.execute(f"SELECT x::text FROM {t} AS x ORDER BY 1").fetchall()]
        for t in TABLES
    }


def refused(conn: psycopg.Connection[Any], query: str, args: list[Any]) -> str:
    """The message of the refusal `query` gets (in autocommit: for real), after checking that
    it is causa's own (SQLSTATE 22023 with a hint) and that no table changed."""
    before = snapshot(conn)
    with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
        conn.execute(query, args)
    assert snapshot(conn) == before, "a refused call changed a table"
    diag = caught.value.diag
    assert diag.message_primary and diag.message_hint, str(caught.value)
    return diag.message_primary


def answer(conn: psycopg.Connection[Any], query: str, args: list[Any]) -> Any:
    """What a well-formed call returns, in a transaction rolled back afterwards."""
    with conn.transaction(force_rollback=True):
        row = conn.execute(query, args).fetchone()
    assert row is not None
    return row[0]


@dataclass(frozen=True)
class Queue:
    conn: psycopg.Connection[Any]
    held: dict[str, Any]  # a ticket claimed by "w": {number, claim_token, text, attempts}


@pytest.fixture
def queue(conn: psycopg.Connection[Any]) -> Queue:
    """Tickets in every state: pending, claimed (one held), classified, needs_review, failed,
    labelled; a reply to a repeated call and an event."""
    rows = demo_rows(len(TICKETS))
    assert [r[0] for r in rows] == TICKETS
    insert(conn, rows)
    claimed = conn.execute("SELECT causa_claim('w', 4, 600, 1)").fetchone()[0]  # type: ignore[index]
    ids = [{"number": c["number"], "claim_token": c["claim_token"]} for c in claimed]
    decided = [
        ids[0] | {"status": "classified", "predicted": "Red", "confidence": 0.7},
        ids[1] | {"status": "needs_review", "predicted": "Red", "confidence": 0.4},
    ]
    conn.execute("SELECT causa_apply(%s, 'apply', 'once')", [Jsonb(decided)])
    conn.execute("SELECT causa_fail(%s, 1)", [Jsonb([ids[2] | {"error": "boom"}])])
    conn.execute("UPDATE tickets SET causa = 'Accesos' WHERE number = %s", [TICKETS[-1]])
    conn.execute("SELECT causa_record_event('training', '{\"decision\": \"kept\"}')")
    return Queue(conn, claimed[3])


# JSON as a caller might send it. jsonb itself refuses \u0000 and lone surrogates before any
# function runs, so strings here have neither.
TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=30)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4)
)
STATUSES = ["classified", "needs_review", "failed", "labelled", "pending", "claimed", ""]


def result_like() -> st.SearchStrategy[Any]:
    """Objects near a result or a failure: each key there or not, its value right or not;
    claim tokens are fresh UUIDs (no claim's) or not UUIDs at all."""
    right = {
        "number": st.sampled_from(TICKETS),
        "claim_token": st.uuids().map(str),
        "status": st.sampled_from(STATUSES),
        "predicted": TEXT,
        "confidence": st.floats(0, 1),
        "alternatives": st.lists(st.fixed_dictionaries({"cause": TEXT, "p": st.floats(0, 1)})),
        "model_version": TEXT,
        "digest": TEXT,
        "error": TEXT,
    }
    optional = {k: v | JSON for k, v in right.items()}
    return st.fixed_dictionaries({}, optional=optional) | st.dictionaries(TEXT, JSON, max_size=3)


ARRAYS = JSON | st.lists(result_like() | JSON, max_size=5)


@EXAMPLES
@given(data=st.data())
@example(data=None)  # an array longer than causa.max_items()
def test_apply_and_fail_refuse_what_is_not_their_shape_and_count_the_rest_stale(
    queue: Queue, data: st.DataObject | None
) -> None:
    # given the queue, and an argument of any shape (but no claim's token)
    conn = queue.conn
    if data is None:
        item = {"number": TICKETS[0], "claim_token": str(uuid.uuid4()), "error": "x"}
        p: Any = [item] * (MAX_ITEMS + 1)
    else:
        p = data.draw(ARRAYS, label="p")
    for function, name in (("causa_apply", "p_results"), ("causa_fail", "p_failures")):
        before = snapshot(conn)
        # when it is passed to causa_apply or causa_fail, for real
        try:
            row = conn.execute(f"SELECT {function}(%s)", [Jsonb(p)]).fetchone()
        except psycopg.errors.InvalidParameterValue as exc:
            # then it is refused by the argument's name, with a hint, and nothing changed
            assert exc.diag.message_primary and exc.diag.message_primary.startswith(name), exc
            assert exc.diag.message_hint, exc
        else:
            # or it was well-formed, and every item is stale: no claim holds its token
            assert row is not None and isinstance(p, list)
            assert row[0]["stale"] == len(p) and not any(
                row[0][k] for k in ("applied", "retrying", "failed") if k in row[0]
            ), row
        assert snapshot(conn) == before


# A result for the held claim with one field made wrong: what each field must not be.
NOT_A_NUMBER = st.none() | st.booleans() | st.lists(TEXT, max_size=2) | st.dictionaries(TEXT, TEXT)
NOT_A_STRING = NOT_A_NUMBER.filter(lambda v: v is not None) | st.integers() | st.floats(0, 1)
WRONG = {
    "number": NOT_A_NUMBER,
    "claim_token": NOT_A_STRING
    | TEXT.filter(lambda t: len(t) != 36)
    | st.uuids().map(lambda u: "z" + str(u)[1:]),  # a UUID's length, not a UUID
    "status": NOT_A_STRING | TEXT.filter(lambda t: t not in ("classified", "needs_review")),
    "predicted": NOT_A_STRING,
    "confidence": st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not 0 <= f <= 1)
    | TEXT
    | st.booleans()
    | st.lists(st.floats(0, 1), max_size=2),
    "alternatives": TEXT | st.integers() | st.booleans() | st.dictionaries(TEXT, TEXT),
    "model_version": NOT_A_STRING,
    "digest": NOT_A_STRING,
    "error": NOT_A_STRING,
}
MISSING = object()


@EXAMPLES
@given(
    field=st.sampled_from([*WRONG, "missing number", "missing claim_token", "unknown key"]),
    data=st.data(),
)
@example(field="status", data=None)  # a failure's status, given to causa_apply
def test_a_result_for_a_held_claim_with_one_wrong_field_is_refused_and_the_claim_stays(
    queue: Queue, field: str, data: st.DataObject | None
) -> None:
    # given the result a worker would write for its claim, with one field wrong
    conn, held = queue.conn, queue.held
    good = {
        "number": held["number"],
        "claim_token": held["claim_token"],
        "status": "classified",
        "predicted": "Red",
        "confidence": 0.8,
        "alternatives": [{"cause": "Software", "p": 0.1}],
        "model_version": "v1",
        "digest": "0" * 64,
        "error": None,
    }
    value: Any
    if data is None:
        key, value = "status", "failed"
    elif field.startswith("missing "):
        key, value = field.removeprefix("missing "), MISSING
    elif field == "unknown key":  # a misspelt key, or one that must not pass (source: human)
        key = data.draw(TEXT.filter(lambda k: k not in good) | st.just("source"), label="key")
        value = data.draw(JSON | st.just("human"), label="value")
    else:
        key, value = field, data.draw(WRONG[field], label="value")
    wrong = {k: v for k, v in ({**good, key: value}).items() if v is not MISSING}
    # when it is written, then it is refused by the field's path and nothing changed (the
    # claim is still held: causa.work is in the snapshot)
    message = refused(conn, "SELECT causa_apply(%s)", [Jsonb([wrong])])
    if field == "unknown key":
        assert message.startswith("p_results[0] has keys causa does not know"), message
    else:
        assert message.startswith(f"p_results[0].{key} is "), message
    # and a failure for the claim, with the same field wrong where a failure has it
    if key in ("number", "claim_token", "error") or field == "unknown key":
        failure = {k: v for k, v in wrong.items() if k in ("number", "claim_token", "error", key)}
        message = refused(conn, "SELECT causa_fail(%s)", [Jsonb([failure])])
        path = "p_failures[0] has keys" if field == "unknown key" else f"p_failures[0].{key} is "
        assert message.startswith(path), message


@EXAMPLES
@given(
    predicted=TEXT.filter(bool),
    confidence=st.floats(0, 1),
    version=TEXT,
    error=st.none() | st.text(max_size=3000).map(lambda t: t.replace("\x00", "")),
    mode=st.sampled_from(["apply", "suggest"]),
)
def test_a_well_formed_result_of_any_text_is_written_as_given(
    queue: Queue, predicted: str, confidence: float, version: str, error: str | None, mode: str
) -> None:
    # given a result for the held claim with any text in its string fields
    held = queue.held
    result = {"number": held["number"], "claim_token": held["claim_token"], "status": "classified"}
    result |= {"predicted": predicted, "confidence": confidence, "model_version": version}
    result |= {"error": error}
    conn = queue.conn
    with conn.transaction(force_rollback=True):
        # when it is written; then it is applied, and the decision holds what was given
        reply = conn.execute("SELECT causa_apply(%s, %s)", [Jsonb([result]), mode]).fetchone()
        assert reply == ({"applied": 1, "stale": 0},)
        got = conn.execute(
            "SELECT o.predicted, o.confidence, o.model_version, o.error, t.causa"
            " FROM causa.outcomes AS o JOIN tickets AS t USING (number) WHERE number = %s",
            [held["number"]],
        ).fetchone()
        assert got is not None
        assert got[0] == predicted and got[2] == version
        assert got[1] == pytest.approx(confidence, rel=1e-6, abs=1e-6)  # kept to 6 decimals
        assert got[3] == (error[:2000] if error is not None else None)
        assert got[4] == (predicted if mode == "apply" else None)


# Arguments drawn right or wrong, as (value, wrong): a call with a wrong one must be refused
# by that argument's name; a call with none wrong must be answered.
def right(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, bool]]:
    return strategy.map(lambda v: (v, False))


def wrong(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, bool]]:
    return strategy.map(lambda v: (v, True))


def between(low: int, high: int = INT_MAX) -> st.SearchStrategy[tuple[Any, bool]]:
    """An integer argument that must be from `low` to `high` (NULL is wrong)."""
    too_high = st.integers(high + 1, INT_MAX) if high < INT_MAX else st.nothing()
    return right(st.integers(low, high)) | wrong(
        st.none() | st.integers(INT_MIN, low - 1) | too_high
    )


class JsonNull:
    """JSON's null as a jsonb argument (None is SQL NULL)."""


def json_arg(value: Any) -> Any:
    return None if value is None else Jsonb(None if isinstance(value, JsonNull) else value)


NUMBER = st.sampled_from(TICKETS) | TEXT | st.integers()
NUMBERS = (  # optional: absent (SQL NULL or JSON null), or a JSON array of ticket numbers
    right(st.none() | st.just(JsonNull()) | st.lists(NUMBER, max_size=5))
    | wrong(JSON.filter(lambda v: v is not None and not isinstance(v, list)))
    | wrong(
        st.tuples(st.lists(NUMBER, max_size=3), st.lists(NOT_A_NUMBER, min_size=1, max_size=2)).map(
            lambda parts: parts[0] + parts[1]
        )
    )
)
ANY_TEXT = right(st.none() | TEXT)
ANY_TIME = right(st.sampled_from([None, "-infinity", "infinity", "2020-01-01T00:00:00Z", "now"]))
KIND = st.from_regex(r"[a-z][a-z0-9_]{0,62}", fullmatch=True)
REQUEUED = st.sampled_from(["classified", "needs_review", "failed"])


@dataclass(frozen=True)
class Call:
    """An entry point and its arguments, in order: name, SQL type, what may be drawn."""

    function: str
    args: list[tuple[str, str, st.SearchStrategy[tuple[Any, bool]]]]


CALLS = [
    Call(
        "causa_claim",
        [
            ("p_worker", "text", right(TEXT.filter(bool)) | wrong(st.sampled_from(["", None]))),
            ("p_batch", "integer", between(1, MAX_ITEMS)),
            ("p_lease_seconds", "integer", between(0, 10**6)),
            ("p_max_attempts", "integer", between(1)),
            ("p_numbers", "jsonb", NUMBERS),
            ("p_since", "timestamptz", ANY_TIME),
            ("p_request_id", "text", ANY_TEXT),
            ("p_max_chars", "integer", between(1)),
        ],
    ),
    Call(
        "causa_apply",
        [
            ("p_results", "jsonb", right(st.just([]))),
            (
                "p_mode",
                "text",
                right(st.sampled_from(["apply", "suggest"]))
                | wrong(st.none() | TEXT.filter(lambda t: t not in ("apply", "suggest"))),
            ),
        ],
    ),
    Call(
        "causa_fail",
        [("p_failures", "jsonb", right(st.just([]))), ("p_max_attempts", "integer", between(1))],
    ),
    Call(
        "causa_requeue",
        [
            (
                "p_statuses",
                "jsonb",
                right(st.lists(REQUEUED))
                | wrong(st.just(JsonNull()) | JSON.filter(lambda v: not isinstance(v, list)))
                | wrong(st.lists(st.sampled_from(STATUSES[3:]) | NOT_A_STRING, min_size=1)),
            ),
            ("p_numbers", "jsonb", NUMBERS),
            ("p_model_version", "text", ANY_TEXT),
        ],
    ),
    Call(
        "causa_backfill",
        [
            ("p_apply", "boolean", right(st.none() | st.booleans())),
            ("p_since", "timestamptz", ANY_TIME),
            (
                "p_limit",
                "integer",
                right(st.none()) | between(0).filter(lambda a: a[0] is not None),
            ),
            ("p_classify_since", "timestamptz", ANY_TIME),
        ],
    ),
    Call("causa_labelled", [("p_after", "text", ANY_TEXT), ("p_limit", "integer", between(0))]),
    Call(
        "causa_pending_count",
        [("p_since", "timestamptz", ANY_TIME), ("p_cap", "integer", between(1))],
    ),
    Call("causa_status_counts", [("p_cap", "integer", between(1))]),
    Call(
        "causa_activity",
        [
            ("p_window", "integer", between(0)),
            ("p_failed_since", "timestamptz", ANY_TIME),
            ("p_cap", "integer", between(1)),
        ],
    ),
    Call(
        "causa_recent", [("p_since", "timestamptz", ANY_TIME), ("p_limit", "integer", between(0))]
    ),
    Call(
        "causa_record_event",
        [
            (
                "p_kind",
                "text",
                right(KIND) | wrong(st.sampled_from([None, "", "Training", "a" * 64, "x;drop"])),
            ),
            (
                "p_payload",
                "jsonb",
                right(st.dictionaries(TEXT, JSON, max_size=3))
                | wrong(JSON.filter(lambda v: not isinstance(v, dict))),
            ),
        ],
    ),
    Call(
        "causa_retain",
        [
            ("p_decision_days", "integer", between(1, 36_500)),
            ("p_event_days", "integer", between(1, 36_500)),
            ("p_batch", "integer", between(1)),
        ],
    ),
]


@pytest.mark.parametrize("call", CALLS, ids=[c.function for c in CALLS])
@EXAMPLES
@given(data=st.data())
def test_an_entry_point_refuses_a_wrong_argument_by_name_and_answers_right_ones(
    queue: Queue, call: Call, data: st.DataObject
) -> None:
    # given arguments for an entry point, each right or wrong
    drawn = {name: data.draw(strategy, label=name) for name, _, strategy in call.args}
    values = [
        json_arg(v) if kind == "jsonb" else v
        for (_, kind, _), (v, _) in zip(call.args, drawn.values(), strict=True)
    ]
    query = "SELECT {}({})".format(
        call.function, ", ".join(f"{name} => %s::{kind}" for name, kind, _ in call.args)
    )
    wrong_names = [name for name, (_, bad) in drawn.items() if bad]
    if wrong_names:
        # when one is wrong: refused by the name of a wrong one, and nothing changed
        message = refused(queue.conn, query, values)
        assert message.startswith(tuple(wrong_names)), (message, wrong_names)
    else:
        # when all are right: answered (a claim: only among the numbers given, texts cut)
        reply = answer(queue.conn, query, values)
        if call.function == "causa_claim":
            args = {name: value for name, (value, _) in drawn.items()}
            assert len(reply) <= args["p_batch"]
            if isinstance(args["p_numbers"], list):
                assert {r["number"] for r in reply} <= {str(n) for n in args["p_numbers"]}
            assert all(len(r["text"]) <= args["p_max_chars"] for r in reply)


@pytest.fixture
def integer_numbers(database_url: str, settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    """causa on a table whose ticket numbers are integers, with tickets 1 to 5."""
    with integer_tickets(database_url, settings, 5) as (c, _):
        yield c


@EXAMPLES
@given(
    numbers=st.lists(
        st.integers(1, 5)
        | st.text(min_size=1, max_size=10).map(lambda t: "INC" + t.replace("\x00", "")),
        max_size=4,
    )
)
def test_a_number_the_number_column_cannot_hold_is_refused_with_its_type(
    integer_numbers: psycopg.Connection[Any], numbers: list[int | str]
) -> None:
    # given ticket numbers for an integer number column, some of them not integers
    conn = integer_numbers
    query = "SELECT causa_claim('w', 10, 60, 3, %s)"
    if all(isinstance(n, int) for n in numbers):
        # then integers are claimed
        assert {r["number"] for r in answer(conn, query, [Jsonb(numbers)])} == {
            str(n) for n in numbers
        }
    else:
        # and anything else is refused: the hint says which type the column has
        message = refused(conn, query, [Jsonb(numbers)])
        assert message.startswith("p_numbers holds a ticket number the ticket table cannot")
        assert "invalid input syntax for type integer" in message


@pytest.mark.parametrize("adapter", ["postgres", "supabase"])
def test_the_store_passes_a_refusal_on_at_once_as_a_permanent_error(
    queue: Queue, settings: Settings, database_url: str, adapter: str
) -> None:
    # given a result whose claim token is not one (a bug in the caller, or a hostile one)
    held = queue.held
    result = Result(held["number"], "not-a-token", Status.CLASSIFIED, "Red", 0.9, "v1")
    before = snapshot(queue.conn)
    with PostgREST(database_url, SERVICE_KEY) as server:
        store = (
            make_store(settings.model_copy(update=FAST))
            if adapter == "postgres"
            else rest_store(settings, server)
        )
        # when the store writes it
        with (
            structlog.testing.capture_logs() as logs,
            pytest.raises(Refused) as caught,
        ):
            store.apply(caller(), [result])
        store.close()
    # then the database's refusal arrives once, unretried (the same call would fail again),
    # naming what was wrong; and nothing changed
    error = caught.value
    assert not is_transient(error) and isinstance(error.__cause__, (psycopg.Error, APIError))
    assert 'p_results[0].claim_token is "not-a-token"' in str(error)
    assert not [e for e in logs if e["event"] == "retrying"]
    assert snapshot(queue.conn) == before


@pytest.fixture
def store(queue: Queue, settings: Settings) -> Iterator[FunctionStore]:
    s = make_store(settings.model_copy(update=FAST))
    yield s
    s.close()


@EXAMPLES
@given(
    error=st.text(
        st.characters(exclude_categories=[]) | st.sampled_from("\x00\ud800"), max_size=2500
    )
)
def test_any_failure_reason_reaches_the_queue_cleaned(
    queue: Queue, store: FunctionStore, error: str
) -> None:
    # given a claimed ticket, a new one for each example
    number = f"F{uuid.uuid4().hex[:8]}"
    queue.conn.execute("INSERT INTO tickets (number, short_description) VALUES (%s, 'x')", [number])
    [claimed] = store.claim(caller("w"), 1, [number])
    # when the worker gives it back with any reason, as an exception's message may read
    # (jsonb holds no NUL and no lone surrogate: the call would be refused whole)
    failure = Failure(number, claimed.claim_token, error)
    assert store.fail(caller(), [failure]) == {"retrying": 1, "failed": 0, "stale": 0}
    # then the reason is kept, cleaned and cut
    row = queue.conn.execute("SELECT last_error FROM causa.work WHERE number = %s", [number])
    assert row.fetchone() == (clean(error)[:2000],)
