"""The SQL that makes a ticket table a queue: rendered for the configured names, applied."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from shared import queries
from shared.settings import ConfigError, TicketTable

PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
CHANNEL = "causa_pending"


def _quoted(name: str) -> str:
    """A possibly schema-qualified name, each part double-quoted."""
    return ".".join(sql.Identifier(part).as_string() for part in name.split("."))


def _fill(text: str, values: dict[str, str]) -> str:
    """`text` with each double-braced placeholder replaced by its value."""
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _query(name: str, **values: str) -> str:
    """A named query of shared/sql/queries.sql, its placeholders filled with `values`."""
    return _fill(queries.load("shared", "sql/queries.sql")[name], values)


def render(settings: TicketTable, template: str = "schema.sql") -> str:
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
        "channel": sql.Literal(CHANNEL).as_string(),
    }
    return _fill(resources.files("shared").joinpath(f"sql/{template}").read_text(), values)


def check_table(conn: psycopg.Connection[Any], settings: TicketTable) -> None:
    """Stop with a clear message when the table or one of its columns is missing."""
    row = conn.execute(_query("table_oid"), [_quoted(settings.table)]).fetchone()
    if row is None or row[0] is None:
        raise ConfigError(
            f"table {settings.table!r} not found in the database: create it, or set CAUSA_TABLE"
            " to the table that holds your tickets"
        )
    columns = {r[0] for r in conn.execute(_query("table_columns"), [_quoted(settings.table)])}
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
BACKFILL = re.compile(r"^UPDATE (\S+)\s+SET (.*?)\s+WHERE (.*?);", re.S | re.M)
INDEX = re.compile(r"CREATE INDEX IF NOT EXISTS (\w+) ON (.*?);", re.S)
COMMENT = re.compile(r"--[^\n]*")


def _online(conn: psycopg.Connection[Any], part: str) -> None:
    """schema.sql's online section, run online: its backfill UPDATE in batches, then each
    index CONCURRENTLY (a failed earlier build leaves an invalid index: it is dropped and
    built again)."""
    unknown = COMMENT.sub("", INDEX.sub("", BACKFILL.sub("", part))).strip()
    assert not unknown, f"schema.sql's online section has SQL migrate cannot run: {unknown}"
    for table, assignments, where in BACKFILL.findall(part):
        batch = _query(
            "backfill_batch", table=table, set=assignments, where=where, batch=str(BACKFILL_BATCH)
        )
        while conn.execute(batch).rowcount:
            pass
    for name, definition in INDEX.findall(part):
        if conn.execute(_query("invalid_index"), [name]).fetchone():
            conn.execute(_query("drop_index", index=name))
        conn.execute(_query("create_index", index=name, definition=definition))


def migrate(
    conn: psycopg.Connection[Any], settings: TicketTable, *, uninstall: bool = False
) -> None:
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
    _online(conn, online.group(1))
