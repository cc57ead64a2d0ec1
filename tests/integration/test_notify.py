"""Notifications reach real receivers: e-mail a real SMTP server (aiosmtpd, with SMTP AUTH);
Slack, Discord and Telegram a local HTTP receiver. Those three are hosted services that
cannot run here, so they are mocked at the HTTP boundary: the plugin's endpoint attribute
points at the receiver, and everything up to the HTTP request is Apprise's real code.
Throttling runs against the suite's real Redis."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from apprise.plugins.discord import NotifyDiscord
from apprise.plugins.slack import NotifySlack
from apprise.plugins.telegram import NotifyTelegram
from redis.backoff import NoBackoff
from redis.retry import Retry
from typer.testing import CliRunner

from shared import notify
from shared.notify import Notifier
from shared.settings import Settings
from tests.helpers import wait_for
from worker.cli import app
from worker.services import free_port

SLACK = "https://hooks.slack.com/services/T0CAUSA/B0CAUSA/slackSECRETtoken42"
DISCORD = "https://discord.com/api/webhooks/112233445566/discord-SECRET_token"
TELEGRAM_TOKEN = "123456789:telegram-SECRET_token"
TELEGRAM_CHAT = "-1001234567890"
SECRETS = ("slackSECRETtoken42", "discord-SECRET_token", "telegram-SECRET_token", "smtpSECRET")
CHANNEL_VARS = (
    "NOTIFY_URLS",
    "CAUSA_NOTIFY_URLS",
    "SLACK_WEBHOOK_URL",
    "DISCORD_WEBHOOK_URL",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_CHAT_ID",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USER",
    "SMTP_PASSWORD",
    "EMAIL_FROM",
    "EMAIL_TO",
)
POLL_S = 0.05  # the receiver notices shutdown this fast
NO_CHANNELS: dict[str, Any] = {name.lower(): None for name in CHANNEL_VARS[2:]}
NO_CHANNELS.update(notify_urls="", smtp_port=587)


def only(**values: Any) -> Settings:
    """Settings with exactly these notification channels, whatever the environment holds."""
    return Settings(**{**NO_CHANNELS, **values})


# --- a local HTTP receiver -------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    body: Any  # the JSON document posted


@dataclass
class Receiver:
    url: str
    requests: list[Request] = field(default_factory=list)
    status: int = 200  # what it answers


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _receiver()


@pytest.fixture
def broken_receiver() -> Iterator[Receiver]:
    """Answers every request with 500."""
    yield from _receiver(status=500)


def _receiver(status: int = 200) -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    got = Receiver(f"http://127.0.0.1:{server.server_port}", status=status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got.requests.append(Request("POST", self.path, json.loads(raw)))
            self.send_response(got.status)
            self.end_headers()
            self.wfile.write(b"ok")  # what Slack's webhook answers

        def log_message(self, *args: Any) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, args=(POLL_S,), daemon=True)
    thread.start()
    yield got
    server.shutdown()
    server.server_close()


def point_plugins_at(monkeypatch: pytest.MonkeyPatch, slack: str, discord: str, tgram: str) -> None:
    """Apprise 2.3.0's endpoint attributes for Slack webhooks, Discord and the Telegram Bot API."""
    monkeypatch.setattr(NotifySlack, "webhook_url", f"{slack}/services")
    monkeypatch.setattr(NotifyDiscord, "notify_url", f"{discord}/api/webhooks")
    monkeypatch.setattr(NotifyTelegram, "notify_url", f"{tgram}/bot")


@pytest.fixture
def captured_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """causa.notify's structlog events (a fresh logger: another test may have cached one)."""
    for module in (notify.send, notify.throttle):  # the modules of shared.notify that log
        monkeypatch.setattr(module, "log", structlog.get_logger("causa.notify"))
    with structlog.testing.capture_logs() as logs:
        yield logs


# --- e-mail ------------------------------------------------------------------------------------


@dataclass
class Mailbox:
    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"causa",
            b"smtpSECRET",
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on 127.0.0.1 that requires AUTH (over plain text: no TLS here)."""
    box = Mailbox()
    port = free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=box.authenticate,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    yield box, port
    controller.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_arrives_at_a_real_smtp_server_with_login(smtp: tuple[Mailbox, int]) -> None:
    # given SMTP_* and EMAIL_* pointing at a local relay that requires a login
    box, port = smtp
    s = only(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_user="causa",
        smtp_password="smtpSECRET",
        email_from="causa@example.com",
        email_to="ops@example.com, oncall@example.org",
    )
    # when an event is sent
    sent = Notifier(s).send(
        "model.promoted", "model 2024-05-01 in service", "macro-F1 0.912 vs 0.887", level="success"
    )
    # then each recipient gets it, after a login, from EMAIL_FROM
    assert sent is True
    wait_for(lambda: len(box.envelopes) == 2, timeout=10, what="two e-mails")
    assert box.logins == ["causa"]
    assert sorted(r for e in box.envelopes for r in e.rcpt_tos) == [
        "oncall@example.org",
        "ops@example.com",
    ]
    for envelope in box.envelopes:
        assert envelope.mail_from == "causa@example.com"
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        assert message["Subject"] == "[model.promoted] model 2024-05-01 in service"
        part = message.get_body(("plain",))
        assert part is not None and "macro-F1 0.912 vs 0.887" in part.get_content()


# --- webhooks ------------------------------------------------------------------------------


def test_slack_discord_and_telegram_send_what_their_apis_expect(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_plugins_at(monkeypatch, receiver.url, receiver.url, receiver.url)
    s = only(
        slack_webhook_url=SLACK,
        discord_webhook_url=DISCORD,
        telegram_bot_token=TELEGRAM_TOKEN,
        telegram_chat_id=TELEGRAM_CHAT,
    )
    sent = Notifier(s).send(
        "training.failed", "retraining stopped", "no labelled tickets", level="failure"
    )
    assert sent is True
    by_path = {r.path: r for r in receiver.requests}
    assert set(by_path) == {
        "/services/T0CAUSA/B0CAUSA/slackSECRETtoken42",
        "/api/webhooks/112233445566/discord-SECRET_token",
        f"/bot{TELEGRAM_TOKEN}/sendMessage",
    }
    for request in receiver.requests:
        text = json.dumps(request.body)
        assert "[training.failed] retraining stopped" in text
        assert "no labelled tickets" in text
    telegram = by_path[f"/bot{TELEGRAM_TOKEN}/sendMessage"].body
    assert str(telegram["chat_id"]) == TELEGRAM_CHAT


def test_a_failing_channel_never_raises_and_the_others_still_get_it(
    receiver: Receiver,
    broken_receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    captured_logs: list[Any],
) -> None:
    # given Slack answering 500, Telegram unreachable, Discord fine
    closed = f"http://127.0.0.1:{free_port()}"
    point_plugins_at(monkeypatch, slack=broken_receiver.url, discord=receiver.url, tgram=closed)
    s = only(
        slack_webhook_url=SLACK,
        discord_webhook_url=DISCORD,
        telegram_bot_token=TELEGRAM_TOKEN,
        telegram_chat_id=TELEGRAM_CHAT,
    )
    caplog.set_level(logging.DEBUG)
    # when
    sent = Notifier(s).send("db.unreachable", "database down", "3 failures in a row")
    # then: False, no exception, Discord has it
    assert sent is False
    assert len(receiver.requests) == 1 and len(broken_receiver.requests) == 1
    failed = sorted(e["channel"] for e in captured_logs if e["event"] == "notify.channel_failed")
    assert failed == ["Slack", "Telegram"]
    # and neither causa's log nor Apprise's (even at DEBUG) holds a token
    assert any(r.name == "apprise" and r.levelno >= logging.WARNING for r in caplog.records)
    assert all(r.levelno >= logging.WARNING for r in caplog.records if r.name == "apprise")
    logged = caplog.text + repr(captured_logs)
    assert not [secret for secret in SECRETS if secret in logged]


# --- throttling ----------------------------------------------------------------------------


def test_the_same_key_goes_out_once_per_period_across_processes(
    receiver: Receiver, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_plugins_at(monkeypatch, receiver.url, receiver.url, receiver.url)
    s = only(discord_webhook_url=DISCORD)
    first, second = (
        Notifier(s, redis.Redis.from_url(redis_url)),
        Notifier(s, redis.Redis.from_url(redis_url)),
    )
    assert first.send("worker.error", "ValueError in classify", "x", key="err:ValueError") is True
    assert second.send("worker.error", "ValueError in classify", "x", key="err:ValueError") is False
    assert len(receiver.requests) == 1
    ttl = redis.Redis.from_url(redis_url).ttl("causa:notify:err:ValueError")
    assert 0 < ttl <= s.notify_every
    # another key, or no key, is not held back
    assert second.send("worker.error", "KeyError in classify", "x", key="err:KeyError") is True
    assert second.send("training.started", "training", "x") is True
    assert len(receiver.requests) == 3


def test_with_redis_unreachable_the_fallback_still_sends_once(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, captured_logs: list[Any]
) -> None:
    point_plugins_at(monkeypatch, receiver.url, receiver.url, receiver.url)
    # no retries: redis-py's default policy would spend ~4 s per call before failing
    down = redis.Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    notifier = Notifier(only(discord_webhook_url=DISCORD), down)
    assert notifier.send("broker.unreachable", "Redis down", "x", key="redis-down") is True
    assert notifier.send("broker.unreachable", "Redis down", "x", key="redis-down") is False
    assert len(receiver.requests) == 1
    assert any(e["event"] == "notify.throttle_fallback" for e in captured_logs)


# --- causa notify-test -----------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def env(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CAUSA_HOME", str(settings.home))
    for name in CHANNEL_VARS:
        monkeypatch.delenv(name, raising=False)
    return settings


def test_notify_test_lists_every_channel_and_its_outcome(
    env: Any, receiver: Receiver, broken_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_plugins_at(monkeypatch, receiver.url, receiver.url, receiver.url)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", SLACK)
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", DISCORD)
    ok = runner.invoke(app, ["notify-test"])
    assert ok.exit_code == 0, ok.output
    lines = ok.output.splitlines()
    assert any(
        line.split() == ["slack", "slack://***", "SLACK_WEBHOOK_URL", "ok"] for line in lines
    )
    assert any(
        line.split() == ["discord", "discord://***", "DISCORD_WEBHOOK_URL", "ok"] for line in lines
    )
    assert len(receiver.requests) == 2
    assert "notify-test" in json.dumps(receiver.requests[0].body)
    # a channel that fails makes the command fail, and says which
    point_plugins_at(monkeypatch, receiver.url, broken_receiver.url, receiver.url)
    failing = runner.invoke(app, ["notify-test"])
    assert failing.exit_code == 1
    assert any(
        line.split()[-2:] == ["DISCORD_WEBHOOK_URL", "FAILED"]
        for line in failing.output.splitlines()
    )
    assert not [secret for secret in SECRETS if secret in ok.output + failing.output]


def test_notify_test_without_channels_or_with_a_bad_one_says_what_to_set(
    env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    nothing = runner.invoke(app, ["notify-test"])
    assert nothing.exit_code == 1
    for name in ("NOTIFY_URLS", "SLACK_WEBHOOK_URL", "TELEGRAM_CHAT_ID", "SMTP_HOST", "EMAIL_TO"):
        assert name in nothing.output
    monkeypatch.setenv("SMTP_HOST", "smtp.example.com")
    bad = runner.invoke(app, ["notify-test"])
    assert bad.exit_code == 2
    assert "SMTP_HOST is set but EMAIL_TO is not" in bad.output
