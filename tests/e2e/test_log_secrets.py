"""An end-to-end run with every kind of secret set: no secret reaches any log line (the log
file, its rotated backups, every process's output) nor Sentry, while the log does hold the
per-ticket lines; and beat's poll reaches Sentry Crons (beat checks in, the worker closes it)."""

from __future__ import annotations

import gzip
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from sentry_sdk.envelope import Envelope

from tests.e2e.cluster import cluster
from tests.helpers import demo_rows, insert, statuses, wait_for

DB_PASSWORD = "Pg-Secret-Pw-4711"  # the test server trusts every password
SERVICE_KEY = (  # a fake service-role JWT
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIiwiaXNzIjoiZTJlIn0"
    ".ZmFrZS1zaWduYXR1cmUtZm9yLWNhdXNhLWUyZQ"
)
SECRETS = {
    "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY,
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0CAUSA1/B0CAUSA2/SlackSecretHook9876",
    "TELEGRAM_BOT_TOKEN": "123456789:AAtelegramSecretToken_e2e_4711xyz",
    "SMTP_PASSWORD": "Smtp-Secret-Pw-4711",
    "CAUSA_FLOWER_PASSWORD": "Flower-Secret-Pw-4711",
}
NOT_SECRET = {
    "TELEGRAM_CHAT_ID": "-1001234567890",
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": "9",  # discard: nothing is meant to be sent
    "SMTP_USER": "causa",
    "EMAIL_FROM": "causa@example.com",
    "EMAIL_TO": "oncall@example.com",
}


class Receiver(ThreadingHTTPServer):
    """Sentry's ingest endpoint, locally: keeps every envelope posted to it."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Ingest)
        self.envelopes: list[Envelope] = []
        self.raw: list[bytes] = []

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.server_address[1]}/1"

    def items(self, kind: str) -> list[dict[str, Any]]:
        return [
            json.loads(item.get_bytes())
            for e in list(self.envelopes)
            for item in e.items
            if item.type == kind
        ]


class Ingest(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path.rstrip("/").endswith("/api/1/envelope"):
            self.server.raw.append(body)
            self.server.envelopes.append(Envelope.deserialize(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sentry_receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url_with_password(conninfo: str, password: str) -> str:
    """The suite's database as a URL that carries a password."""
    parts = conninfo_to_dict(conninfo)
    host, port = parts.get("host", "127.0.0.1"), parts.get("port", "5432")
    user, db = parts.get("user", "postgres"), parts["dbname"]
    if str(host).startswith("/"):  # the embedded server's unix socket
        return f"postgresql://{user}:{password}@/{db}?host={host}&port={port}"
    return f"postgresql://{user}:{password}@{host}:{port}/{db}"


def every_log_line(*places: Path) -> list[str]:
    lines: list[str] = []
    for place in places:
        for path in sorted(place.iterdir()):
            if path.name.endswith(".log") or ".log." in path.name:
                if path.suffix == ".gz":
                    text = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
                elif path.suffix == ".lock":
                    continue
                else:
                    text = path.read_bytes().decode("utf-8", "replace")
                lines += text.splitlines()
    return lines


def test_no_secret_reaches_any_log_line_or_sentry_and_beat_checks_in_with_crons(
    conn: psycopg.Connection[Any],
    model: Path,
    redis_url: str,
    tmp_path: Path,
    sentry_receiver: Receiver,
) -> None:
    # given every secret causa knows set, a log file that rotates often, DEBUG everywhere,
    # Sentry pointed at a local receiver, and a poll every minute (Crons' smallest interval)
    database_url = url_with_password(os.environ["DATABASE_URL"], DB_PASSWORD)
    log_file = tmp_path / "file" / "causa.log"
    env = {
        **SECRETS,
        **NOT_SECRET,
        "DATABASE_URL": database_url,
        "SENTRY_DSN": sentry_receiver.dsn,
        "CAUSA_LOG_FILE": str(log_file),
        "CAUSA_LOG_MAX_BYTES": "16384",  # rotates several times, shared by every process
        "CAUSA_LOG_BACKUPS": "50",
        "CAUSA_LOG_LEVEL": "DEBUG",
        "CAUSA_POLL_INTERVAL": "60",
    }
    with cluster(tmp_path, model, "worker", "beat", "listener", **env):
        # when tickets arrive (the listener's path classifies them)
        insert(conn, demo_rows(200))
        wait_for(
            lambda: (
                sum(statuses(conn).values()) == 200
                and statuses(conn).keys() <= {"classified", "needs_review"}
            ),
            timeout=120,
            what="200 tickets classified",
        )
        # and beat's first poll, a minute after it started, runs on the worker
        check_ins = wait_for(
            lambda: (
                {
                    c["status"]
                    for c in sentry_receiver.items("check_in")
                    if c["monitor_slug"] == "poll-pending"
                }
                >= {"in_progress", "ok"}
                and sentry_receiver.items("check_in")
            ),
            timeout=120,
            what="beat's and the worker's check-ins for poll-pending",
        )
    assert check_ins  # wait_for returns the condition's truthy value: the check-ins
    # then Sentry Crons saw the poll with its schedule, opened by beat and closed by the worker
    poll = [c for c in check_ins if c["monitor_slug"] == "poll-pending"]
    assert poll[0]["monitor_config"]["schedule"] == {
        "type": "interval",
        "value": 1,
        "unit": "minute",
    }
    assert len({c["check_in_id"] for c in poll}) >= 1
    # and no log line anywhere holds a secret or the database password
    lines = every_log_line(tmp_path, log_file.parent)
    secrets = [*SECRETS.values(), DB_PASSWORD, database_url, sentry_receiver.dsn]
    for secret in secrets:
        leaks = [line for line in lines if secret in line]
        assert not leaks, f"{secret!r} leaked into the log: {leaks[:3]}"
    # nor anything sent to Sentry (which is told its own DSN, and only that)
    sent = b"\n".join(sentry_receiver.raw).decode("utf-8", "replace")
    for secret in [*SECRETS.values(), DB_PASSWORD, database_url]:
        assert secret not in sent
    # and the check is not vacuous: the file has every ticket's line with its context
    rows = [json.loads(line) for line in every_log_line(log_file.parent)]
    per_ticket = [r for r in rows if r.get("event") == "ticket classified"]
    assert {r["number"] for r in per_ticket} == {
        r[0] for r in conn.execute("SELECT number FROM tickets")
    }
    for r in per_ticket:
        assert r["task_id"] and r["worker"] and r["model_version"]
    assert any(r.get("logger", "").startswith("celery") and r.get("task_id") for r in rows)
    assert list(log_file.parent.glob("causa.log.*.gz")), "the shared file rotated"
    assert any(line.startswith("{") for line in (tmp_path / "worker.log").read_text().splitlines())
