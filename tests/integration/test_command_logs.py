"""Every command sets logging up the same way, at its start: with CAUSA_LOG_FILE and
CAUSA_LOG_JSON each command writes JSON lines to the file (the first names the command), and
the secrets of the environment never reach it.

The commands run in this process (CliRunner), one after the other on one log file: logging
set up by one stays in place for the next, so each is checked on the lines it added.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog
from typer.testing import CliRunner

from shared import logs
from tests.helpers import demo_rows, insert, write_csv
from worker.cli import app

SECRET = "flower-pw-Zq81xKv3"  # a secret setting's value
# Commands that need no server of their own and finish in seconds with the suite's fixtures
# (worker, beat, listen, flower, up, down, demo, mlflow-ui serve until stopped: the worker,
# beat and listener write the log file in tests/e2e/test_log_secrets.py).
CHANNELS = (
    "NOTIFY_URLS",
    "CAUSA_NOTIFY_URLS",
    "SLACK_WEBHOOK_URL",
    "DISCORD_WEBHOOK_URL",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_CHAT_ID",
    "SMTP_HOST",
    "EMAIL_TO",
)


@pytest.fixture
def log_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "logs" / "causa.log"
    monkeypatch.setenv("CAUSA_LOG_FILE", str(path))
    monkeypatch.setenv("CAUSA_LOG_JSON", "true")
    monkeypatch.setenv("CAUSA_FLOWER_PASSWORD", SECRET)
    for name in CHANNELS:
        monkeypatch.delenv(name, raising=False)
    # The secret in every line the commands log, as a secret in an error message would be.
    structlog.contextvars.bind_contextvars(probe=f"flower password {SECRET}")
    yield path
    structlog.contextvars.unbind_contextvars("probe")
    logs.configure(level="INFO", json=True)  # closes the file before tmp_path goes


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def test_every_command_writes_the_log_file_redacted(
    log_file: Path, conn: psycopg.Connection[Any], rt: Any, model: Path, tmp_path: Path
) -> None:
    insert(conn, demo_rows(20))
    data = write_csv(tmp_path / "tickets.csv", 1200, seed=3)
    commands: list[tuple[list[str], str, set[int]]] = [
        (["migrate", "--print"], "causa migrate", {0}),
        (["status", "--json"], "causa status", {0}),
        (["models"], "causa models", {0}),
        (["predict", "la impresora no imprime"], "causa predict", {0}),
        (["evaluate", "--data", str(data)], "causa evaluate", {0}),
        (["health"], "causa health", {0}),
        (["notify-test"], "causa notify-test", {1}),  # no channel configured: says so
        (["admin", "requeue-failed"], "causa admin requeue-failed", {0}),
        (["admin", "drift"], "causa admin drift", {0}),
        (
            ["train", "--bootstrap", "--force", "--no-tickets", "--data", str(data)],
            "causa train",
            {0},
        ),
        (["rollback"], "causa rollback", {0}),
    ]
    runner = CliRunner()
    for args, command, codes in commands:
        before = len(lines(log_file))
        result = runner.invoke(app, args)
        assert result.exit_code in codes, f"{command}: {result.output}"
        added = lines(log_file)[before:]
        assert added, f"{command} wrote nothing to CAUSA_LOG_FILE"
        records = [json.loads(line) for line in added]  # every line JSON
        started = [r for r in records if r.get("event") == "command started"]
        assert [r["command"] for r in started] == [command], f"{command}: {records}"
        assert started[0]["probe"] == f"flower password {logs.REDACTED}", started[0]
        assert SECRET not in log_file.read_text(encoding="utf-8"), f"{command} leaked it"
        assert "command started" not in result.output, "that line is for the file only"
