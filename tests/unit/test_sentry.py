"""Sentry with a transport that keeps envelopes in memory: what an error report holds (the
error's type, tags) and what it never holds (ticket text, secrets, local variables); beat's
schedules reported as Crons check-ins."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
import structlog
from celery.beat import Scheduler
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from flows.classify import classify_batch
from shared import logs
from shared.settings import Settings
from tests.unit.test_classify import FakeModel, FakeStore, Models, ticket
from worker import sentry
from worker.app import make_app

DSN = "http://publickey@127.0.0.1:9/1"  # nothing listens there: the transport is replaced
DB_PASSWORD = "Db-Pa55word-in-url"
SERVICE_KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXNlY3JldA"
TEXT = "la VPN de María García no conecta desde casa, usuario mgarcia"


class Captured(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def items(self, kind: str) -> list[dict[str, Any]]:
        return [
            json.loads(item.get_bytes())
            for e in self.envelopes
            for item in e.items
            if item.type == kind
        ]

    def raw(self) -> str:
        return b"".join(e.serialize() for e in self.envelopes).decode("utf-8")


@pytest.fixture
def transport() -> Iterator[Captured]:
    captured = Captured()
    yield captured
    sentry.close()
    structlog.contextvars.clear_contextvars()
    logs.forget_ticket_texts()


def secret_settings(**kw: Any) -> Settings:
    return Settings(
        sentry_dsn=DSN,
        database_url=f"postgresql://postgres:{DB_PASSWORD}@db.example.com:5432/tickets",
        supabase_key=SERVICE_KEY,
        **kw,
    )


class QuotingStore(FakeStore):
    """A store that refuses the write with an error quoting the row (as a database may)."""

    def apply(self, caller: Any, results: Any) -> dict[str, int]:
        raise RuntimeError(
            f"row refused: ({TEXT}) via postgresql://postgres:{DB_PASSWORD}@db/x key {SERVICE_KEY}"
        )


class QuotingModel(FakeModel):
    def predict_proba(self, texts: list[str]) -> Any:
        raise ValueError(f"cannot featurize {texts!r}")


def test_an_error_report_holds_the_error_and_no_ticket_text_secret_or_local_variable(
    transport: Captured,
) -> None:
    # given Sentry on, and a worker's task context
    assert sentry.init(secret_settings(), {}, process="worker", transport=transport)
    structlog.contextvars.bind_contextvars(task_id="task-9", worker="host:9")
    store = QuotingStore([ticket("1", TEXT), ticket("2", TEXT.upper())])
    # when the model fails on errors quoting the texts, and the store on one quoting secrets
    with pytest.raises(RuntimeError) as raised:
        classify_batch(
            store, Models(QuotingModel(version="v3")), Settings(), worker="host:9", limit=9
        )
    # and the failure is reported up the stack, as Celery's integration and a log line do
    sentry_sdk.capture_exception(raised.value)
    logging.getLogger("causa.test").error("apply failed: %s (%s)", raised.value, TEXT)
    sentry_sdk.get_client().flush()
    # then the events name the error and carry the tags, and hold nothing private
    events = transport.items("event")
    assert len(events) == 2
    report = events[0]
    assert report["exception"]["values"][-1]["type"] == "RuntimeError"
    assert logs.TICKET_TEXT in report["exception"]["values"][-1]["value"]
    assert report["tags"]["worker"] == "host:9" and report["tags"]["model_version"] == "v3"
    assert report["tags"]["task_id"] == "task-9" and report["tags"]["process"] == "worker"
    frames = [f for v in report["exception"]["values"] for f in v["stacktrace"]["frames"]]
    assert frames and not any("vars" in f for f in frames)
    raw = transport.raw()
    everything = json.dumps([transport.items("event")], ensure_ascii=False)
    for private in (TEXT, TEXT.upper(), "María", "mgarcia", DB_PASSWORD, SERVICE_KEY):
        assert private not in raw and private not in everything, private


def test_breadcrumbs_are_scrubbed_too(transport: Captured) -> None:
    sentry.init(secret_settings(), {}, process="worker", transport=transport)
    logs.hide_ticket_texts([TEXT])
    logging.getLogger("celery.worker.consumer").warning(
        "Connected to postgresql://postgres:%s@db/x about %s", DB_PASSWORD, TEXT
    )
    sentry_sdk.capture_message("something")
    sentry_sdk.get_client().flush()
    (event,) = transport.items("event")
    crumbs = json.dumps(event["breadcrumbs"], ensure_ascii=False)
    assert "Connected to" in crumbs
    assert DB_PASSWORD not in crumbs and TEXT not in crumbs


def test_without_a_dsn_nothing_starts(transport: Captured) -> None:
    assert not sentry.init(Settings(), {}, process="worker", transport=transport)
    assert not sentry_sdk.get_client().is_active()


def beat_check_ins(transport: Captured, poll_interval: float) -> dict[str, dict[str, Any]]:
    """The check-ins Sentry receives when beat applies each schedule of causa's app once."""
    settings = secret_settings(redis_url="memory://", poll_interval=poll_interval)
    app = make_app(settings)
    sentry.init(settings, app.conf.beat_schedule, process="beat", transport=transport)
    scheduler = Scheduler(app, lazy=False)
    for name in app.conf.beat_schedule:
        scheduler.apply_entry(scheduler.schedule[name])
    sentry_sdk.get_client().flush()
    return {c["monitor_slug"]: c for c in transport.items("check_in")}


def test_beat_reports_each_schedule_as_a_crons_monitor(transport: Captured) -> None:
    # given a poll every minute: a schedule Sentry Crons can represent
    check_ins = beat_check_ins(transport, poll_interval=60)
    # then each schedule applied checks in, with its schedule as the monitor's configuration
    poll = check_ins["poll-pending"]
    assert poll["status"] == "in_progress"
    assert poll["monitor_config"]["schedule"] == {"type": "interval", "value": 1, "unit": "minute"}
    assert check_ins["retrain"]["monitor_config"]["schedule"]["type"] == "crontab"


def test_a_poll_more_often_than_a_minute_is_left_out_of_crons(transport: Captured) -> None:
    # Sentry Crons knows whole minutes only: the default 5 s poll is excluded, not warned about
    check_ins = beat_check_ins(transport, poll_interval=5)
    assert "poll-pending" not in check_ins and "retrain" in check_ins
