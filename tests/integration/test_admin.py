"""Admin tasks on real PostgreSQL and Redis: each does its job once and records who asked."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import redis
from typer.testing import CliRunner

from flows import admin as admin_flow
from flows.classify import classify_batch
from flows.training import TRAINING_LOCK
from tasks import admin
from tests.helpers import caller, dead_letter, demo_rows, insert, statuses


def run(task: Any, **kwargs: Any) -> dict[str, Any]:
    """The task executed here, as a worker would execute it."""
    result: dict[str, Any] = task.apply(kwargs=kwargs, throw=True).get()
    return result


def classify_all(rt: Any) -> None:
    while classify_batch(rt.store, rt.models, rt.settings, worker="t", limit=1000)["claimed"]:
        pass


def test_reclassify_by_model_version_requeues_only_that_models_decisions(
    conn: psycopg.Connection[Any], rt: Any, model: Any, redis_url: str
) -> None:
    # given 60 tickets decided by the model in service, one relabelled by a person, and 5 new
    insert(conn, demo_rows(60))
    classify_all(rt)
    conn.execute("UPDATE tickets SET causa = 'Red' WHERE number = 'T000000'")
    insert(conn, demo_rows(5, prefix="N"))
    version = rt.registry.current().version

    # when an operator asks to reclassify what that version decided, twice
    first = run(admin.reclassify, model_version=version, triggered_by="test: alice")
    second = run(admin.reclassify, model_version=version, triggered_by="test: alice")

    # then the 59 model decisions are pending again (their model causes cleared), once
    assert first["requeued"] == 59 and first["enqueued"] >= 1
    assert second["requeued"] == 0
    assert statuses(conn) == {"pending": 64, "labelled": 1}
    assert conn.execute(
        "SELECT count(*) FROM tickets JOIN causa.work USING (number) WHERE causa IS NOT NULL"
    ).fetchone() == (0,)
    assert redis.Redis.from_url(redis_url).llen("causa") >= 1, "tasks were enqueued"
    event = rt.store.latest_events()["admin"]["payload"]
    assert event["task"] == "reclassify" and event["triggered_by"] == "test: alice"


def test_reclassify_needs_numbers_or_a_version(rt: Any) -> None:
    import pytest

    with pytest.raises(ValueError, match="numbers or model_version"):
        run(admin.reclassify, triggered_by="test")


def test_requeue_failed_replays_the_dead_letter_with_fresh_attempts(
    conn: psycopg.Connection[Any], rt: Any, model: Any
) -> None:
    insert(conn, demo_rows(4))
    dead_letter(conn, ["T000000", "T000001", "T000002"])
    assert run(admin.requeue_failed, numbers=["T000000"], triggered_by="t")["requeued"] == 1
    assert run(admin.requeue_failed, triggered_by="t")["requeued"] == 2
    assert run(admin.requeue_failed, triggered_by="t")["requeued"] == 0
    assert statuses(conn) == {"pending": 4}
    rows = conn.execute("SELECT DISTINCT attempts, claim_token FROM causa.work").fetchall()
    assert rows == [(0, None)]
    classify_all(rt)
    assert set(statuses(conn)) <= {"classified", "needs_review"}


def test_requeue_never_touches_tickets_in_flight(conn: psycopg.Connection[Any], rt: Any) -> None:
    insert(conn, demo_rows(3))
    claimed = rt.store.claim(caller("someone"), 3)
    assert len(claimed) == 3
    assert rt.store.requeue(["classified", "needs_review", "failed"]) == 0
    assert statuses(conn) == {"claimed": 3}


def test_rollback_happens_once_however_often_it_is_asked(rt: Any, model: Any) -> None:
    # given two models: the fixture's, then a second one promoted over it
    first = rt.registry.load_current()
    second = rt.registry.promote(
        first.pipeline,
        classes=first.classes,
        n_train=1,
        metrics={"macro_f1": 0.1},
        decision="test",
    )
    assert second.version != first.version
    # when the same rollback request arrives twice (a double click, a redelivery)
    once = run(admin.rollback, replacing=second.version, triggered_by="t")
    twice = run(admin.rollback, replacing=second.version, triggered_by="t")
    # then the first model is in service and the second request changed nothing
    assert once["version"] == first.version
    assert twice["decision"].startswith("unchanged")
    assert rt.registry.current().version == first.version
    assert rt.store.latest_events()["rollback"]["payload"]["replaced"] == second.version


def test_a_rollback_of_thresholds_names_the_revisions_and_happens_once(rt: Any, model: Any) -> None:
    # given a thresholds revision of the model in service (same version, revision 1)
    first = rt.registry.current()
    revised = rt.registry.revise({first.classes[0]: 0.5}, decision="test")
    assert (revised.version, revised.label) == (first.version, f"{first.version}.r1")
    # when the desk's rollback arrives twice, replacing the revision in service
    once = run(admin.rollback, replacing=revised.label, triggered_by="t")
    twice = run(admin.rollback, replacing=revised.label, triggered_by="t")
    # then revision 0 is back, the event says which revision it replaced, and once only
    assert (once["version"], once["replaced"]) == (first.version, revised.label)
    assert twice["decision"].startswith("unchanged")
    assert rt.registry.current().revision == 0
    assert rt.store.latest_events()["rollback"]["payload"]["replaced"] == revised.label
    # and revision 1 can be put back by its name
    back = run(admin.rollback, version=revised.label, triggered_by="t")
    assert back["version"] == revised.label and rt.registry.current().revision == 1
    # while decisions name versions only: a revision is no model_version to reclassify
    with pytest.raises(ValueError, match="model_version must be a model version"):
        admin_flow.reclassify(rt, model_version=revised.label)


def test_purge_backups_keeps_the_newest(rt: Any, model: Any) -> None:
    current = rt.registry.load_current()
    for i in range(3):
        rt.registry.promote(current.pipeline, classes=current.classes, n_train=i + 2)
    assert len(run(admin.purge_backups, keep=1, triggered_by="t")["removed"]) == 2
    assert run(admin.purge_backups, keep=1, triggered_by="t")["removed"] == []
    assert [k for k, _ in rt.registry.models()] == ["current", "backup"]


def test_a_second_training_is_skipped_while_one_runs(rt: Any) -> None:
    lock = rt.redis.lock(TRAINING_LOCK, timeout=60)
    assert lock.acquire(blocking=False)
    try:
        assert run(admin.retrain, triggered_by="t")["decision"] == "skipped"
    finally:
        lock.release()


def test_causa_admin_runs_the_task_and_prints_its_result(
    conn: psycopg.Connection[Any], rt: Any
) -> None:
    from worker.cli import app

    insert(conn, demo_rows(2))
    dead_letter(conn, ["T000001"])
    result = CliRunner().invoke(app, ["admin", "requeue-failed"])
    assert result.exit_code == 0, result.output
    assert '"requeued": 1' in result.stdout
    assert rt.store.latest_events()["admin"]["payload"]["triggered_by"].startswith("causa admin")


def promote_second(rt: Any) -> tuple[str, str]:
    """The fixture's model, then a second one promoted over it: their versions."""
    first = rt.registry.load_current()
    second = rt.registry.promote(first.pipeline, classes=first.classes, n_train=1, decision="t")
    assert second.version != first.version
    return first.version, second.version


def test_causa_admin_rollback_without_a_version_twice_rolls_back_once(rt: Any, model: Any) -> None:
    from worker.cli import app

    first, second = promote_second(rt)
    # when an operator runs the documented command twice, without naming a version
    once = CliRunner().invoke(app, ["admin", "rollback"])
    twice = CliRunner().invoke(app, ["admin", "rollback"])
    # then the first put the old model back and the second changed nothing
    assert once.exit_code == 0 and twice.exit_code == 0, once.output + twice.output
    assert '"decision": "unchanged' in twice.stdout, twice.stdout
    assert rt.registry.current().version == first
    # and a redelivered task without `replacing` changes nothing either
    assert run(admin.rollback, triggered_by="t")["decision"].startswith("unchanged")
    # rolling back twice on purpose names the version
    again = CliRunner().invoke(app, ["admin", "rollback", second])
    assert again.exit_code == 0 and rt.registry.current().version == second, again.output


def test_purge_backups_never_counts_the_model_in_service(rt: Any, model: Any) -> None:
    # given a rollback, then the newer model put back on purpose: backups/ now also holds a
    # copy of the model in service
    first, second = promote_second(rt)
    rt.registry.rollback()
    rt.registry.rollback(second)
    assert rt.registry.current().version == second
    # when the operator keeps one backup
    removed = run(admin.purge_backups, keep=1, triggered_by="t")["removed"]
    # then the one model to roll back to is kept, and a rollback still works
    assert removed == []
    assert [info.version for kind, info in rt.registry.models() if kind == "backup"] == [first]
    assert rt.registry.rollback(first).version == first


def test_purge_backups_refuses_to_keep_none(rt: Any, model: Any) -> None:
    import pytest

    promote_second(rt)
    with pytest.raises(ValueError, match="at least 1 backup"):
        run(admin.purge_backups, keep=0, triggered_by="t")
    assert [kind for kind, _ in rt.registry.models()] == ["current", "backup"]


def test_admin_tasks_refuse_hostile_arguments_and_change_nothing(
    conn: psycopg.Connection[Any], rt: Any, model: Any
) -> None:
    import pytest

    # given a model with two backups, and a failed ticket
    current = rt.registry.load_current()
    for i in range(2):
        rt.registry.promote(current.pipeline, classes=current.classes, n_train=i + 2)
    models = rt.registry.models()
    insert(conn, demo_rows(1))
    dead_letter(conn, ["T000000"])
    # when anyone who reaches the broker sends admin tasks with arguments the CLI never sends
    hostile: list[tuple[Any, dict[str, Any], str]] = [
        (admin.purge_backups, {"keep": 0}, "at least 1 backup"),
        (admin.purge_backups, {"keep": -3}, "at least 1 backup"),
        (admin.purge_backups, {"keep": "1"}, "whole number"),
        (admin.purge_backups, {"keep": True}, "whole number"),
        (admin.requeue_failed, {"numbers": "T000000"}, "list of ticket numbers"),
        (admin.requeue_failed, {"numbers": [1, 2]}, "list of ticket numbers"),
        (admin.requeue_failed, {"numbers": ["T"] * 10_001}, "at most 10000"),
        (admin.reclassify, {"model_version": "x'; DROP TABLE tickets; --"}, "model version"),
        (admin.rollback, {"version": "../../etc/passwd"}, "model version"),
        (admin.rollback, {"replacing": 7}, "model version"),
        (admin.requeue_failed, {"triggered_by": "x" * 201}, "triggered_by"),
    ]
    for task, kwargs, message in hostile:
        with pytest.raises(ValueError, match=message):
            run(task, **{"triggered_by": "t", **kwargs})
    # then nothing changed: the backups, the dead letter, the model in service
    assert rt.registry.models() == models
    assert statuses(conn) == {"failed": 1}
    assert rt.registry.current().version == models[0][1].version
