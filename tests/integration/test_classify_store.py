"""classify_batch with the real store and a real model: bad input, races, missing models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from flows.classify import classify_batch
from shared.settings import Settings
from shared.store import PostgresStore, is_pooled
from tests.helpers import KEY, demo_rows, insert, statuses
from training import registry
from training.registry import ModelRegistry
from worker.model_holder import ModelHolder

BAD_INPUT = {
    "NULL": (None, None),
    "EMPTY": ("", ""),
    "SPACES": ("   ", "\n\t  "),
    "HUGE": ("log", "x" * 1_000_000),
    "CONTROL": ("a\x01\x02b", "\x1b[31mred\x1b[0m"),
    "NULESC": ("literal \\u0000 escape", "\\x00"),
    "RTL": ("המדפסת לא עובדת", "مرحبا الطابعة لا تعمل"),
    "CJK": ("打印机坏了", "プリンターが壊れました"),
    "EMOJI": ("🔥🔥 VPN caída 🔥", "😭"),
    "HTML": ("<b>no puedo entrar</b>", "<script>alert('x')</script>"),
    "SQL": ("'; DROP TABLE tickets; --", "Robert'); DELETE FROM tickets WHERE ('1'='1"),
}


def run_batch(
    settings: Settings, store: PostgresStore, models_dir: Path, **kw: Any
) -> dict[str, Any]:
    return classify_batch(
        store,
        ModelHolder(ModelRegistry.local(models_dir, KEY)),
        settings,
        worker="test",
        limit=1000,
        **kw,
    )


def test_bad_input_gets_a_clear_outcome_and_nothing_is_lost(
    conn: psycopg.Connection[Any], settings: Settings, model: Path
) -> None:
    # given pending tickets with every kind of awkward text, and a few normal ones
    insert(conn, [(n, a, b) for n, (a, b) in BAD_INPUT.items()] + demo_rows(5))
    store = PostgresStore(settings)
    # when one batch runs
    summary = run_batch(settings, store, model)
    store.close()
    # then every ticket reached a final status, the table is intact, the empty ones say why
    assert summary["claimed"] == len(BAD_INPUT) + 5
    final = statuses(conn)
    assert set(final) <= {"classified", "needs_review"}
    assert sum(final.values()) == len(BAD_INPUT) + 5
    empty = conn.execute(
        "SELECT number, status, error FROM causa.outcomes"
        " WHERE number IN ('NULL', 'EMPTY', 'SPACES') ORDER BY 1"
    ).fetchall()
    assert len(empty) == 3
    assert all(s == "needs_review" and e == "empty text: nothing to classify" for _, s, e in empty)
    huge = conn.execute("SELECT length(description) FROM tickets WHERE number = 'HUGE'").fetchone()
    assert huge == (1_000_000,), "text is stored as given"


def test_a_redelivered_task_applies_nothing_twice(
    conn: psycopg.Connection[Any], settings: Settings, model: Path
) -> None:
    insert(conn, demo_rows(50))
    store = PostgresStore(settings)
    first = run_batch(settings, store, model)
    second = run_batch(settings, store, model)  # the same task delivered again
    store.close()
    assert first["claimed"] == 50 and second["claimed"] == 0
    # each ticket decided once, on its first attempt (no claim after the first burnt one)
    assert conn.execute(
        "SELECT count(*), count(DISTINCT number) FROM causa.decisions"
    ).fetchone() == (50, 50)


def test_missing_or_corrupt_model_leaves_tickets_pending(
    conn: psycopg.Connection[Any], settings: Settings, models_dir: Path, model_cache: Path
) -> None:
    insert(conn, demo_rows(10))
    store = PostgresStore(settings)
    assert run_batch(settings, store, models_dir)["claimed"] == 0  # no model at all
    from tests.helpers import install_model

    install_model(models_dir, model_cache)
    info = registry.read_manifest(models_dir, KEY)
    assert info is not None
    (models_dir / info.file).write_bytes(b"not a model")
    assert run_batch(settings, store, models_dir)["claimed"] == 0  # corrupt file
    store.close()
    assert statuses(conn) == {"pending": 10}


def test_pooled_urls_are_recognised() -> None:
    assert is_pooled("postgresql://u:p@aws-0-eu.pooler.supabase.com:6543/postgres")
    assert not is_pooled("postgresql://u:p@db.abc.supabase.co:5432/postgres")


def test_store_reads_labelled_tickets_in_pages(
    conn: psycopg.Connection[Any], settings: Settings, monkeypatch: Any
) -> None:
    from shared import store as store_module

    monkeypatch.setattr(store_module, "LABEL_PAGE", 7)
    conn.execute(
        "INSERT INTO tickets (number, short_description, causa)"
        " SELECT 'L' || lpad(g::text, 3, '0'), 'texto ' || g, 'Red'"
        " FROM generate_series(1, 20) g"
    )
    insert(conn, demo_rows(3))
    store = PostgresStore(settings)
    labelled = list(store.labelled())
    store.close()
    assert [r.number for r in labelled] == [f"L{i:03d}" for i in range(1, 21)]


def test_a_batch_that_runs_out_of_time_ends_cleanly_and_its_tickets_wait_for_their_lease(
    conn: psycopg.Connection[Any], rt: Any
) -> None:
    from dataclasses import replace

    from billiard.exceptions import SoftTimeLimitExceeded

    from flows.classify import classify_pending

    class OutOfTime:
        """A served model whose prediction the task's soft time limit interrupts."""

        version, classes = "slow", ("Red",)

        @property
        def thresholds(self) -> dict[str, float]:
            return {}

        def predict_proba(self, texts: list[str]) -> Any:
            raise SoftTimeLimitExceeded()

        def get(self) -> Any:
            return self

    # given 5 tickets and a model the soft time limit interrupts
    insert(conn, demo_rows(5))
    # when a batch runs; then it ends as a timeout, not an error, and no ticket failed
    assert classify_pending(replace(rt, models=OutOfTime())) == {
        "claimed": None,
        "timed_out": True,
    }
    assert statuses(conn) == {"claimed": 5}
    assert conn.execute("SELECT count(*) FROM causa.decisions").fetchone() == (0,)
    assert not rt.breaker.is_open(), "a timeout says nothing about the database"
