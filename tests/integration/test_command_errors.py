"""Errors a person can act on: a command run before `causa migrate` says to run it, and an
invalid setting is one line naming the variable, its value and what is allowed (exit code
2, no traceback unless asked for with --debug or CAUSA_LOG_LEVEL=DEBUG)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from typer.testing import CliRunner

from shared import retry
from shared.settings import Settings
from shared.store import not_installed
from worker import demodata
from worker.cli import app

NOT_INSTALLED = "causa is not installed in this database: run `causa migrate`"
runner = CliRunner()


def causa(*args: str, cwd: Path, **env: str) -> tuple[int, str]:
    """`causa ARGS` as a person runs it: a process of its own, stdout and stderr together."""
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,  # a worker that did not stop at once would run until killed
        cwd=cwd,  # no .env here
    )
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def unmigrated(
    database_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A database of its own with a ticket table and none of causa's columns or functions
    (the suite's database has them from other tests' migrations)."""
    name = f"{conninfo_to_dict(database_url)['dbname']}_bare_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(database_url, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(demodata.TABLE_SQL)
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("CAUSA_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("CAUSA_MODELS_DIR", str(tmp_path / "models"))
        yield url
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def labelled_csv(path: Path) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for t in demodata.generate(300, seed=5):
            w.writerow([f"{t.short_description} {t.description}", t.cause])
    return path


def test_not_installed_is_a_configuration_error_never_retried() -> None:
    error = not_installed(Settings(), "causa_claim")
    assert str(error).startswith(NOT_INSTALLED) and "tickets" in str(error)
    assert not retry.is_transient(error)


@pytest.mark.parametrize(
    "args",
    [["status"], ["train", "--data", "CSV"], ["admin", "requeue-failed"], ["admin", "drift"]],
    ids=lambda args: " ".join(args),
)
def test_a_command_before_migrate_says_to_run_it(
    unmigrated: str, tmp_path: Path, args: list[str]
) -> None:
    args = [str(labelled_csv(tmp_path / "t.csv")) if a == "CSV" else a for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {NOT_INSTALLED}"), result.output
    assert "table tickets" in errors[0]
    assert "Traceback" not in result.output and "does not exist" not in result.output


def test_health_before_migrate_says_to_run_it(unmigrated: str, tmp_path: Path) -> None:
    code, output = causa("health", cwd=tmp_path)
    assert code == 1, output
    assert output.splitlines() == [
        f"database: error: {NOT_INSTALLED} (table tickets; missing: causa_pending_count())",
        "broker: ok",
    ]


def test_a_worker_before_migrate_stops_at_once_and_says_to_run_it(
    unmigrated: str, tmp_path: Path
) -> None:
    code, output = causa("worker", cwd=tmp_path)
    assert code == 2, output
    assert f"error: {NOT_INSTALLED}" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "variable,value,says",
    [
        ("CAUSA_MODE", "apply ", "CAUSA_MODE='apply ' must be apply or suggest"),
        ("CAUSA_BATCH_SIZE", "20000", "CAUSA_BATCH_SIZE=20000 is above the maximum 10000"),
        ("CAUSA_LEASE_SECONDS", "1", "CAUSA_LEASE_SECONDS=1 is below the minimum 2"),
        ("CAUSA_POLL_INTERVAL", "0", "CAUSA_POLL_INTERVAL=0 must be above 0"),
        ("CAUSA_RETRAIN_CRON", "0 2 * *", "CAUSA_RETRAIN_CRON='0 2 * *' is not a cron expression"),
        ("CAUSA_TABLE", "tickets; drop", "CAUSA_TABLE='tickets; drop' is not a table name"),
        ("SMTP_PORT", "smtp", "SMTP_PORT='smtp' must be a valid integer"),
    ],
    ids=["literal", "maximum", "minimum", "above", "cron", "table", "alias"],
)
def test_an_invalid_setting_is_one_line_naming_it(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    code, output = causa("status", cwd=tmp_path, **{variable: value})
    assert code == 2, output
    assert output.splitlines() == [output.splitlines()[0]], f"one line: {output}"
    assert output.startswith(f"error: {says}"), output
    assert "Traceback" not in output


def test_every_command_names_an_invalid_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAUSA_BATCH_SIZE", "20000")
    for args in (
        ["status"],
        ["health"],
        ["train", "--no-tickets", "--data", "x.csv"],
        ["models"],
        ["migrate", "--print"],
        ["admin", "requeue-failed"],
        ["worker"],
        ["beat"],
        ["listen"],
        ["flower"],
        ["notify-test"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, f"{args}: {result.output}"
        assert result.output == "error: CAUSA_BATCH_SIZE=20000 is above the maximum 10000\n"


def test_the_traceback_is_shown_when_asked_for(tmp_path: Path) -> None:
    for args, env in (
        (["--debug", "status"], {}),
        (["status"], {"CAUSA_LOG_LEVEL": "DEBUG"}),
    ):
        code, output = causa(*args, cwd=tmp_path, CAUSA_MODE="fast", **env)
        assert code == 2, output
        assert "Traceback" in output and "ValidationError" in output
        assert (
            output.rstrip().splitlines()[-1] == "error: CAUSA_MODE='fast' must be apply or suggest"
        )


def test_help_needs_no_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAUSA_BATCH_SIZE", "20000")
    for args in (["status", "--help"], ["admin", "drift", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.output, result.output
