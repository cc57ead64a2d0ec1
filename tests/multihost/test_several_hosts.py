"""causa on several machines: a database host (PostgreSQL, Redis, beat, listener) and two
worker hosts, each a network namespace with its own address, hostname and models directory,
sharing one model store (hosts.py builds them). Proves:

- tickets streaming in are each decided exactly once, and both worker hosts decide some;
- a retraining on one host promotes into the store, and the other host serves the new
  version from its next batch on: every decision made more than one task time limit after
  the promotion (no batch lives longer) carries it;
- a host cut off mid-batch (claimed, not yet written) loses nothing: once the lease expires
  the other host decides its tickets, each written once; the write the cut host had sent,
  delivered when the link returns, changes nothing (stale); and the host rejoins and decides
  new tickets.

The figures each test measures are printed at the end of the run ("multihost figures").
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
import pytest

from tests.e2e.cluster import attempts_per_ticket, install_audit, writes_per_ticket
from tests.helpers import demo_rows, insert, wait_for, write_csv
from tests.multihost.hosts import DB, HOST_OF, PG_PORT, SETTINGS, WORKERS, Hosts
from training.registry import MANIFEST

pytestmark = pytest.mark.multihost
T = TypeVar("T")

FINAL = ("classified", "needs_review")
STREAMED = 400  # tickets at least, in the stream test
TIME_LIMIT_S = float(SETTINGS["CAUSA_TASK_TIME_LIMIT"])
# A training as quick as can be: this is about where the model goes, not the search.
QUICK_TRAINING = {
    "CAUSA_VOTE": "false",  # the default model's recipe is no search: it would be trained
    "CAUSA_N_TRIALS": "1",
    "CAUSA_SEARCH_FAMILIES": "cnb",
    "CAUSA_MIN_TICKETS_PER_S": "100",
    "CAUSA_MIN_CLASS_COUNT": "10",
    # MLflow's file store: its SQLite store spends some 10 s creating its tables
    "MLFLOW_ALLOW_FILE_STORE": "true",
}
CUT_TICKETS = 20  # one batch (CAUSA_BATCH_SIZE is 50): the cut host holds all of them
# The test holds this advisory lock; a trigger makes the claim of the batch CUT* wait for it
# (whichever host makes it) before it commits. The test then knows which host holds the
# batch, and cuts it off between its claim and its write. (Holding the write instead, as
# tests/faults does, cannot show a reclaim: a write waiting in the database holds the batch's
# row locks, and would commit there whatever happened to the link.)
HOLD = 4243
HOLD_CLAIM = f"""
CREATE OR REPLACE FUNCTION causa_test_hold_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({HOLD});
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER causa_test_hold_claim AFTER UPDATE ON causa.work FOR EACH ROW
    WHEN (NEW.attempts > OLD.attempts AND NEW.number LIKE 'CUT%')
    EXECUTE FUNCTION causa_test_hold_claim();
"""


class Stream:
    """Tickets `prefix`000000, ... inserted in the background, `rows` every `every` seconds,
    until `total` are in (or until the block ends)."""

    def __init__(
        self, conninfo: str, prefix: str, rows: int, every: float, total: int | None = None
    ) -> None:
        self.conninfo, self.prefix, self.rows, self.every = conninfo, prefix, rows, every
        self.total = total
        self.sent = 0
        self.done = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                while not self._stop.is_set() and (self.total is None or self.sent < self.total):
                    insert(conn, demo_rows(self.rows, prefix=self.prefix, start=self.sent))
                    self.sent += self.rows
                    self._stop.wait(self.every)
        except BaseException as exc:  # re-raised in the test's thread
            self._error = exc
        finally:
            self.done.set()

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        if self._error is not None:
            raise self._error


def wait_for_value(condition: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    """wait_for, for a condition that is a value once there (and None before)."""
    found = wait_for(condition, timeout, what)
    assert found is not None
    return found


def decided(conn: psycopg.Connection[Any], prefix: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM causa.outcomes WHERE number LIKE %s AND status = ANY(%s)",
        [prefix + "%", list(FINAL)],
    ).fetchone()
    return int(row[0]) if row else 0


def undecided(conn: psycopg.Connection[Any], prefix: str) -> list[tuple[Any, ...]]:
    """What a stuck wait shows: the prefix's tickets still queued."""
    return conn.execute(
        "SELECT number, attempts, claimed_by, claimed_until - now() FROM causa.work"
        " WHERE number LIKE %s ORDER BY number LIMIT 10",
        [prefix + "%"],
    ).fetchall()


def decisions(conn: psycopg.Connection[Any], prefix: str) -> list[tuple[str, str, str, datetime]]:
    """(number, host, model version, decided at) of each decision of the prefix's tickets;
    the host is the worker id's hostname, each host's own."""
    rows = conn.execute(
        "SELECT number, split_part(worker, ':', 1), model_version, decided_at"
        " FROM causa.decisions WHERE number LIKE %s ORDER BY decided_at",
        [prefix + "%"],
    ).fetchall()
    return [(n, h, v, at) for n, h, v, at in rows]


def all_decided(hosts: Hosts, prefix: str, total: int, timeout: float) -> None:
    conn = hosts.conn
    wait_for(
        lambda: decided(conn, prefix) == total,
        timeout=timeout,
        what=f"all {total} {prefix} tickets decided",
        describe=lambda: (decided(conn, prefix), undecided(conn, prefix)),
    )


def test_a_stream_is_decided_exactly_once_and_both_hosts_do_the_work(
    hosts: Hosts, figures: list[str]
) -> None:
    conn = hosts.conn
    install_audit(conn)
    # given tickets arriving, 10 every 0.1 s, for at least 4 s and until both hosts decide
    started = time.monotonic()
    with Stream(hosts.db.socket_conninfo, "A", rows=10, every=0.1) as stream:
        wait_for(
            lambda: (
                stream.sent >= STREAMED and {h for _, h, _, _ in decisions(conn, "A")} == {*WORKERS}
            ),
            timeout=60,
            what="both hosts deciding",
            describe=lambda: Counter(h for _, h, _, _ in decisions(conn, "A")),
        )
    streamed_s = time.monotonic() - started
    # then every one is decided, ...
    all_decided(hosts, "A", stream.sent, timeout=60)
    elapsed = time.monotonic() - started
    # ... exactly once (one decision and one write of the row each), by both hosts
    writes = writes_per_ticket(conn)
    assert len(writes) == stream.sent and set(writes.values()) == {1}
    made = decisions(conn, "A")
    assert len(made) == len({n for n, *_ in made}) == stream.sent
    by_host = Counter(h for _, h, _, _ in made)
    assert set(by_host) == set(WORKERS), by_host
    figures.append(
        f"stream: {stream.sent} tickets inserted over {streamed_s:.1f} s, all decided"
        f" {elapsed:.1f} s after the first; w1 decided {by_host['w1']}, w2 {by_host['w2']};"
        " each written once"
    )


def test_a_retraining_on_one_host_is_served_by_the_other_from_its_next_batch(
    hosts: Hosts, figures: list[str]
) -> None:
    conn = hosts.conn
    install_audit(conn)
    w2 = hosts.registry("w2")
    champion = w2.current()
    assert champion is not None
    labelled = write_csv(hosts.base / "labelled.csv", 1200, seed=42)
    # given tickets streaming in (10 every 0.2 s) while w1 retrains
    with Stream(hosts.db.socket_conninfo, "B", rows=10, every=0.2) as stream:
        started = time.monotonic()
        mlflow = {"MLFLOW_TRACKING_URI": (hosts.dir("w1") / "mlruns").as_uri()}
        out = hosts.causa(
            "w1", "train", "--no-tickets", "--data", str(labelled), "--json",
            **QUICK_TRAINING, **mlflow,
        )  # fmt: skip
        trained_s = time.monotonic() - started
        # then the challenger is promoted into the store ...
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        assert summary["decision"] == "promote", summary
        new = w2.current()
        assert new is not None and new.version == summary["version"] != champion.version
        promoted_at = datetime.fromtimestamp(os.stat(hosts.store / MANIFEST).st_mtime, UTC)

        version = new.version
        # no batch lives longer than the hard time limit: a decision made later than that
        # after the promotion comes from a batch begun after it
        window = promoted_at + timedelta(seconds=TIME_LIMIT_S)

        # ... and w2, which did not train, decides with it
        def served_by_w2() -> datetime | None:
            made = decisions(conn, "B")
            return next((at for _, h, v, at in made if h == "w2" and v == version), None)

        first_on_w2 = wait_for_value(served_by_w2, what="w2 deciding with the new model")
        wait_for(
            lambda: {h for _, h, _, at in decisions(conn, "B") if at > window} == set(WORKERS),
            timeout=30,
            what="both hosts deciding after the window",
        )
    total = stream.sent
    all_decided(hosts, "B", total, timeout=60)
    made = decisions(conn, "B")
    late_old = [(n, h, v) for n, h, v, at in made if at > window and v != version]
    assert late_old == [], "a batch begun after the promotion used the old model"
    for host in WORKERS:
        local = hosts.registry(host).serving_manifest()
        assert local is not None and local.version == version, host
    # the store keeps the champion as a backup; each ticket was written once
    assert [info.version for _, info in w2.models()] == [
        version,
        champion.version,
    ]
    writes = writes_per_ticket(conn)
    assert len(writes) == total and set(writes.values()) == {1}
    latency = (first_on_w2 - promoted_at).total_seconds()
    figures.append(
        f"retraining: `causa train` on w1 took {trained_s:.1f} s; w2 decided with the new"
        f" model {latency:.2f} s after the promotion; {total} tickets streamed meanwhile,"
        " each written once"
    )


def held_claim(conn: psycopg.Connection[Any]) -> tuple[str, int] | None:
    """The host and client port of the connection whose claim waits for the test's lock."""
    row = conn.execute(
        "SELECT host(client_addr), client_port FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
        " AND query LIKE '%causa_claim%'"
    ).fetchone()
    return (HOST_OF[row[0]], int(row[1])) if row else None


def claim_of(conn: psycopg.Connection[Any], host: str, prefix: str) -> tuple[str, int] | None:
    """The request id of `host`'s claim of the prefix's tickets, once committed, and how many
    it took."""
    row = conn.execute(
        "SELECT min(request_id), count(*) FROM causa.work"
        " WHERE number LIKE %s AND claimed_by LIKE %s AND claim_token IS NOT NULL",
        [prefix + "%", host + ":%"],
    ).fetchone()
    return (row[0], int(row[1])) if row and row[1] else None


def reply_to(conn: psycopg.Connection[Any], request: str) -> dict[str, int] | None:
    """The database's reply to a request (causa keeps it to answer a repeat alike)."""
    row = conn.execute("SELECT response FROM causa.requests WHERE id = %s", [request]).fetchone()
    return row[0] if row else None


def test_a_host_cut_off_mid_batch_loses_nothing_its_late_write_is_stale_and_it_rejoins(
    hosts: Hosts, figures: list[str]
) -> None:
    conn, network = hosts.conn, hosts.network
    install_audit(conn)
    conn.execute(HOLD_CLAIM)
    try:
        with psycopg.connect(hosts.db.socket_conninfo, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", [HOLD])
            # given a host whose claim of a batch is about to commit
            insert(conn, demo_rows(CUT_TICKETS, prefix="CUT"))
            cut, port = wait_for_value(lambda: held_claim(conn), what="a host's claim held")
            other = next(h for h in WORKERS if h != cut)
            received = network.connections(cut, DB, PG_PORT)[port][0]
            # when that host loses the database host mid-batch: first what it sends there is
            # lost (the claim's reply still reaches it; the write it then sends does not),
            network.drop_to(cut, DB)
            cut_at = time.monotonic()
            holder.execute("SELECT pg_advisory_unlock(%s)", [HOLD])
        request, claimed = wait_for_value(lambda: claim_of(conn, cut, "CUT"), what="the claim")
        assert claimed == CUT_TICKETS
        wait_for(
            lambda: network.connections(cut, DB, PG_PORT).get(port, (0, 0))[0] > received,
            what=f"the claim's reply received on {cut}",
            describe=lambda: (port, received, network.connections(cut, DB, PG_PORT)),
        )
        # then its link goes down
        network.link_down(cut)
        conn.execute("DROP TRIGGER causa_test_hold_claim ON causa.work")
        # then the other host decides the batch once the leases have expired
        all_decided(hosts, "CUT", CUT_TICKETS, timeout=60)
        recovered_s = time.monotonic() - cut_at
    finally:
        for host in WORKERS:  # the link comes back (also when the test failed)
            network.heal(host)
        conn.execute("DROP TRIGGER IF EXISTS causa_test_hold_claim ON causa.work")
    back_at, back_wall = time.monotonic(), datetime.now(UTC)
    # when the link is back, the write the cut host had sent arrives and changes nothing:
    # every ticket was claimed again meanwhile, so its claim tokens are stale
    reply = wait_for_value(
        lambda: reply_to(conn, f"{request}:apply"),
        timeout=60,
        what=f"the late write (the cut lasted {recovered_s:.1f} s; past causa's TCP user"
        " timeout, 30 s, the cut host gives its connection up and the write never comes)",
    )
    late_s = time.monotonic() - back_at
    assert reply == {"applied": 0, "stale": CUT_TICKETS}, reply
    made = decisions(conn, "CUT")
    assert len(made) == CUT_TICKETS and {h for _, h, _, _ in made} == {other}
    writes = writes_per_ticket(conn)
    assert len(writes) == CUT_TICKETS and set(writes.values()) == {1}, "each written once"
    assert set(attempts_per_ticket(conn).values()) == {2}, "claimed by the cut host, then the other"
    # and the cut host works on: it decides tickets that arrive after its return
    with Stream(hosts.db.socket_conninfo, "BACK", rows=10, every=0.1) as stream:
        first_back = wait_for_value(
            lambda: next((at for _, h, _, at in decisions(conn, "BACK") if h == cut), None),
            timeout=60,
            what=f"{cut} deciding again",
        )
    all_decided(hosts, "BACK", stream.sent, timeout=60)
    back = decisions(conn, "BACK")
    assert len({n for n, *_ in back}) == len(back) == stream.sent
    assert set(writes_per_ticket(conn).values()) == {1}
    rejoin_s = (first_back - back_wall).total_seconds()
    figures.append(
        f"cut-off: {cut} cut off holding {CUT_TICKETS} claimed tickets; {other} decided all"
        f" of them {recovered_s:.1f} s after the cut (lease {SETTINGS['CAUSA_LEASE_SECONDS']}"
        f" s); the write {cut} had sent arrived {late_s:.1f} s after the link returned:"
        f" {reply}; {cut} decided again {rejoin_s:.1f} s after its return;"
        f" {CUT_TICKETS + stream.sent} tickets, each written once"
    )
