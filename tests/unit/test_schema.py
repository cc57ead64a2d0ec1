from __future__ import annotations

from pathlib import Path

import pytest

from shared import queries, schema
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_migration_is_the_template_rendered_for_the_defaults() -> None:
    # given the defaults; then supabase/migrations holds exactly what `causa migrate --print` says
    files = sorted((ROOT / "supabase" / "migrations").glob("*_causa_queue.sql"))
    assert files, "supabase/migrations/<timestamp>_causa_queue.sql is missing"
    assert files[-1].read_text() == schema.render(Settings()), (
        "re-render it: causa migrate --print > " + str(files[-1].relative_to(ROOT))
    )


def test_configured_names_are_quoted_everywhere() -> None:
    sql = schema.render(
        Settings(
            table="help.Tickets_Fiducia",
            number_column="Number",
            text_columns="short_description,close_notes",
        )
    )
    assert '"help"."Tickets_Fiducia"' in sql
    assert 'concat_ws(\' \', t."short_description", t."close_notes")' in sql
    assert "{{" not in sql


def test_the_notification_channel_is_written_once() -> None:
    # given the defaults; then the trigger notifies on schema.CHANNEL, the listener's channel
    assert f"pg_notify('{schema.CHANNEL}', v_count::text)" in schema.render(Settings())


def test_schema_sql_is_cut_into_checks_versioned_steps_repeatable_and_online_parts() -> None:
    # given the rendered schema; when it is cut at its `-- causa:` markers
    parts = schema.parts(schema.render(Settings(cause_column="Causa")))
    # then the versioned steps are numbered from 1, in order, each recording its own version
    assert list(parts.steps) == list(range(1, len(parts.steps) + 1))
    for version, body in parts.steps.items():
        assert f"INSERT INTO causa.migrations (version, name) VALUES ({version}," in body
    # and the checks run first, the functions in the repeatable part, the index online
    assert "CREATE SCHEMA IF NOT EXISTS causa" in parts.checks
    assert "CREATE OR REPLACE FUNCTION public.causa_claim(" in parts.repeatable
    assert schema.INDEX.findall(parts.online) == [
        ("causa_labelled_idx", '"tickets" ("number") WHERE "Causa" IS NOT NULL')
    ]


def test_without_result_columns_the_sql_never_writes_them() -> None:
    # given result columns off; then every write of a causa_ column sits behind `IF false`
    # (PL/pgSQL plans a statement only when it runs) and the requeue resets none of them
    rendered = schema.render(Settings(result_columns=False))
    assert "IF true THEN" not in rendered and "IF false THEN" in rendered
    assert "causa_status = NULL, causa_source = NULL" not in rendered


def test_named_queries_are_found_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given the .sql files of causa's packages; then each query is there by name
    assert {"table_oid", "invalid_index", "applied_steps"} <= set(
        queries.load("shared", "sql/queries.sql")
    )
    demo = queries.load("worker.demodata", "demo.sql")
    assert demo["run_summary"].startswith("SELECT count(*) AS tickets,")
    # and a name the file does not have is an error that says where it looked
    with pytest.raises(KeyError, match=r"no query named 'nope' in worker\.demodata/demo\.sql"):
        demo["nope"]
    # given files without a description, with SQL before the first name, or a name twice
    package = tmp_path / "sqlfiles"
    package.mkdir()
    (package / "__init__.py").write_text("")
    bad = {
        "bare.sql": "-- name: a\nSELECT 1\n",
        "loose.sql": "SELECT 0;\n-- name: a\n-- the first\nSELECT 1\n",
        "twice.sql": "-- name: a\n-- one\nSELECT 1\n-- name: a\n-- two\nSELECT 2\n",
    }
    for filename, text in bad.items():
        (package / filename).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    # then each is refused when loaded
    for filename in bad:
        with pytest.raises(ValueError, match=f"sqlfiles/{filename}"):
            queries.load("sqlfiles", filename)


def test_every_status_the_sql_writes_or_compares_is_one_of_the_contract() -> None:
    import re
    from importlib import resources

    from shared.contract import Status

    sql = resources.files("shared").joinpath("sql/schema.sql").read_text()
    compared = re.findall(
        r"(?:classification_status|status)\s*(?:=|:=|IN)\s*\(?\s*('\w+'(?:\s*,\s*'\w+')*)", sql
    )
    literals = {w for part in compared for w in re.findall(r"'(\w+)'", part)}
    assert literals >= {"pending", "claimed", "labelled", "failed"}, "the statuses were found"
    assert literals <= {s.value for s in Status}, literals - {s.value for s in Status}
