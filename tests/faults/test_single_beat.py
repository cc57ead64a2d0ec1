"""Exactly one beat: a second one started by mistake schedules nothing while the first runs,
and takes over when the first stops (DESIGN.md, the single-beat lock)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.cluster import cluster
from tests.helpers import wait_for
from worker import processes

SENT = b"Sending due task poll-pending"
BEAT_ENV = {"CAUSA_POLL_INTERVAL": "0.3", "CAUSA_BEAT_LOCK_TTL": "2"}


def sent(logdir: Path, name: str) -> int:
    return (logdir / f"{name}.log").read_bytes().count(SENT)


def test_a_second_beat_stands_by_until_the_first_stops(
    tmp_path: Path, models_dir: Path, redis_url: str
) -> None:
    with cluster(tmp_path, models_dir, "beat", **BEAT_ENV) as first:
        wait_for(lambda: sent(tmp_path, "beat") >= 2, what="the first beat scheduling")
        with cluster(tmp_path, models_dir, "beat2", **BEAT_ENV):
            wait_for(
                lambda: b"standing by" in (tmp_path / "beat2.log").read_bytes(),
                what="the second beat standing by",
            )
            # while both run, only the first one schedules (ten more polls' worth)
            before = sent(tmp_path, "beat")
            wait_for(lambda: sent(tmp_path, "beat") >= before + 10, what="ten more polls")
            assert sent(tmp_path, "beat2") == 0, "the second beat scheduled while the first ran"

            # when the first beat stops, the second takes over within the lock's lifetime
            processes.stop(list(first.values()))
            wait_for(
                lambda: sent(tmp_path, "beat2") >= 2, timeout=10, what="the second beat taking over"
            )
    assert b"beat lock acquired" in (tmp_path / "beat2.log").read_bytes()
