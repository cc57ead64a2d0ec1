"""`causa api-key` as an operator types it: a key is shown once and works, listed without its
secret, refused once revoked; bad names, scopes and limits are refused with what to do."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from flows import keys
from worker.cli import app

runner = CliRunner()


def test_a_key_is_shown_once_listed_without_its_secret_and_refused_once_revoked(
    conn: psycopg.Connection[Any], rt: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    made = runner.invoke(app, ["api-key", "create", "helpdesk", "--scope", "review", "--json"])
    assert made.exit_code == 0, made.output
    key = json.loads(made.output)
    assert key["scopes"] == ["predict", "review"] and key["key"].startswith(keys.KEY_START)
    assert keys.find(rt.store, key["key"]) == keys.Key("helpdesk", "review", None)
    listed = runner.invoke(app, ["api-key", "list"])
    assert "helpdesk" in listed.output and key["key"] not in listed.output
    stored = conn.execute("SELECT hash FROM causa.api_keys WHERE name = 'helpdesk'").fetchone()
    assert stored is not None and key["key"] not in stored[0]
    plain = runner.invoke(app, ["api-key", "create", "script", "--rate-limit", "10/second"])
    assert plain.exit_code == 0 and "shown only now" in plain.output
    assert runner.invoke(app, ["api-key", "revoke", "helpdesk"]).exit_code == 0
    assert keys.find(rt.store, key["key"]) is None
    again = runner.invoke(app, ["api-key", "revoke", "helpdesk"])
    assert again.exit_code != 0 and "no active API key named 'helpdesk'" in again.output
    as_json = json.loads(runner.invoke(app, ["api-key", "list", "--json"]).output)
    assert [(k["name"], k["revoked_at"] is not None) for k in as_json] == [
        ("helpdesk", True),
        ("script", False),
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["bad name!"], "not a key name"),
        (["ok", "--scope", "root"], "scope 'root' is not one of predict, review, admin"),
        (["ok", "--rate-limit", "lots"], "'lots' is not a rate limit"),
    ],
)
def test_bad_key_requests_are_refused_with_what_to_do(
    conn: psycopg.Connection[Any], rt: Any, args: list[str], says: str
) -> None:
    refused = runner.invoke(app, ["api-key", "create", *args])
    assert refused.exit_code != 0 and says in refused.output, refused.output
    assert rt.store.api_keys() == []


def test_a_second_key_of_the_same_name_is_refused(conn: psycopg.Connection[Any], rt: Any) -> None:
    assert runner.invoke(app, ["api-key", "create", "twice"]).exit_code == 0
    second = runner.invoke(app, ["api-key", "create", "twice"])
    assert second.exit_code != 0 and "exists already" in second.output
