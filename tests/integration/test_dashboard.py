"""The dashboard's figures against a hand count: decisions and work items placed at known
hours, then causa_dashboard's counts and the series flows.dashboard draws from them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from flows import dashboard
from shared.store import make_store

# (number, status, source, cause, predicted, confidence, received hours ago, decided hours ago)
DECISIONS = [
    ("A1", "classified", "model", "Red", "Red", 0.93, 5.5, 5.2),  # queued and decided in hour -5
    ("A2", "needs_review", "model", None, "Red", 0.41, 5.5, 3.5),  # waited from hour -5 to -3
    ("A3", "classified", "model", "Correo", "Correo", 0.88, 30.0, 2.5),  # from before: waited
    ("A2", "labelled", "human", "Hardware", None, None, None, 1.5),  # a person's label
    ("A4", "failed", "model", None, None, None, 4.5, 0.5),
]
WORK = [("B1", 2.5), ("B2", 0.2)]  # still waiting: received hours ago


def test_dashboard_counts_match_a_hand_count(conn: psycopg.Connection[Any], settings: Any) -> None:
    row = conn.execute("SELECT date_trunc('hour', now()) + interval '30 minutes'").fetchone()
    assert row is not None
    now = row[0]
    for number, status, source, cause, predicted, confidence, got, decided in DECISIONS:
        conn.execute(
            "INSERT INTO causa.decisions (number, status, source, cause, predicted, confidence,"
            " received_at, decided_at) VALUES (%s, %s, %s, %s, %s, %s,"
            " %s - make_interval(secs => %s * 3600), %s - make_interval(secs => %s * 3600))",
            [number, status, source, cause, predicted, confidence, now, got, now, decided],
        )
    for number, got in WORK:
        conn.execute(
            "INSERT INTO causa.work (number, received_at)"
            " VALUES (%s, %s - make_interval(secs => %s * 3600))",
            [number, now, got],
        )
    conn.execute("UPDATE causa.decisions SET received_at = NULL WHERE source = 'human'")
    raw = make_store(settings).dashboard(2)
    shaped = dashboard.shape(raw, [])
    hours = len(shaped["hours"])
    assert hours == 2 * 24 + 1  # from two days before this hour to this hour

    def at(hours_ago: int) -> int:
        return hours - 1 - hours_ago

    assert (
        shaped["decisions"]["classified"][at(5)] == 1
        and shaped["decisions"]["classified"][at(2)] == 1
    )
    assert shaped["decisions"]["needs_review"][at(3)] == 1
    assert shaped["decisions"]["labelled"][at(1)] == 1 and shaped["decisions"]["failed"][at(0)] == 1
    assert sum(map(sum, shaped["decisions"].values())) == 5
    backlog = shaped["backlog"]
    # by hand, at the end of each hour: A3 waits from before the window until hour -2;
    # A1 comes and goes in hour -5; A2 waits in -5 and -4; A4 from -4 to -1; B1 from -2; B2 in 0
    expected = {
        10: 1,
        5: 2,
        4: 3,
        3: 2,
        2: 2,
        1: 2,
        0: 2,
    }
    for hours_ago, n in expected.items():
        assert backlog[at(hours_ago)] == n, (hours_ago, backlog[-12:])
    # causes by day: the decided cause of each decision (the human label counts its own)
    assert {c: sum(v) for c, v in shaped["causes"].items()} == {
        "Red": 2,
        "Correo": 1,
        "Hardware": 1,
    }
    # confidence: the model's classified and needs_review decisions in 20 bins
    assert (
        shaped["confidence"]["classified"][18] == 1 and shaped["confidence"]["classified"][17] == 1
    )
    assert shaped["confidence"]["needs_review"][8] == 1
    assert sum(map(sum, shaped["confidence"].values())) == 3


def test_the_model_timeline_follows_promotions_and_rollbacks() -> None:
    events = [
        {
            "kind": "training",
            "at": "2026-11-01T10:00:00+00:00",
            "payload": {"decision": "promote", "version": "v1", "challenger": {"macro_f1": 0.8}},
        },
        {
            "kind": "training",
            "at": "2026-11-02T10:00:00+00:00",
            "payload": {"decision": "keep", "version": "v2", "challenger": {"macro_f1": 0.7}},
        },
        {
            "kind": "training",
            "at": "2026-11-03T10:00:00+00:00",
            "payload": {"decision": "promote", "version": "v3", "challenger": {"macro_f1": 0.85}},
        },
        {"kind": "rollback", "at": "2026-11-04T10:00:00+00:00", "payload": {"version": "v1"}},
        {
            "kind": "drift",
            "at": "2026-11-04T11:00:00+00:00",
            "payload": {"psi": 0.3, "rule": {"psi_above": 0.2}, "unknown_words": {"recent": 0.1}},
        },
    ]
    raw = {
        "since": "2026-11-01T00:00:00+00:00",
        "backlog": [],
        "hourly": [],
        "causes": [],
        "confidence": [],
    }
    shaped = dashboard.shape(raw, events)
    assert [(t["label"], t["macro_f1"]) for t in shaped["timeline"]] == [
        ("v1", 0.8),
        ("training: not promoted", 0.7),
        ("v3", 0.85),
        ("v1", 0.8),
    ]
    assert shaped["drift"] == [
        {
            "at": "2026-11-04T11:00:00+00:00",
            "psi": 0.3,
            "unknown_words": 0.1,
            "threshold": 0.2,
            "verdict": None,
        }
    ]


def test_stored_live_accuracy_is_shown_while_it_is_recent() -> None:
    stored = {
        "kind": "live_accuracy",
        "at": "2026-11-04T10:00:00+00:00",
        "payload": {"reviewed": 7},
    }
    now = datetime.fromisoformat("2026-11-04T11:00:00+00:00")
    assert dashboard.latest_accuracy(stored, now) == {"reviewed": 7}
    assert dashboard.latest_accuracy(stored, now + timedelta(hours=2)) is None  # computed again
    assert dashboard.latest_accuracy(None, now) is None
