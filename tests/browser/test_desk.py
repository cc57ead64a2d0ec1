"""The review desk as a reviewer and a lead use it, in Chromium: sign-in, the queue and its
keys, the dashboard's charts, the admin's rollback, CSRF, and a hostile ticket.

The pages are those of /work/notes/ui-contract.md (issue 15): element ids and URLs named there.
Every test saves a full-page screenshot of each page it opens (tests/browser/conftest.py)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest

from tests.browser.conftest import (
    FAILED,
    HOSTILE,
    RLO,
    ZERO_WIDTH,
    Desk,
    Visit,
    sign_in,
)

pytestmark = pytest.mark.browser

CSP = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self'",
    "connect-src": "'self'",
    "form-action": "'self'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
}
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.I)
STYLE_ATTRIBUTE = re.compile(r"<[a-z][^>]*\sstyle\s*=", re.I)
HANDLER_ATTRIBUTE = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)
PAGES = ("/review", "/review/list", "/failed", "/dashboard", "/models")
NAV = ("#nav-review", "#nav-queue", "#nav-failed", "#nav-dashboard", "#nav-models")
CHARTS = (
    "#chart-decisions",
    "#chart-backlog",
    "#chart-causes",
    "#chart-confidence",
    "#chart-accuracy",
    "#chart-drift",
    "#chart-models",
)


def waiting(db: psycopg.Connection[Any]) -> list[str]:
    """The needs_review tickets in the queue's order (oldest decision first)."""
    rows = db.execute(
        "SELECT number::text FROM causa.outcomes WHERE status = 'needs_review'"
        " ORDER BY decided_at, number"
    ).fetchall()
    return [r[0] for r in rows]


def shown(visit: Visit) -> str:
    """The number of the ticket the review page shows."""
    number = visit.page.locator("article#ticket").get_attribute("data-number")
    assert number, "article#ticket has no data-number"
    return number


def query(visit: Visit) -> dict[str, list[str]]:
    return parse_qs(urlsplit(visit.page.url).query)


def past_the_hostile(visit: Visit) -> str:
    """Open the review queue and, when it shows the hostile ticket (the oldest), skip it: the
    number of the ticket then shown."""
    visit.goto("/review")
    if shown(visit) == HOSTILE:
        skip = visit.page.locator("a#skip").get_attribute("href")
        assert skip, "no skip link"
        visit.goto(skip)
    number = shown(visit)
    assert number != HOSTILE
    return number


def ranked(db: psycopg.Connection[Any], number: str) -> list[str]:
    """The causes the model gave the ticket, most likely first (its latest model decision)."""
    row = db.execute(
        "SELECT predicted, alternatives FROM causa.decisions"
        " WHERE number = %s AND source = 'model' ORDER BY id DESC LIMIT 1",
        [number],
    ).fetchone()
    assert row is not None, number
    predicted, alternatives = row
    return [predicted, *(a["cause"] for a in alternatives or [] if a["cause"] != predicted)]


def human_label(db: psycopg.Connection[Any], number: str) -> tuple[Any, ...] | None:
    """The ticket's latest human label (its status, source and cause) and its cause column."""
    return db.execute(
        "SELECT d.status, d.source, d.cause, t.causa FROM causa.decisions AS d"
        " JOIN tickets AS t ON t.number = d.number"
        " WHERE d.number = %s AND d.source = 'human' ORDER BY d.id DESC LIMIT 1",
        [number],
    ).fetchone()


def model_in_service(desk: Desk) -> str:
    answer = httpx.get(f"{desk.url}/v1/model", headers={"X-API-Key": desk.keys.predict}, timeout=10)
    assert answer.status_code == 200, answer.text
    version: str = answer.json()["version"]
    return version


def rollbacks(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT id, state, requested_by FROM causa.task_runs WHERE name = 'rollback'"
        " ORDER BY queued_at"
    ).fetchall()


def data_page(visit: Visit) -> str | None:
    return visit.page.locator("body").get_attribute("data-page")


def test_sign_in_with_a_review_key_a_wrong_or_predict_key_is_refused(
    visit: Visit, desk: Desk
) -> None:
    page = visit.page
    # given no session, every page leads to the sign-in form
    for path in ("/", "/dashboard"):
        visit.goto(path)
        assert urlsplit(page.url).path == "/login", page.url
    assert data_page(visit) == "login"
    assert page.locator("form#login-form input#key[type=password][name=key]").count() == 1
    assert page.locator("form#login-form input[type=hidden][name=csrf_token]").count() == 1

    # when a wrong key is given, it is refused and no session starts
    refused = sign_in(visit, "causa_this-is-not-a-key-0123456789")
    assert refused is not None and refused.status == 401, refused and refused.status
    assert page.locator("p.error").is_visible()
    assert not any(c["name"] == "causa_session" for c in page.context.cookies())

    # and a key of predict scope is refused too
    refused = sign_in(visit, desk.keys.predict)
    assert refused is not None and refused.status == 403, refused and refused.status
    assert page.locator("p.error").is_visible()
    assert not any(c["name"] == "causa_session" for c in page.context.cookies())

    # when a review key is given, the queue opens and the session cookie is set as it should
    accepted = sign_in(visit, desk.keys.review)
    assert accepted is not None and accepted.status == 303, accepted and accepted.status
    assert page.url.startswith(f"{desk.url}/review"), page.url
    (session,) = [c for c in page.context.cookies() if c["name"] == "causa_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict", session
    assert session["expires"] > 0, "a session that never expires"
    assert desk.keys.review not in session["value"], "the key itself is in the cookie"
    who = page.locator("span#who").inner_text()
    assert desk.keys.names["review"] in who and "review" in who, who
    for link in NAV:
        assert page.locator(f"a{link}").is_visible(), link

    # and signing out ends the session
    visit.after(lambda: page.click("#sign-out-button"))
    visit.goto("/review")
    assert urlsplit(page.url).path == "/login", page.url


def test_the_queue_shows_a_needs_review_ticket_with_its_suggestions(
    visit: Visit, desk: Desk, db: psycopg.Connection[Any]
) -> None:
    page = visit.page
    sign_in(visit, desk.keys.review)
    visit.goto("/review")
    assert data_page(visit) == "review"
    number = shown(visit)
    assert number in waiting(db), f"{number} is not waiting for review"
    assert page.locator("#ticket-text").is_visible()
    buttons = page.locator("form#suggestions button.suggestion")
    assert 1 <= buttons.count() <= 3
    assert [buttons.nth(i).get_attribute("data-key") for i in range(buttons.count())] == [
        str(i + 1) for i in range(buttons.count())
    ]
    assert page.locator("form#other-cause input#cause-search[list=all-causes]").count() == 1
    assert page.locator("datalist#all-causes option").count() >= buttons.count()
    skip = page.locator("a#skip").get_attribute("href") or ""
    assert urlsplit(skip).path == "/review", skip
    assert parse_qs(urlsplit(skip).query)["after"] == [number], skip

    # and the list shows the whole queue, each row a ticket waiting for review
    visit.goto("/review/list")
    rows = page.locator("table#queue-list tr[data-number]")
    listed = [rows.nth(i).get_attribute("data-number") for i in range(rows.count())]
    assert listed and set(listed) <= set(waiting(db)), listed
    assert number in listed


def test_pressing_2_labels_the_ticket_with_the_second_suggestion(
    visit: Visit, desk: Desk, db: psycopg.Connection[Any]
) -> None:
    page = visit.page
    sign_in(visit, desk.keys.review)
    number = past_the_hostile(visit)
    assert number in waiting(db)
    second = page.locator('button.suggestion[data-key="2"]').get_attribute("value")
    assert second, "no second suggestion"
    assert second == ranked(db, number)[1], "button 2 is not the model's second cause"
    assert human_label(db, number) is None

    # when the reviewer presses 2
    visit.after(lambda: page.keyboard.press("2"))

    # then the ticket carries a human label with that cause, and the next ticket is shown
    assert human_label(db, number) == ("labelled", "human", second, second)
    worker = db.execute(
        "SELECT worker FROM causa.decisions WHERE number = %s ORDER BY id DESC LIMIT 1",
        [number],
    ).fetchone()
    assert worker is not None and desk.keys.names["review"] in str(worker[0]), worker
    assert urlsplit(page.url).path == "/review", page.url
    assert number not in waiting(db)
    assert shown(visit) != number and shown(visit) in waiting(db)


def test_s_skips_to_the_next_ticket_and_labels_nothing(
    visit: Visit, desk: Desk, db: psycopg.Connection[Any]
) -> None:
    page = visit.page
    sign_in(visit, desk.keys.review)
    first = past_the_hostile(visit)
    queue = waiting(db)
    expected = queue[queue.index(first) + 1]
    decisions = db.execute("SELECT count(*) FROM causa.decisions").fetchone()

    visit.after(lambda: page.keyboard.press("s"))

    assert query(visit)["after"] == [first], page.url
    assert shown(visit) == expected
    assert db.execute("SELECT count(*) FROM causa.decisions").fetchone() == decisions
    assert first in waiting(db)


def test_the_dashboard_draws_its_charts_from_the_decisions(
    visit: Visit, desk: Desk, db: psycopg.Connection[Any]
) -> None:
    page = visit.page
    sign_in(visit, desk.keys.review)
    visit.goto("/dashboard")
    assert data_page(visit) == "dashboard"
    by_status = dict(
        db.execute("SELECT status, count(*) FROM causa.decisions GROUP BY 1").fetchall()
    )

    # every chart is an svg with a role and a title, or says it has no data
    for chart in CHARTS:
        svg = page.locator(f"svg.chart{chart}")
        if svg.count():
            assert svg.get_attribute("role") == "img", chart
            assert svg.locator("title").count() >= 1, chart
        else:
            figure = page.locator("figure:has(p.no-data)")
            assert figure.count() >= 1, f"{chart}: neither an svg nor p.no-data"

    # decisions per hour by verdict: drawn bars whose values add up to the decisions made
    bars = page.locator("svg#chart-decisions rect.bar")
    assert bars.count() > 0
    values = [float(v) for v in bars.evaluate_all("els => els.map(e => e.dataset.value)")]
    assert sum(values) == sum(by_status.values()), (values, by_status)
    assert any(v > 0 for v in values)
    drawn = bars.evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height] })"
    )
    assert all(w > 0 for w, _ in drawn), drawn
    assert any(h > 0 for _, h in drawn), "every bar is flat"

    # the confidence histogram counts the model's decisions
    model_decisions = db.execute(
        "SELECT count(*) FROM causa.decisions WHERE source = 'model' AND confidence IS NOT NULL"
        " AND status IN ('classified', 'needs_review')"
    ).fetchone()
    assert model_decisions is not None
    histogram = page.locator("svg#chart-confidence rect.bar")
    assert histogram.count() > 0
    counted = histogram.evaluate_all("els => els.map(e => Number(e.dataset.value))")
    assert sum(counted) == model_decisions[0], (counted, model_decisions)

    # the backlog is a drawn line, which ends at the tickets waiting now
    assert page.locator("svg#chart-backlog path.line").count() >= 1
    points = page.locator("svg#chart-backlog circle.point")
    pending = db.execute("SELECT count(*) FROM causa.work").fetchone()
    assert pending is not None and pending[0] > 0
    assert points.last.get_attribute("data-value") == str(pending[0])
    assert points.last.bounding_box() is not None
    # every data mark carries its value
    marks = "svg.chart rect.bar, svg.chart circle.point"
    valued = "svg.chart rect.bar[data-value], svg.chart circle.point[data-value]"
    assert page.locator(marks).count() == page.locator(valued).count()


def test_an_admin_rollback_needs_the_confirmation(
    visit: Visit, desk: Desk, db: psycopg.Connection[Any]
) -> None:
    page = visit.page
    sign_in(visit, desk.keys.admin)
    visit.goto("/models")
    assert data_page(visit) == "models"
    assert page.locator("table#models").is_visible()
    assert page.locator("table#thresholds").count() == 1
    assert page.locator("form#retrain").count() == 1
    before = model_in_service(desk)
    assert before in page.locator("table#models").inner_text()
    queued = rollbacks(db)

    # when the admin sends the rollback form, a confirmation is asked and nothing happens yet
    visit.after(lambda: page.locator("form#rollback [type=submit]").first.click())
    assert data_page(visit) == "confirm"
    assert page.locator("form#confirm-rollback input[name=confirm][value=yes]").count() == 1
    assert model_in_service(desk) == before
    assert rollbacks(db) == queued

    # when it is confirmed, the rollback is queued as an admin task and its state shown
    visit.after(lambda: page.click("#confirm"))
    assert "/models?task=" in page.url, page.url
    task_id = page.url.split("task=", 1)[1].split("&")[0]
    runs = [r for r in rollbacks(db) if r[0] == task_id]
    assert runs and runs[0][1] == "queued", rollbacks(db)
    assert desk.keys.names["admin"] in str(runs[0][2]), runs
    task = page.locator("div#task")
    assert task.is_visible()
    assert task.get_attribute("data-state") == "queued"  # no worker runs here
    assert model_in_service(desk) == before


def test_a_review_key_cannot_roll_back_nor_requeue(
    visit: Visit, desk: Desk, db: psycopg.Connection[Any]
) -> None:
    page = visit.page
    sign_in(visit, desk.keys.review)
    visit.goto("/models")
    assert page.locator("form#rollback").count() == 0
    assert page.locator("form#retrain").count() == 0
    token = visit.csrf_token()
    queued = rollbacks(db)

    # a forged rollback with a valid CSRF token is refused for the key's scope
    forged = page.request.post(
        "/models/rollback", form={"confirm": "yes", "csrf_token": token}, max_redirects=0
    )
    assert forged.status == 403, forged.status
    assert rollbacks(db) == queued

    # the failed tickets are listed with their errors, without a requeue action
    visit.goto("/failed")
    row = page.locator(f'table#failed-list tr[data-number="{FAILED}"]')
    assert "could not read this ticket" in row.locator("td.error").inner_text()
    assert page.locator("form.requeue").count() == 0
    forged = page.request.post(
        "/failed/requeue", form={"number": FAILED, "csrf_token": token}, max_redirects=0
    )
    assert forged.status == 403, forged.status
    state = db.execute("SELECT status FROM causa.outcomes WHERE number = %s", [FAILED])
    assert state.fetchone() == ("failed",)

    # and an admin sees the requeue action on the same row
    page.context.clear_cookies()
    sign_in(visit, desk.keys.admin)
    visit.goto("/failed")
    assert page.locator(f'table#failed-list tr[data-number="{FAILED}"] form.requeue').count() == 1


def test_a_post_without_the_csrf_token_is_refused(
    visit: Visit, desk: Desk, db: psycopg.Connection[Any]
) -> None:
    page = visit.page
    # the sign-in form is protected too: a key posted without the form's token starts nothing
    visit.goto("/login")
    refused = page.request.post("/login", form={"key": desk.keys.review}, max_redirects=0)
    assert refused.status == 403, refused.status
    assert not any(c["name"] == "causa_session" for c in page.context.cookies())

    sign_in(visit, desk.keys.review)
    number = past_the_hostile(visit)
    cause = page.locator('button.suggestion[data-key="1"]').get_attribute("value")
    assert cause

    # the session cookie goes along, the token does not (or a wrong one does)
    forms: list[dict[str, str | float | bool]] = [
        {"cause": cause},
        {"cause": cause, "csrf_token": "forged"},
    ]
    for form in forms:
        refused = page.request.post(f"/review/{number}/label", form=form, max_redirects=0)
        assert refused.status == 403, (form, refused.status)
        assert "csrf" in refused.text().lower(), refused.text()[:500]
    assert human_label(db, number) is None
    assert number in waiting(db)

    # and a form posted from the page without its token is refused the same way
    page.locator("form#suggestions input[name=csrf_token]").evaluate("e => e.remove()")
    visit.after(lambda: page.locator('button.suggestion[data-key="1"]').click())
    assert page.locator("p.error").is_visible()
    assert human_label(db, number) is None


def test_a_hostile_ticket_is_shown_as_text_and_runs_nothing(
    visit: Visit, desk: Desk, db: psycopg.Connection[Any]
) -> None:
    page = visit.page
    sign_in(visit, desk.keys.review)
    visit.goto("/review")
    assert shown(visit) == HOSTILE, "the hostile ticket is the oldest in the queue"
    text = page.locator("#ticket-text")

    # the markup is there as text, and nothing of it became an element
    seen = text.inner_text()
    assert "<script>alert(1)</script>" in seen, seen[:500]
    assert '<img src=x onerror="alert(2)">' in seen, seen[:500]
    assert '<a href="javascript:alert(3)">x</a>' in seen, seen[:500]
    assert page.locator("#ticket script, #ticket img, #ticket a[href^='javascript']").count() == 0
    assert page.locator("script:not([src])").count() == 0

    # hidden characters cannot disguise the text: shown as markers, or gone
    full = page.locator("article#ticket").text_content() or ""
    for hidden in (RLO, *ZERO_WIDTH):
        assert hidden not in full, f"U+{ord(hidden):04X} is in the page as it is"
    assert "fdp.exe" in seen  # the disguised name reads as it is stored

    # 1 MB of text: a first part is shown, the rest behind an expand control
    more = page.locator("details#ticket-more")
    assert more.count() == 1
    assert more.get_attribute("open") is None
    assert len(seen) <= 10_000, f"{len(seen)} characters shown at once"
    more.locator("summary").click()
    assert more.get_attribute("open") is not None
    assert "relleno" in more.inner_text()
    visit.snap("expanded")
    assert page.locator("#ticket").is_visible()

    # and the page still works: a suggestion labels the ticket
    cause = page.locator('button.suggestion[data-key="1"]').get_attribute("value")
    assert cause
    visit.after(lambda: page.locator('button.suggestion[data-key="1"]').click())
    assert human_label(db, HOSTILE) == ("labelled", "human", cause, cause)

    # no script ran: no dialog, and no request left for anywhere but causa itself
    assert visit.dialogs == []
    strangers = [u for u in visit.requests if not u.startswith(desk.url + "/")]
    assert strangers == [], strangers


@pytest.mark.parametrize("signed_in", [False, True], ids=["login", "signed-in"])
def test_every_page_forbids_inline_scripts(visit: Visit, desk: Desk, signed_in: bool) -> None:
    page = visit.page
    paths = PAGES if signed_in else ("/login",)
    if signed_in:
        sign_in(visit, desk.keys.admin)
    for path in paths:
        response = visit.goto(path)
        assert response.status == 200, (path, response.status)
        header = response.headers.get("content-security-policy", "")
        given = {d.split()[0]: " ".join(d.split()[1:]) for d in header.split(";") if d.strip()}
        assert given == CSP, (path, header)
        # nothing inline in the page as served: no script, no style attribute, no handler
        html = response.text()
        for inline in (INLINE_SCRIPT, STYLE_ATTRIBUTE, HANDLER_ATTRIBUTE):
            assert not inline.search(html), (path, inline.search(html))
        handlers = page.evaluate(
            "() => [...document.querySelectorAll('*')].flatMap(e =>"
            " [...e.attributes].filter(a => a.name.startsWith('on')).map(a => a.name))"
        )
        assert handlers == [], (path, handlers)
        # an inline script put into the page does not run
        page.evaluate(
            "() => { const s = document.createElement('script');"
            " s.textContent = 'window.inlineRan = true'; document.body.appendChild(s); }"
        )
        assert page.evaluate("() => window.inlineRan === true") is False, path
    assert visit.dialogs == []
