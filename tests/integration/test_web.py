"""The review desk's pages in process (FastAPI's TestClient) on the real store, Redis and model:
sign-in and sessions, CSRF, the review queue's labels, hostile text, the dashboard's charts
from real decisions, admin actions behind a confirmation. The browser itself is driven in
tests/browser."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.web import text
from flows import keys
from flows.classify import classify_batch
from tests.helpers import demo_rows, insert

HOSTILE = (
    '<script>alert(1)</script> <img src=x onerror="alert(2)">'
    ' <a href="javascript:alert(3)">x</a> \u202egnp.exe\u200b impresora'
)


@pytest.fixture
def desk(
    conn: psycopg.Connection[Any], settings: Any, runtime_for: Callable[..., Any], model: Path
) -> Iterator[tuple[TestClient, Any]]:
    """The app on a runtime whose threshold sends every decision to review, 6 tickets decided
    (one of them hostile)."""
    rt = runtime_for(settings, confidence_threshold=0.999)
    insert(conn, [*demo_rows(5), ("T999999", "impresora", HOSTILE)])
    classify_batch(rt.store, rt.models, rt.settings, worker="test", limit=10)
    with TestClient(create_app(rt), raise_server_exceptions=False) as client:
        yield client, rt


def key(rt: Any, scope: str) -> str:
    return str(keys.create(rt.store, f"{scope}-desk", scope, None)["key"])


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:2000]
    return found.group(1)


def sign_in(client: TestClient, secret: str) -> str:
    """Sign in; the CSRF token of the session's forms."""
    page = client.get("/login")
    answer = client.post(
        "/login", data={"key": secret, "csrf_token": csrf(page.text)}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    return csrf(client.get("/review").text)


def test_pages_need_a_session_and_a_review_key(desk: tuple[TestClient, Any]) -> None:
    client, rt = desk
    for path in ("/review", "/review/list", "/failed", "/dashboard", "/models"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    token = csrf(client.get("/login").text)
    wrong = client.post("/login", data={"key": "causa_" + "x" * 43, "csrf_token": token})
    assert wrong.status_code == 401 and "Unknown or revoked key" in wrong.text
    predict = client.post("/login", data={"key": key(rt, "predict"), "csrf_token": token})
    assert predict.status_code == 403 and "predict scope" in predict.text
    no_token = client.post("/login", data={"key": key(rt, "review")})
    assert no_token.status_code == 403 and "CSRF" in no_token.text
    page = client.get("/login")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]


def test_a_label_from_the_queue_is_a_human_label_and_needs_the_csrf_token(
    desk: tuple[TestClient, Any], conn: psycopg.Connection[Any]
) -> None:
    client, rt = desk
    token = sign_in(client, key(rt, "review"))
    page = client.get("/review").text
    number = re.search(r'id="ticket"[^>]*data-number="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    causes = re.findall(r'class="suggestion"[^>]*value="([^"]+)"', page)
    assert len(causes) == 3, page
    refused = client.post(f"/review/{number}/label", data={"cause": causes[1]})
    assert refused.status_code == 403 and "CSRF" in refused.text
    forged = client.post(f"/review/{number}/label", data={"cause": causes[1], "csrf_token": "x"})
    assert forged.status_code == 403
    assert conn.execute(
        "SELECT count(*) FROM causa.decisions WHERE source = 'human'"
    ).fetchone() == (0,)
    done = client.post(
        f"/review/{number}/label",
        data={"cause": causes[1], "csrf_token": token},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert conn.execute(
        "SELECT status, source, worker FROM causa.decisions WHERE number = %s AND source = 'human'",
        [number],
    ).fetchone() == ("labelled", "human", "web:review-desk")
    assert conn.execute("SELECT causa FROM tickets WHERE number = %s", [number]).fetchone() == (
        causes[1],
    )
    # the next page shows another ticket, and says what was done
    after = client.get(done.headers["location"]).text
    assert f'data-number="{number}"' not in after and "labelled" in after
    assert "5 tickets waiting for review" in after  # of the six, one labelled


def test_hostile_text_is_shown_as_text(desk: tuple[TestClient, Any]) -> None:
    client, rt = desk
    sign_in(client, key(rt, "review"))
    page = client.get("/review/list").text
    assert (
        "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    )
    assert "<img src=x" not in page and 'href="javascript:' not in page
    assert "\u202e" not in page and "[U+202E]" in page and "[U+200B]" in page


def test_texts_are_cut_into_pieces_that_hide_nothing() -> None:
    got = text.pieces("Mi IMPRESORA\u202e no\u200bimprime", ["impresora", "no imprime"])
    assert [(p.text, p.kind) for p in got] == [
        ("Mi ", ""),
        ("IMPRESORA", "mark"),
        ("[U+202E]", "control"),
        (" ", ""),
        ("no", "mark"),
        ("[U+200B]", "control"),
        ("imprime", "mark"),
    ]
    shown, rest = text.split("word " * 1000)
    assert len(shown) <= text.SHOWN_CHARS and shown + rest == "word " * 1000


def test_the_dashboard_draws_real_decisions(desk: tuple[TestClient, Any]) -> None:
    client, rt = desk
    sign_in(client, key(rt, "review"))
    page = client.get("/dashboard").text
    values = re.findall(
        r'<rect class="bar" fill="url\(#chart-decisions-p\d\)"[^>]*data-value="(\d+)"', page
    )
    assert sum(map(int, values)) == 6, page  # six decisions, all this hour
    assert 'id="chart-confidence"' in page and 'id="chart-causes"' in page
    assert 'id="chart-backlog"' not in page or "path" in page


def test_a_rollback_needs_an_admin_and_a_confirmation(
    desk: tuple[TestClient, Any], conn: psycopg.Connection[Any]
) -> None:
    client, rt = desk
    token = sign_in(client, key(rt, "review"))
    assert 'id="rollback"' not in client.get("/models").text
    refused = client.post("/models/rollback", data={"csrf_token": token})
    assert refused.status_code == 403 and "admin key" in refused.text
    client.cookies.clear()
    token = sign_in(client, key(rt, "admin"))
    assert 'id="rollback"' in client.get("/models").text
    ask = client.post("/models/rollback", data={"csrf_token": token}, follow_redirects=False)
    assert ask.status_code == 200 and 'data-page="confirm"' in ask.text
    assert conn.execute("SELECT count(*) FROM causa.task_runs").fetchone() == (0,)
    done = client.post(
        "/models/rollback", data={"csrf_token": token, "confirm": "yes"}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/models?task=")
    assert conn.execute("SELECT name, state, requested_by FROM causa.task_runs").fetchall() == [
        ("rollback", "queued", "web:admin-desk")
    ]
    task = done.headers["location"].split("task=")[1]
    assert client.get(f"/models/task/{task}").json()["state"] == "queued"
    ask = client.post("/models/retrain", data={"csrf_token": token})
    assert 'id="confirm-retrain"' in ask.text
    assert conn.execute("SELECT count(*) FROM causa.task_runs").fetchone() == (1,)


def test_a_label_after_a_skip_goes_on_from_where_the_reviewer_is(
    desk: tuple[TestClient, Any],
) -> None:
    client, rt = desk
    token = sign_in(client, key(rt, "review"))

    def shown(page: str) -> str:
        found = re.search(r'id="ticket"[^>]*data-number="([^"]+)"', page)
        assert found, page[:2000]
        return found.group(1)

    first = client.get("/review").text
    skip = re.search(r'id="skip" href="([^"]+)"', first).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    second = client.get(skip).text
    assert shown(second) != shown(first)
    cause = re.findall(r'class="suggestion"[^>]*value="([^"]+)"', second)[0]
    fields = dict(re.findall(r'<input type="hidden" name="(after|at)" value="([^"]+)"', second))
    assert fields["after"] == shown(first)
    done = client.post(
        f"/review/{shown(second)}/label",
        data={"cause": cause, "csrf_token": token, **fields},
        follow_redirects=False,
    )
    third = client.get(done.headers["location"]).text
    # the next one after the skipped ticket, not the skipped one again
    assert shown(third) not in (shown(first), shown(second)), third[:500]


def test_cookies_are_secure_behind_a_proxy_that_ends_tls(
    conn: psycopg.Connection[Any], settings: Any, runtime_for: Callable[..., Any], model: Path
) -> None:
    plain = runtime_for(settings)
    with TestClient(create_app(plain)) as client:
        assert "secure" not in client.get("/login").headers["set-cookie"].lower()
    behind = runtime_for(settings, web_secure_cookies=True)
    with TestClient(create_app(behind)) as client:
        assert "; secure" in client.get("/login").headers["set-cookie"].lower()
