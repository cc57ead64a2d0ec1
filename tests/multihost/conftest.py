"""The machines of the multihost tests, built once for the module: a database host
(PostgreSQL, Redis, beat and the listener) and two worker hosts, each with its own models
directory and the shared model store, which holds a first model that a retraining will beat.
Processes, servers and namespaces are removed at the end, whatever happened."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import psycopg
import pytest

from shared.settings import load_settings
from tests.helpers import fresh_table
from tests.multihost.hosts import (
    DB,
    TOOLS,
    WORKERS,
    DatabaseHost,
    Hosts,
    Network,
    missing_tools,
)
from training import bootstrap, dataset
from worker import demodata, processes

POOR_CHAMPION_TICKETS = 200  # as tests/integration/test_model_store_retrain.py's
FIGURES = pytest.StashKey[list[str]]()


def first_model(hosts: Hosts) -> None:
    """The store's first model: trained on tickets whose causes were shifted by one, so that
    any honest retraining beats it by far more than CAUSA_MIN_IMPROVEMENT."""
    tickets = demodata.generate(POOR_CHAMPION_TICKETS + 1, seed=42)
    shifted = [
        dataset.Example(f"S{i}", f"{t.short_description} {t.description}", tickets[i + 1].cause)
        for i, t in enumerate(tickets[:-1])
    ]
    bootstrap.train(shifted, hosts.registry("test"))


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    missing = missing_tools() + ([] if os.geteuid() == 0 else ["root"])
    if missing:  # `make test` (CAUSA_FAIL_ON_SKIP) turns this skip into a failure
        pytest.skip(f"the multihost tests need root and {', '.join(TOOLS)}; missing: {missing}")
    base = tmp_path_factory.mktemp("multihost")
    network = Network()
    db = DatabaseHost(network, base / DB)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        network.create()
        db.start()
        with psycopg.connect(db.socket_conninfo, autocommit=True) as conn:
            fresh_table(conn, load_settings())
            h = Hosts(network, db, conn, base, procs)
            first_model(h)
            for host in WORKERS:
                h.start(host, "worker", ["worker", "--concurrency", "2"])
            # beat and the listener on the database host: they keep polling and enqueuing
            # while a worker host is cut off
            h.start(DB, "beat", ["beat", "--schedule", str(h.dir(DB) / "schedule")])
            h.start(DB, "listener", ["listen"])
            for name, p in procs.items():
                kind, host = name.split("@")
                processes.wait_ready(h.dir(host), {kind: p})
            yield h
    finally:
        processes.stop(list(procs.values()))
        db.stop()
        network.remove()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> list[str]:
    """Lines a test measured; printed at the end of the run, captured output or not."""
    return request.config.stash.setdefault(FIGURES, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = terminalreporter.config.stash.get(FIGURES, [])
    if lines:
        terminalreporter.section("multihost figures")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed multihost test shows the end of every host's logs."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    h = getattr(item, "funcargs", {}).get("hosts")
    if report.failed and isinstance(h, Hosts):
        for log in h.logs():
            tail = log.read_text(errors="replace").splitlines()[-40:]
            report.sections.append((f"{log.parent.name}/{log.name}", "\n".join(tail)))
