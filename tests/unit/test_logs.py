"""The log: JSON lines in a rotated, gzip-compressed file that several processes share; the
context every line about a ticket carries; ticket text and secrets scrubbed."""

from __future__ import annotations

import gzip
import json
import logging
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from concurrent_log_handler import ConcurrentRotatingFileHandler as RotatingFile

from shared import logs
from shared.settings import Settings


@pytest.fixture(autouse=True)
def plain_logging() -> Iterator[None]:
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()
    logs.forget_ticket_texts()
    logs.configure(level="INFO", json=True)  # closes the test's log file


def lines_of(path: Path) -> list[dict[str, Any]]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_the_file_rotates_into_at_most_n_gzip_files_of_json_lines(tmp_path: Path) -> None:
    # given a log file of 2 KB keeping 3 backups, and a console that is not JSON
    path = tmp_path / "logs" / "causa.log"
    logs.setup(
        Settings(log_file=path, log_max_bytes=2048, log_backups=3, log_json=False, log_level="INFO")
    )
    # when far more than 4 files' worth is written, by structlog and by the standard library
    log = structlog.get_logger("causa.test")
    for i in range(200):
        log.info("line", i=i, padding="x" * 40)
        logging.getLogger("celery.test").info("celery line %d", i)
    # then the current file and exactly 3 compressed ones remain, all JSON lines, beside the
    # hidden lock file concurrent-log-handler keeps
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == [
        ".__causa.lock",
        "causa.log",
        "causa.log.1.gz",
        "causa.log.2.gz",
        "causa.log.3.gz",
    ]
    for name in names[1:]:
        rows = lines_of(path.parent / name)
        assert rows and all(r["level"] == "info" and "timestamp" in r for r in rows)
    # and the file rotates once it has reached the size, so it passes it by one line at most
    assert path.stat().st_size < 2048 + longest_line(path)
    # and the newest lines are in the current file, the older ones in .1.gz before .2.gz
    newest = [r["i"] for r in lines_of(path) if "i" in r]
    older = [r["i"] for r in lines_of(path.parent / "causa.log.1.gz") if "i" in r]
    assert newest[-1] == 199 and max(older) < min(newest)


def longest_line(path: Path) -> int:
    return max(len(line) for line in path.read_bytes().splitlines(keepends=True))


def test_no_backups_means_the_file_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "causa.log"
    logs.configure(json=True, file=path, max_bytes=1024, backups=0)
    for i in range(100):
        structlog.get_logger("t").info("line", i=i)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".__causa.lock", "causa.log"]
    assert path.stat().st_size < 1024 + longest_line(path)
    assert lines_of(path)[-1]["i"] == 99


def test_configuring_again_closes_the_previous_file(tmp_path: Path) -> None:
    # given a process logging to a file (as a worker does before its pool forks)
    logs.configure(json=True, file=tmp_path / "causa.log")
    structlog.get_logger("t").info("before")
    [old] = [h for h in logging.getLogger().handlers if isinstance(h, RotatingFile)]
    assert old.stream is not None and old.stream_lock is not None
    # when it configures logging again (as each forked pool process does)
    logs.configure(json=True, file=tmp_path / "causa.log")
    structlog.get_logger("t").info("after")
    # then the old handler is closed and gone, and the new one writes to the same file
    [new] = [h for h in logging.getLogger().handlers if isinstance(h, RotatingFile)]
    assert new is not old and old.stream is None and old.stream_lock is None
    assert [r["event"] for r in lines_of(tmp_path / "causa.log")] == ["before", "after"]


# The spawned writers import this module: what the classify tests need (the model stack) is
# imported inside them, so that each writer starts in about a second rather than ten.
def _write_lines(path: Path, writer: int, count: int) -> None:
    logs.configure(json=True, file=path, max_bytes=4096, backups=100)
    for i in range(count):
        structlog.get_logger("t").info("line", writer=writer, i=i, padding="y" * 60)


def test_processes_sharing_one_file_lose_and_mangle_no_line(tmp_path: Path) -> None:
    # given four processes writing to one small file at once (as a worker's pool does;
    # spawned, not forked: a fork of this many-threaded test process can inherit a lock
    # another thread held, such as stderr's, and hang)
    path = tmp_path / "causa.log"
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_write_lines, args=(path, w, 300)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    # then every line of every writer is in the current file or a backup, whole, exactly once
    rows = [r for f in tmp_path.glob("causa.log*") for r in lines_of(f)]
    seen = sorted((r["writer"], r["i"]) for r in rows)
    assert seen == [(w, i) for w in range(4) for i in range(300)]
    assert len(list(tmp_path.glob("causa.log.*.gz"))) > 10  # it did rotate, many times


def test_every_line_about_a_ticket_names_it_the_task_the_worker_and_the_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flows.classify import classify_batch
    from tests.unit.test_classify import FakeModel, FakeStore, Models, ticket

    # given JSON logging at DEBUG and a task's context, bound as task_prerun does
    logs.configure(level="DEBUG", json=True)
    structlog.contextvars.bind_contextvars(
        task_id="task-1", task_name="tasks.classify.classify_pending", worker="host:1"
    )
    # when a batch with a ticket that breaks the model is classified, and Celery logs
    store = FakeStore([ticket("1", "la pantalla parpadea"), ticket("2", "\u2620 rompe todo")])
    classify_batch(store, Models(FakeModel(version="v7")), Settings(), worker="host:1", limit=10)
    logging.getLogger("celery.app.trace").info("Task succeeded")
    # then the per-ticket lines and Celery's own carry the task, the worker and the model
    rows = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    per_ticket = [r for r in rows if "number" in r]
    assert {r["event"] for r in per_ticket} == {"ticket classified", "ticket failed"}
    for r in per_ticket:
        assert (r["task_id"], r["worker"], r["model_version"]) == ("task-1", "host:1", "v7")
    celery = next(r for r in rows if r["event"] == "Task succeeded")
    assert (celery["task_id"], celery["worker"], celery["model_version"]) == (
        "task-1",
        "host:1",
        "v7",
    )


def refusing_store(tickets: list[Any], quoted: str) -> Any:
    """A store whose error message quotes a ticket's text (as a database error may)."""
    from tests.unit.test_classify import FakeStore

    class RefusingStore(FakeStore):
        def apply(self, caller: Any, results: Any) -> dict[str, int]:
            raise ValueError(f"row refused: {quoted}")

    return RefusingStore(tickets)


def test_ticket_text_in_an_error_is_scrubbed_from_the_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flows.classify import classify_batch
    from tests.unit.test_classify import FakeModel, Models, ticket

    # given a store whose error message quotes the ticket's text (as a database error may)
    text = "el portátil de Ana no arranca tras la actualización"
    store = refusing_store([ticket("1", text)], text)
    logs.configure(level="INFO", json=True)
    # when the batch fails and the error is logged up the stack, as Celery's tracer does
    with pytest.raises(ValueError) as raised:
        classify_batch(store, Models(FakeModel()), Settings(), worker="w", limit=10)
    logging.getLogger("celery.app.trace").error("Task raised: %r", raised.value, exc_info=True)
    # then the text appears nowhere, the error's type does
    err = capsys.readouterr().err
    assert "ValueError" in err and logs.TICKET_TEXT in err
    for form in (text, json.dumps(text)[1:-1], "portátil", "port\\u00e1til"):
        assert form not in err
    # and once the task ends (task_postrun), the text is no longer scrubbed
    logs.forget_ticket_texts()
    structlog.get_logger("t").info("later", note=text)
    assert json.loads(capsys.readouterr().err)["note"] == text


def test_passwords_of_secret_urls_are_scrubbed_on_their_own_too(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "postgresql://postgres:Pw-0f-the-DB@127.0.0.1:5432/x"
    logs.configure(json=True, secrets=[url])
    structlog.get_logger("t").warning("auth", a="Pw-0f-the-DB", b="host=db password=Pw-0f-the-DB")
    row = json.loads(capsys.readouterr().err)
    assert (row["a"], row["b"]) == (logs.REDACTED, f"host=db password={logs.REDACTED}")


def test_values_the_caller_passes_are_not_changed_by_scrubbing() -> None:
    secret = "s3cr3t-value-123"
    data = {"nested": [secret]}
    logs.configure(json=True, secrets=[secret])
    structlog.get_logger("t").info("x", data=data)
    assert data == {"nested": [secret]}
