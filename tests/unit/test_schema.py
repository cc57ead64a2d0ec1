from __future__ import annotations

from pathlib import Path

from shared import schema
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
