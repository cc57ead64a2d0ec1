"""A new model promoted while workers classify a stream: no restart, no failed task, every
ticket classified by exactly one existing version, every batch started more than 2 s after
the promotion on the new one."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg

from tests.e2e.cluster import cluster
from tests.helpers import KEY, demo_rows, insert, statuses, wait_for
from training import registry

SWAP_WINDOW_S = 2.0


def test_promotion_reaches_every_worker_process_without_a_restart(
    conn: psycopg.Connection[Any], model: Path, redis_url: str, tmp_path: Path
) -> None:
    old = registry.read_manifest(model, KEY)
    assert old is not None
    pipeline = registry.load(model, old).pipeline
    with cluster(tmp_path, model, "worker", "beat", "listener"):
        promoted_at = None
        new = None
        for i in range(60):  # 20 tickets every 100 ms for 6 s
            insert(conn, demo_rows(20, start=i * 20))
            if i == 20:
                new = registry.promote(
                    model,
                    pipeline,
                    key=KEY,
                    classes=old.classes,
                    n_train=old.n_train,
                    decision="hot-swap test",
                )
                promoted_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
            time.sleep(0.1)
        wait_for(
            lambda: set(statuses(conn)) <= {"classified", "needs_review"},
            timeout=60,
            what="every streamed ticket final",
        )
        log = (tmp_path / "worker.log").read_text()
    assert new is not None and new.version != old.version
    versions = dict(
        conn.execute("SELECT causa_model_version, count(*) FROM tickets GROUP BY 1").fetchall()
    )
    assert set(versions) == {old.version, new.version}, versions
    late_old = conn.execute(
        "SELECT count(*) FROM tickets WHERE causa_model_version = %s"
        " AND causa_decided_at > %s + make_interval(secs => %s)",
        [old.version, promoted_at, SWAP_WINDOW_S],
    ).fetchone()
    assert late_old == (0,), "a batch more than 2 s after the promotion used the old model"
    assert "raised unexpected" not in log and "WorkerLostError" not in log
    assert log.count("model loaded") >= 3  # both pool processes loaded, then swapped
