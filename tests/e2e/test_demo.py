"""`causa demo`, the README's first command, end to end: embedded PostgreSQL and Redis, a
first model trained on the seeded history, worker, beat and listener as processes, a stream of
tickets classified, and the summary's accuracy against the demo's hidden truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TICKETS = 300
MIN_ACCURACY = 0.85  # the bootstrap model scores about 0.9 on the demo's tickets
TIMEOUT_S = 600


def test_the_demo_classifies_its_stream_on_embedded_services(tmp_path: Path) -> None:
    # given a machine where causa has no database, broker or model of its own
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CAUSA_HOME")
    }
    env.update(CAUSA_HOME=str(tmp_path / "home"), CAUSA_MODELS_DIR=str(tmp_path / "models"))
    # when the demo runs
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "demo", "--tickets", str(TICKETS), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    # then every ticket of its stream is decided, mostly right, and its services are stopped
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["tickets"] == TICKETS
    decided = summary["by_status"]["classified"] + summary["by_status"]["needs_review"]
    assert decided == TICKETS, summary
    assert summary["accuracy"] >= MIN_ACCURACY, summary
    assert summary["tickets_per_s"] and summary["latency_ms"]["p50"] is not None
    assert (tmp_path / "models" / "manifest.json").exists(), "a first model was trained"
    assert not (tmp_path / "home" / "postgres" / "postmaster.pid").exists(), "postgres stopped"
