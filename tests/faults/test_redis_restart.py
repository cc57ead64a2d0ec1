"""Redis restarted while tickets stream in: its queued messages are lost, worker, beat and
listener reconnect, and beat's polling recovers every ticket the broker dropped: each is
decided exactly once. Prints the recovery time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from tests.e2e.cluster import FAST_RECOVERY, cluster, install_audit, writes_per_ticket
from tests.faults.outage import db_now, decided_below, finish, last_decided_since, streaming
from tests.helpers import statuses, wait_for
from tests.redis_server import RedisServer
from tests.webhook import Receiver


def test_redis_restarted_mid_stream_then_every_ticket_is_decided_exactly_once(
    conn: psycopg.Connection[Any],
    database_url: str,
    model: Path,
    broker: RedisServer,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    install_audit(conn)
    env = {**FAST_RECOVERY, "REDIS_URL": broker.url, "NOTIFY_URLS": receiver.url}
    with (
        cluster(tmp_path, model, "worker", "beat", "listener", **env) as procs,
        streaming(database_url) as stream,
    ):
        # given tickets streaming in (20/s) and being classified
        wait_for(lambda: decided_below(conn, 50) == 50, timeout=60, what="the flow to start")

        # when Redis stops (SIGTERM, nothing persisted: every queued message is lost)
        broker.stop()
        wait_for(
            lambda: receiver.titled("broker unreachable"),
            timeout=30,
            what="beat to notice the broker is gone",
        )
        outage_first = stream.inserted
        wait_for(
            lambda: stream.inserted >= outage_first + 20,
            timeout=30,
            what="tickets inserted while the broker is down",
        )
        stranded = conn.execute(
            "SELECT count(*) FROM causa.work WHERE number >= %s AND claim_token IS NULL",
            [f"S{outage_first:06d}"],
        ).fetchone()
        assert stranded is not None and stranded[0] >= 20, "nothing classifies without a broker"

        # and starts again, empty, on the same port
        broker.start()
        restarted_db, backlog = db_now(conn), stream.inserted

        # then beat says so, and every ticket that arrived before the restart is decided
        wait_for(
            lambda: receiver.titled("broker recovered"),
            timeout=30,
            what="the 'broker recovered' notification",
        )
        wait_for(
            lambda: decided_below(conn, backlog) == backlog,
            timeout=120,
            what=f"the {backlog} tickets from before the restart to be decided",
        )
        total = finish(conn, stream)
        alive = {name: p.poll() is None for name, p in procs.items()}

    recovery_s = last_decided_since(conn, backlog, restarted_db)
    assert alive == {"worker": True, "beat": True, "listener": True}, "every process reconnected"
    writes = writes_per_ticket(conn)
    assert len(writes) == total and set(writes.values()) == {1}, "each ticket written once"
    assert statuses(conn).get("failed", 0) == 0
    assert len(receiver.titled("broker unreachable")) == 1
    assert len(receiver.titled("broker recovered")) == 1
    print(
        f"\nRESULT redis restart: {total} tickets streamed, {backlog} before the restart;"
        f" all decided {recovery_s:.1f} s after Redis was back; each ticket written once,"
        " none failed"
    )
