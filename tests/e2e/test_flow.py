"""Real worker, beat and listener processes classify tickets end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from tests.e2e.cluster import attempts_per_ticket, cluster, install_audit, writes_per_ticket
from tests.helpers import demo_rows, insert, statuses, wait_for
from worker import demodata

# The bootstrap model (trained on other demo tickets) gets 0.93 of these 1,000 right.
MIN_ACCURACY = 0.9


def test_a_thousand_tickets_are_classified_exactly_once(
    conn: psycopg.Connection[Any], model: Path, redis_url: str, tmp_path: Path
) -> None:
    install_audit(conn)
    with cluster(tmp_path, model, "worker", "beat", "listener"):
        # given tickets arriving in 20 inserts of 50
        for i in range(20):
            insert(conn, demo_rows(50, start=i * 50))
        # then every one reaches a final status
        wait_for(
            lambda: (
                statuses(conn).keys() <= {"classified", "needs_review"}
                and sum(statuses(conn).values()) == 1000
            ),
            timeout=120,
            what="1,000 tickets classified",
        )
    writes = writes_per_ticket(conn)
    assert len(writes) == 1000 and set(writes.values()) == {1}, "each ticket written once"
    # by one model, each on its first attempt
    versions = conn.execute("SELECT DISTINCT causa_model_version FROM tickets").fetchall()
    assert len(versions) == 1 and versions[0][0]
    attempts = attempts_per_ticket(conn)
    assert len(attempts) == 1000 and set(attempts.values()) == {1}
    # and the predictions are right: the demo rows carry their true cause
    truth = {f"T{i:06d}": t.cause for i, t in enumerate(demodata.generate(1000, seed=7))}
    predicted = dict(conn.execute("SELECT number, causa_predicted FROM tickets").fetchall())
    assert predicted.keys() == truth.keys()
    accuracy = sum(predicted[n] == cause for n, cause in truth.items()) / len(truth)
    assert accuracy >= MIN_ACCURACY, f"accuracy {accuracy:.3f} < {MIN_ACCURACY}"


def test_beat_alone_picks_up_what_no_event_announced(
    conn: psycopg.Connection[Any], model: Path, redis_url: str, tmp_path: Path
) -> None:
    # given no listener: the insert trigger's notification goes nowhere
    with cluster(tmp_path, model, "worker", "beat", CAUSA_POLL_INTERVAL="0.5"):
        insert(conn, demo_rows(120))
        wait_for(
            lambda: statuses(conn).get("pending", 0) + statuses(conn).get("claimed", 0) == 0,
            timeout=60,
            what="the poller to classify every ticket",
        )
    assert sum(statuses(conn).values()) == 120
