"""A training that a worker runs (the schedule's, an operator's) fits in several processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
import psycopg
from typer.testing import CliRunner

from tests.e2e.cluster import cluster
from tests.helpers import insert_labelled, wait_for
from worker import demodata
from worker.cli import app


def helpers_of(worker: int) -> list[str]:
    """The command lines of joblib's helper processes (loky) under the worker's processes."""
    try:
        found = psutil.Process(worker).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    lines = []
    for p in found:
        try:
            lines.append(" ".join(p.cmdline()))
        except psutil.Error:  # ended meanwhile
            continue
    return [line for line in lines if "loky" in line]


def test_a_retraining_enqueued_to_a_worker_fits_side_by_side_in_its_pool_process(
    conn: psycopg.Connection[Any], model: Path, redis_url: str, tmp_path: Path
) -> None:
    # given tickets people labelled
    tickets = list(demodata.generate(1200, seed=3))
    insert_labelled(conn, [f"L{i:05d}" for i in range(len(tickets))], tickets)
    with cluster(tmp_path, model, "worker", CAUSA_TRAINING_JOBS="2") as procs:
        # when an operator enqueues a retraining
        sent = CliRunner().invoke(app, ["admin", "retrain", "--enqueue"])
        assert sent.exit_code == 0, sent.output
        # then the pool process that runs it fits with helper processes of its own (a pool
        # process is daemonic, and joblib would fit in it alone: worker/app.py)
        helpers = wait_for(
            lambda: helpers_of(procs["worker"].pid), timeout=120, what="the training's helpers"
        )
        assert helpers

        # and the training ends with a decision
        def decision() -> dict[str, Any] | None:
            row = conn.execute(
                "SELECT payload FROM causa.events WHERE kind = 'training'"
            ).fetchone()
            return row[0] if row else None

        decided = wait_for(decision, timeout=300, what="the training's decision")
        assert decided is not None and decided["decision"] in ("promote", "keep"), decided
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "cannot be called in a multiprocessing" not in log
