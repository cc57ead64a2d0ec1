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


ONLINE = re.compile(r"-- causa:online-start\n(.*?)-- causa:online-end\n", re.S)
BACKFILL_BATCH = 5000  # rows per backfill transaction: short row locks on a live table
BACKFILL = """
UPDATE {table} SET causa_source = 'human', classification_status = 'labelled'
 WHERE ctid IN (SELECT ctid FROM {table} WHERE {cause} IS NOT NULL AND causa_source IS NULL
                 LIMIT {batch} FOR UPDATE SKIP LOCKED)
"""
INDEX = re.compile(r"CREATE INDEX IF NOT EXISTS (\w+) ON (.*?);", re.S)


def _online(conn: psycopg.Connection[Any], settings: Settings, part: str) -> None:
    """The backfill in batches, then each index CONCURRENTLY (a failed earlier build leaves
    an invalid index: it is dropped and built again)."""
    table, cause = _quoted(settings.table), _quoted(settings.cause_column)
    while conn.execute(BACKFILL.format(table=table, cause=cause, batch=BACKFILL_BATCH)).rowcount:
        pass
    for name, rest in INDEX.findall(part):
        invalid = conn.execute(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname = %s AND NOT i.indisvalid",
            [name],
        ).fetchone()
        if invalid:
            conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        conn.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {rest}")


def migrate(conn: psycopg.Connection[Any], settings: Settings, *, uninstall: bool = False) -> None:
    """Apply the rendered SQL: columns, functions and triggers in one transaction, then the
    backfill and the indexes online (`conn` must be in autocommit). Or remove it all.
    Harmless to run again."""
    check_table(conn, settings)
    if uninstall:
        with conn.transaction():
            conn.execute(render(settings, "uninstall.sql").encode())
        return
    sql_text = render(settings)
    online = ONLINE.search(sql_text)
    assert online is not None, "schema.sql lost its online section markers"
    with conn.transaction():
        conn.execute(ONLINE.sub("", sql_text).encode())
    _online(conn, settings, online.group(1))
