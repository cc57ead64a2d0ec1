"""The SQL that makes a ticket table a queue: rendered for the configured names, applied."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

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
    on = settings.result_columns
    values = {
        "table": _quoted(settings.table),
        "table_name": sql.Literal(settings.table).as_string(),
        "number": _quoted(settings.number_column),
        "cause": _quoted(settings.cause_column),
        "text": text_expr,
        "number_key": sql.Literal(settings.number_column).as_string(),
        "channel": sql.Literal(CHANNEL).as_string(),
        "result_columns": "true" if on else "false",
        "result_reset": (
            ", causa_status = NULL, causa_source = NULL, causa_decided_at = NULL" if on else ""
        ),
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


PART = re.compile(r"^-- causa:(checks|step (\d+) [^\n]*|repeatable|online)\n", re.M)
INDEX = re.compile(r"CREATE INDEX IF NOT EXISTS (\w+) ON (.*?);", re.S)
COMMENT = re.compile(r"--[^\n]*")


@dataclass(frozen=True)
class Parts:
    """schema.sql cut at its `-- causa:` markers."""

    checks: str
    steps: dict[int, str]  # version -> SQL, each applied once, in order
    repeatable: str
    online: str


def parts(rendered: str) -> Parts:
    marks = list(PART.finditer(rendered))
    bodies = {
        m: rendered[m.end() : after.start() if after else None]
        for m, after in zip(marks, [*marks[1:], None], strict=True)
    }
    named = {m.group(1).split()[0]: body for m, body in bodies.items()}
    steps = {int(m.group(2)): body for m, body in bodies.items() if m.group(2)}
    assert list(steps) == sorted(steps) and {"checks", "repeatable", "online"} <= set(named), (
        "schema.sql lost a `-- causa:` part marker, or has its steps out of order"
    )
    return Parts(named["checks"], steps, named["repeatable"], named["online"])


def _online(conn: psycopg.Connection[Any], part: str) -> None:
    """schema.sql's online part: each index built CONCURRENTLY (a failed earlier build leaves
    an invalid index: it is dropped and built again)."""
    unknown = COMMENT.sub("", INDEX.sub("", part)).strip()
    assert not unknown, f"schema.sql's online part has SQL migrate cannot run: {unknown}"
    for name, definition in INDEX.findall(part):
        if conn.execute(_query("invalid_index"), [name]).fetchone():
            conn.execute(_query("drop_index", index=name))
        conn.execute(_query("create_index", index=name, definition=definition))


def _refused(exc: psycopg.errors.RaiseException) -> ConfigError:
    """A refusal raised by schema.sql (another table installed, a column causa did not
    create, a number column that is not unique), as the one-line error commands print."""
    diag = exc.diag
    return ConfigError(f"{diag.message_primary}: {diag.message_hint or 'see causa migrate --help'}")


def migrate(
    conn: psycopg.Connection[Any],
    settings: TicketTable,
    *,
    uninstall: bool = False,
    drop_legacy: bool = False,
) -> list[int]:
    """Bring the database to this release: the checks, then each versioned step not applied
    yet (in order, recorded in causa.migrations), then functions, triggers and grants, all
    in one transaction; then the indexes on the user's table online (`conn` must be in
    autocommit). Or remove everything causa created. Harmless to run again. Returns the
    versions this run applied."""
    check_table(conn, settings)
    if uninstall:
        with conn.transaction():
            conn.execute(render(settings, "uninstall.sql").encode())
        return []
    schema = parts(render(settings))
    try:
        with conn.transaction():
            conn.execute(schema.checks.encode())
            done = {r[0] for r in conn.execute(_query("applied_steps"))}
            applied = [v for v in schema.steps if v not in done]
            for version in applied:
                conn.execute(schema.steps[version].encode())
            conn.execute(schema.repeatable.encode())
            if applied:
                conn.execute(_query("install_event"), [Jsonb({"steps": applied})])
            if drop_legacy:
                for (column,) in conn.execute(_query("legacy_columns")).fetchall():
                    table, name = _quoted(settings.table), _quoted(column)
                    conn.execute(_query("drop_column", table=table, column=name))
                    conn.execute(_query("forget_legacy_column"), [column])
    except psycopg.errors.RaiseException as exc:
        raise _refused(exc) from exc
    _online(conn, schema.online)
    return applied
