"""Live accuracy on a real database: causa_live_decisions says which decision a person's label
reviews, the flow counts, stores and notifies; retention keeps the newest figures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from flows import accuracy
from flows.retention import retain
from shared.store import Refused
from tests.helpers import insert, wait_for
from tests.webhook import Receiver


@pytest.fixture
def receiver(monkeypatch: Any) -> Iterator[Receiver]:
    """Must come before `rt` in a test's arguments: the runtime reads NOTIFY_URLS once."""
    with Receiver() as r:
        monkeypatch.setenv("NOTIFY_URLS", r.url)
        yield r


def decide(
    conn: psycopg.Connection[Any],
    number: str,
    predicted: str,
    status: str = "classified",
    confidence: float = 0.9,
    version: str = "V1",
) -> None:
    """The model's decision for one queued ticket, the way a worker writes it."""
    row = conn.execute("SELECT causa_claim('test', 1, 60, 3, %s)", [Jsonb([number])]).fetchone()
    assert row is not None and len(row[0]) == 1, row
    result = {
        "number": number,
        "claim_token": row[0][0]["claim_token"],
        "status": status,
        "predicted": predicted,
        "confidence": confidence,
        "model_version": version,
    }
    conn.execute("SELECT causa_apply(%s::jsonb)", [json.dumps([result])])


def relabel(conn: psycopg.Connection[Any], number: str, cause: str) -> None:
    """A person edits the ticket's cause (the label trigger records a human decision)."""
    conn.execute("UPDATE tickets SET causa = %s WHERE number = %s", [cause, number])


@pytest.fixture
def history(conn: psycopg.Connection[Any], rt: Any) -> psycopg.Connection[Any]:
    """Seven tickets whose outcomes are known (see the test below for the hand count)."""
    insert(conn, [(n, "texto", None) for n in ("A1", "A2", "A3", "B1", "C1", "D1", "E1")])
    for n in ("A1", "A2", "A3", "C1", "E1"):
        decide(conn, n, "Red")
    decide(conn, "B1", "Hardware", "needs_review", 0.4)
    decide(conn, "D1", "Software", "needs_review", 0.5)
    # A1 confirmed through causa_label; A2 corrected; A3 never reviewed
    assert rt.store.label("A1", "Red", "alice") == {"found": True, "changed": False}
    relabel(conn, "A2", "Hardware")
    # B1: a person gives the cause the model suggested
    relabel(conn, "B1", "Hardware")
    # C1: decided and corrected ten days ago, outside the 7-day window
    relabel(conn, "C1", "Software")
    conn.execute(
        "UPDATE causa.decisions SET decided_at = now() - interval '10 days' WHERE number = 'C1'"
    )
    # D1: requeued after its first decision and decided again, then confirmed: the second
    # decision is the one reviewed, the first was replaced without a review
    assert rt.store.requeue(["needs_review"], ["D1"]) == 1
    decide(conn, "D1", "Red", "classified", 0.8)
    relabel(conn, "D1", "Otro")
    relabel(conn, "D1", "Red")
    # E1: corrected twice: the last label is the person's word
    relabel(conn, "E1", "Hardware")
    relabel(conn, "E1", "Software")
    return conn


def test_each_label_reviews_the_models_last_decision_before_it(history: Any, rt: Any) -> None:
    # when the window's decisions are read
    rows = list(accuracy.window_rows(rt.store, *window(rt)))
    # then C1 (outside) and D1's replaced decision are left out; each has its last label
    got = sorted((r["number"], r["predicted"], r["status"], r["label"]) for r in rows)
    assert got == [
        ("A1", "Red", "classified", "Red"),
        ("A2", "Red", "classified", "Hardware"),
        ("A3", "Red", "classified", None),
        ("B1", "Hardware", "needs_review", "Hardware"),
        ("D1", "Red", "classified", "Red"),
        ("E1", "Red", "classified", "Software"),
    ]
    # and keyset pages of two give the same rows in the same order
    since, until = window(rt)
    pages: list[dict[str, Any]] = []
    after = None
    while page := rt.store.live_decisions(since.isoformat(), until.isoformat(), None, after, 2):
        assert len(page) <= 2
        pages += page
        after = {"at": page[-1]["at"], "id": page[-1]["id"]}
    assert [r["id"] for r in pages] == [r["id"] for r in rows]
    # only one model version's decisions when asked
    assert rt.store.live_decisions(since.isoformat(), None, "V2") == []


def window(rt: Any) -> tuple[Any, Any]:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    return now - timedelta(days=rt.settings.accuracy_window_days), now


def test_live_accuracy_counts_stores_and_notifies_once(
    receiver: Receiver, history: psycopg.Connection[Any], rt: Any
) -> None:
    settings = rt.settings.model_copy(update={"accuracy_min_reviewed": 3})
    # when the periodic check runs twice over the seven tickets
    first = accuracy.check(rt.store, rt.notifier, settings, ["Accesos", "Red"])
    second = accuracy.check(rt.store, rt.notifier, settings, ["Accesos", "Red"])
    # then 6 decided, 5 reviewed, 3 right: Red 2 of 4 (A1, D1 confirmed; A2, E1 corrected)
    assert (first["decided"], first["reviewed"], first["correct"]) == (6, 5, 3)
    red = first["causes"]["Red"]
    assert (red["decided"], red["reviewed"], red["correct"], red["precision"]) == (5, 4, 2, 0.5)
    assert red["corrected_to"] == {"Hardware": 1, "Software": 1} and red["below_target"]
    hardware = first["causes"]["Hardware"]
    assert (hardware["decided"], hardware["reviewed"], hardware["precision"]) == (1, 1, 1.0)
    assert first["causes"]["Accesos"]["decided"] == 0 and "Software" not in first["causes"]
    assert first["below_target"] == ["Red"] and first["window_days"] == 7
    assert second["causes"] == first["causes"]
    # both runs are stored as live_accuracy events
    stored = history.execute(
        "SELECT payload FROM causa.events WHERE kind = 'live_accuracy' ORDER BY id"
    ).fetchall()
    assert [p["reviewed"] for (p,) in stored] == [5, 5]
    assert stored[-1][0]["causes"]["Red"]["precision"] == 0.5
    # and Red below its target is notified once, not on every run
    [note] = wait_for(lambda: receiver.titled("precision below target"), 10, "the notification")
    assert note["title"].startswith("[precision below target] Red: 50.0% of 4 reviewed")
    assert "causa thresholds --suggest" in note["message"]
    assert len(receiver.titled("precision below target")) == 1


def test_nothing_is_notified_without_enough_reviewed(
    receiver: Receiver, history: psycopg.Connection[Any], rt: Any
) -> None:
    # given the default of 20 reviewed decisions: Red's 4 say too little
    result = accuracy.check(rt.store, rt.notifier, rt.settings)
    assert not result["causes"]["Red"]["enough_reviewed"] and result["below_target"] == []
    assert receiver.titled("precision below target") == []


def test_the_dashboards_entry_point_lists_the_models_causes(
    history: psycopg.Connection[Any], rt: Any, model: Any
) -> None:
    out = accuracy.live_accuracy(rt)
    assert set(rt.registry.current().classes) <= set(out["causes"])
    assert {"window_days", "since", "computed_at", "decided", "reviewed"} <= set(out)
    assert json.loads(json.dumps(out)) == out


def test_retention_keeps_the_newest_live_accuracy(
    history: psycopg.Connection[Any], rt: Any
) -> None:
    # given live accuracy stored long ago and just now
    history.execute(
        "INSERT INTO causa.events (kind, at) VALUES ('live_accuracy', now() - interval '300 days')"
    )
    accuracy.check(rt.store, rt.notifier, rt.settings)
    # when retention runs, then the old one goes and the new one stays
    assert retain(rt.store, rt.settings, rt.registry)["events"] == 1
    kept = history.execute("SELECT count(*) FROM causa.events WHERE kind = 'live_accuracy'")
    assert kept.fetchone() == (1,)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({"since": None}, "p_since"),
        ({"since": "2030-01-01T00:00:00+00:00"}, "p_since"),
        ({"limit": 0}, "p_limit"),
        ({"after": {"at": "yesterday-ish", "id": 1}}, "p_after"),
        ({"after": {"at": "2026-01-01T00:00:00+00:00"}}, "p_after"),
    ],
)
def test_wrong_arguments_are_refused_by_name(
    conn: psycopg.Connection[Any], rt: Any, args: dict[str, Any], named: str
) -> None:
    call = {"since": "2026-01-01T00:00:00+00:00", "until": "2026-01-08T00:00:00+00:00"} | args
    with pytest.raises(Refused, match=f"^{named}"):
        rt.store.live_decisions(**call)
