from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.settings import ConfigError, Settings, load_settings, timing_problems
from worker.app import make_app


def test_supabase_key_is_read_under_either_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY", raising=False)
    monkeypatch.setenv("SUPABASE_KEY", "legacy-name-key")
    key = Settings().supabase_key
    assert key is not None
    assert key.get_secret_value() == "legacy-name-key"


def test_prefixed_settings_and_conventional_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAUSA_BATCH_SIZE", "250")
    monkeypatch.setenv("CAUSA_MODE", "suggest")
    s = Settings()
    assert (s.batch_size, s.mode) == (250, "suggest")


@pytest.mark.parametrize(
    "field,value",
    [("table", "tickets; drop table x"), ("cause_column", "bad-name"), ("text_columns", "a,,b c")],
)
def test_unsafe_names_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate({field: value})


def test_missing_database_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ConfigError, match=r"set DATABASE_URL.*causa up"):
        Settings(database_url=None).require_database_url()


def test_urls_of_a_running_causa_up_are_used_only_when_nothing_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "services.env").write_text(
        "DATABASE_URL=postgresql://x@/db\nREDIS_URL=redis://y/0\n"
    )
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    s = load_settings(home=tmp_path)
    assert s.require_database_url() == "postgresql://x@/db"
    monkeypatch.setenv("DATABASE_URL", "postgresql://mine@/real")
    assert load_settings(home=tmp_path).require_database_url() == "postgresql://mine@/real"


def test_default_timing_satisfies_the_reliability_rules() -> None:
    # DESIGN.md: longest backoff and hard time limit < lease < visibility timeout
    s = Settings()
    assert timing_problems(s) == []
    assert s.longest_backoff < s.lease_seconds
    assert s.task_time_limit < s.lease_seconds < s.visibility_timeout
    conf = make_app(s).conf
    assert conf.task_time_limit < s.lease_seconds
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > s.lease_seconds
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.accept_content == ["json"] and conf.worker_prefetch_multiplier == 1
    for entry in conf.beat_schedule.values():  # no countdown or ETA beyond the visibility timeout
        options = entry.get("options", {})
        assert options.get("countdown", 0) < s.visibility_timeout
        assert options.get("expires", 0) < s.visibility_timeout


@pytest.mark.parametrize(
    "change,problem",
    [
        ({"lease_seconds": 60, "task_time_limit": 90}, "CAUSA_TASK_TIME_LIMIT"),
        ({"lease_seconds": 10, "task_time_limit": 5, "retry_max": 8.0}, "retry"),
        (
            {"lease_seconds": 4000, "visibility_timeout": 3600, "task_time_limit": 60},
            "CAUSA_VISIBILITY_TIMEOUT",
        ),
    ],
)
def test_broken_timing_is_named(change: dict[str, object], problem: str) -> None:
    problems = timing_problems(Settings.model_validate(change))
    assert any(problem in p for p in problems), problems


def test_an_empty_value_counts_as_unset_as_env_example_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # given empty values in the environment and in .env (NAME=)
    monkeypatch.setenv("CAUSA_MODE", "")
    monkeypatch.setenv("SMTP_HOST", "")
    monkeypatch.delenv("CAUSA_BATCH_SIZE", raising=False)
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    (tmp_path / ".env").write_text("CAUSA_BATCH_SIZE=\nSENTRY_DSN=\n")
    monkeypatch.chdir(tmp_path)

    # then each is unset: the default, or None
    s = Settings()
    defaults = Settings.model_fields
    assert s.mode == defaults["mode"].default == "apply"
    assert s.smtp_host is None
    assert s.batch_size == defaults["batch_size"].default
    assert s.sentry_dsn is None

    # and .env.example, which users copy to .env, says so (not that an empty value is a value)
    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    comments = " ".join(line.lstrip("# ") for line in example.splitlines() if line.startswith("#"))
    assert "empty value is a value" not in comments
    assert "NAME=" in comments and "counts as unset" in comments


def test_a_secret_left_at_the_placeholder_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "change-me")
    monkeypatch.setenv("CAUSA_FLOWER_PASSWORD", "change-me-to-a-long-random-string")
    with pytest.raises(ConfigError, match=r"CAUSA_FLOWER_PASSWORD, SMTP_PASSWORD still hold"):
        load_settings()
