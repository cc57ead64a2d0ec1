"""The drift report on a real database: tickets classified by the real worker code and a
real model, the report over the window, the event stored where `causa status` reads it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from flows.classify import classify_batch
from flows.drift import check
from shared.settings import Settings
from shared.store import PostgresStore
from tests.helpers import KEY, demo_rows, insert
from training import registry
from training.registry import ModelRegistry
from worker import demodata
from worker.model_holder import ModelHolder

Row = tuple[str, str | None, str | None]


class Notifications:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, event: str, title: str, body: str, **kw: Any) -> bool:
        self.sent.append({"event": event, "title": title, "body": body, **kw})
        return True


def printer_rows(n: int) -> list[Row]:
    """Only one kind of ticket: a desk where the printers all broke at once."""
    tickets = [t for t in demodata.generate(n * 15, seed=7) if t.cause == "Impresoras"][:n]
    assert len(tickets) == n
    return [(f"P{i:06d}", t.short_description, t.description) for i, t in enumerate(tickets)]


def gibberish_rows(n: int) -> list[Row]:
    """Words no model has seen: a new product line, another language, pasted logs."""
    syllables = ["zor", "blat", "quen", "ix", "flur", "bex", "wez", "dru", "kal", "mip"]
    words = [a + b for a in syllables for b in syllables]
    return [
        (f"G{i:06d}", f"{words[i % 100]} {words[(i * 7) % 100]}", f"{words[(i * 13) % 100]} 42")
        for i in range(n)
    ]


def classified(
    conn: psycopg.Connection[Any], settings: Settings, rows: list[Row]
) -> tuple[PostgresStore, ModelHolder]:
    """Insert the tickets and classify them the way a worker does."""
    insert(conn, rows)
    store, holder = (
        PostgresStore(settings),
        ModelHolder(ModelRegistry.local(settings.models_dir, KEY)),
    )
    summary = classify_batch(store, holder, settings, worker="test", limit=len(rows))
    assert summary["claimed"] == len(rows)
    return store, holder


def run_check(
    store: PostgresStore, holder: ModelHolder, settings: Settings, **kw: Any
) -> tuple[dict[str, Any], Notifications]:
    notifier = Notifications()
    try:
        result = check(store, holder.get(), settings, notifier, **kw)
    finally:
        store.close()
    return result, notifier


def test_tickets_like_the_training_data_are_ok_and_the_report_is_stored(
    conn: psycopg.Connection[Any], settings: Settings, model: Path
) -> None:
    # given 300 ordinary tickets, classified
    store, holder = classified(conn, settings, demo_rows(300))
    # when the report runs
    result, notifier = run_check(store, holder, settings)
    # then it is ok, nobody is told, and causa status can read it
    assert result["verdict"] == "ok", result["reason"]
    assert result["tickets"] == 300 and result["other_versions"] == 0
    assert result["psi"] < 0.1 and notifier.sent == []
    assert abs(result["unknown_words"]["change"]) < 0.05
    latest = PostgresStore(settings)
    try:
        stored = latest.latest_events()["drift"]["payload"]
    finally:
        latest.close()
    assert stored == result
    assert {"verdict", "psi", "model_version", "tickets"} <= set(stored)
    print(f"ok stream: PSI {result['psi']}, {result['reason']}")


def test_one_kind_of_ticket_only_is_drift(
    conn: psycopg.Connection[Any], settings: Settings, model: Path
) -> None:
    store, holder = classified(conn, settings, printer_rows(250))
    result, notifier = run_check(store, holder, settings)
    assert result["verdict"] == "drift" and result["psi"] > settings.drift_threshold
    assert result["classes"]["Impresoras"]["recent"] > 0.9
    (sent,) = notifier.sent
    assert sent["event"] == "drift detected" and sent["key"] == "drift"
    print(f"printers only: PSI {result['psi']}, {result['reason']}")


def test_words_the_model_never_saw_are_drift(
    conn: psycopg.Connection[Any], settings: Settings, model: Path
) -> None:
    store, holder = classified(conn, settings, gibberish_rows(250))
    result, _ = run_check(store, holder, settings)
    assert result["verdict"] == "drift"
    assert result["unknown_words"]["recent"] > 0.8
    assert "unknown words" in result["reason"]
    print(f"gibberish: PSI {result['psi']}, {result['reason']}")


def test_new_words_in_ordinary_tickets_are_drift_while_the_classes_hold(
    conn: psycopg.Connection[Any], settings: Settings, model: Path
) -> None:
    # given ordinary tickets that each name things the model never saw (a new product line)
    padded: list[Row] = [
        (n, short, f"{long} quenixware zorblat flurbex v9 wexeltool kalmip")
        for n, short, long in demo_rows(300)
    ]
    store, holder = classified(conn, settings, padded)
    result, _ = run_check(store, holder, settings)
    # then the classes barely move, but the words do
    assert result["psi"] < settings.drift_threshold
    assert result["verdict"] == "drift" and result["reason"].startswith("unknown words")
    print(f"new words: PSI {result['psi']}, {result['reason']}")


def test_fewer_tickets_than_the_minimum_give_no_verdict(
    conn: psycopg.Connection[Any], settings: Settings, model: Path
) -> None:
    store, holder = classified(conn, settings, printer_rows(settings.drift_min_tickets - 1))
    result, notifier = run_check(store, holder, settings)
    assert result["verdict"] == "not enough data" and notifier.sent == []
    assert result["tickets"] == settings.drift_min_tickets - 1


def test_only_the_window_and_the_model_in_service_count(
    conn: psycopg.Connection[Any], settings: Settings, model: Path
) -> None:
    # given 300 tickets: 40 decided by an older model, 60 decided two days ago
    store, holder = classified(conn, settings, demo_rows(300))
    conn.execute("UPDATE causa.decisions SET model_version = 'old' WHERE number <= 'T000039'")
    conn.execute(
        "UPDATE causa.decisions SET decided_at = now() - interval '2 days'"
        " WHERE number BETWEEN 'T000040' AND 'T000099'"
    )
    # when the report runs over the last day
    result, _ = run_check(store, holder, settings.model_copy(update={"drift_min_tickets": 100}))
    # then only the 200 recent decisions count, the 40 of the older model set apart
    assert result["tickets"] == 200 and result["other_versions"] == 40
    assert result["verdict"] == "ok"
    # a window that has not begun yet holds nothing
    store = PostgresStore(settings)
    later, _ = run_check(store, holder, settings, now=datetime.now(UTC) + timedelta(days=3))
    assert later["tickets"] == 0 and later["verdict"] == "not enough data"


def test_a_model_without_reference_says_to_retrain(
    conn: psycopg.Connection[Any], settings: Settings, model: Path
) -> None:
    # given a model promoted before drift monitoring: its (signed) manifest has no reference
    info = registry.read_manifest(model, KEY)
    assert info is not None
    info.reference = {}
    registry.write_manifest(model, info, KEY)
    store, holder = classified(conn, settings, demo_rows(250))
    result, _ = run_check(store, holder, settings)
    assert result["verdict"] == "no reference" and "causa train" in result["reason"]


def test_the_task_stores_the_report_and_starts_a_retraining_when_asked(
    conn: psycopg.Connection[Any],
    settings: Settings,
    model: Path,
    runtime_for: Callable[..., Any],
) -> None:
    from celery import signals

    from tasks import monitoring

    # given drifted decisions and a worker whose settings ask for retraining on drift
    store, _ = classified(conn, settings, printer_rows(250))
    store.close()
    rt = runtime_for(settings, drift_retrain=True)
    published: list[tuple[str, str, Any]] = []

    def sent(headers: dict[str, Any], body: Any, routing_key: str, **_: Any) -> None:
        published.append((headers["task"], routing_key, body[1]))

    # (the broker message is seen as it is published: a worker of another test run sharing
    # this Redis could take it from the queue before the test looks)
    signals.after_task_publish.connect(sent, weak=False)
    try:
        # when beat's task runs
        summary = monitoring.drift_report()
    finally:
        signals.after_task_publish.disconnect(sent)
    # then the report is stored and one retraining is sent to the training queue
    assert summary["verdict"] == "drift" and summary["retrain"] is True, summary
    stored = rt.store.latest_events()["drift"]["payload"]
    assert stored["verdict"] == "drift" and stored["psi"] == summary["psi"]
    assert published == [("tasks.training.retrain", "causa-training", {"trigger": "drift"})]
