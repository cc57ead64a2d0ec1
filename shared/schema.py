"""The SQL that makes a ticket table a queue: rendered for the configured names, applied."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from shared.settings import ConfigError, Settings

PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
CHANNEL = "causa_pending"


def _quoted(name: str) -> str:
    """A possibly schema-qualified name, each part double-quoted."""
    return ".".join(sql.Identifier(part).as_string() for part in name.split("."))


def render(settings: Settings, template: str = "schema.sql") -> str:
    """A template of shared/sql with the configured table and column names, quoted."""
    text_expr = (
        "concat_ws(' ', " + ", ".join(f"t.{_quoted(c)}" for c in settings.text_column_list) + ")"
    )
    values = {
        "table": _quoted(settings.table),
        "number": _quoted(settings.number_column),
        "cause": _quoted(settings.cause_column),
        "text": text_expr,
        "number_key": sql.Literal(settings.number_column).as_string(),
    }
    text = resources.files("shared").joinpath(f"sql/{template}").read_text()
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def check_table(conn: psycopg.Connection[Any], settings: Settings) -> None:
    """Stop with a clear message when the table or one of its columns is missing."""
    row = conn.execute("SELECT to_regclass(%s)::text", [_quoted(settings.table)]).fetchone()
    if row is None or row[0] is None:
        raise ConfigError(
            f"table {settings.table!r} not found in the database: create it, or set CAUSA_TABLE"
            " to the table that holds your tickets"
        )
    columns = {
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass"
            " AND attnum > 0 AND NOT attisdropped",
            [_quoted(settings.table)],
        )
    }
    wanted = {
        "CAUSA_NUMBER_COLUMN": [settings.number_column],
        "CAUSA_CAUSE_COLUMN": [settings.cause_column],
        "CAUSA_TEXT_COLUMNS": settings.text_column_list,
    }
    for setting, names in wanted.items():
        missing = [n for n in names if n not in columns]
        if missing:
            raise ConfigError(
                f"column(s) {', '.join(missing)} not found in table {settings.table!r}"
                f" (it has: {', '.join(sorted(columns))}): set {setting}"
            )


def migrate(conn: psycopg.Connection[Any], settings: Settings, *, uninstall: bool = False) -> None:
    """Apply the rendered SQL (or remove it all) in one transaction. Harmless to run again."""
    check_table(conn, settings)
    with conn.transaction():
        conn.execute(render(settings, "uninstall.sql" if uninstall else "schema.sql").encode())
