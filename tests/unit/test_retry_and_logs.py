from __future__ import annotations

import itertools
import json
import logging
import time

import psycopg
import pytest
import structlog
from psycopg import errors

from shared import logs, retry
from shared.settings import Settings

FAST = Settings(retry_initial=0.001, retry_max=0.004, retry_jitter=0, retry_attempts=4)


def test_transient_errors_are_retried_with_growing_delays_and_logged() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return "ok"

    # delays of 10, 20, 40 ms: large enough to show in the log (rounded to 10 ms), still fast
    growing = Settings(retry_initial=0.01, retry_max=0.08, retry_jitter=0, retry_attempts=4)
    started = time.monotonic()
    with structlog.testing.capture_logs() as captured:
        assert retry.call(growing, "apply", flaky) == "ok"
    elapsed = time.monotonic() - started
    retries = [e for e in captured if e["event"] == "retrying"]
    assert [e["attempt"] for e in retries] == [1, 2, 3]
    delays = [e["delay_s"] for e in retries]
    assert delays == [0.01, 0.02, 0.04]
    assert all(later > earlier for earlier, later in itertools.pairwise(delays))
    assert elapsed >= sum(delays)  # and they were waited, not only logged
    assert all(e["operation"] == "apply" for e in retries)


def test_retries_stop_after_the_configured_count_with_the_error_kept() -> None:
    calls = []

    def down() -> None:
        calls.append(1)
        raise errors.SerializationFailure("could not serialize")

    with pytest.raises(errors.SerializationFailure):
        retry.call(FAST, "claim", down)
    assert len(calls) == 5  # the first try and 4 retries


def test_other_errors_fail_at_once() -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise errors.UndefinedFunction("function causa_claim does not exist")

    with pytest.raises(errors.UndefinedFunction):
        retry.call(FAST, "claim", broken)
    assert len(calls) == 1


def test_default_backoff_is_1_2_4_8() -> None:
    s = Settings(retry_jitter=0)
    wait = retry.policy(s, "x").wait
    delays = [wait(type("S", (), {"attempt_number": n, "outcome": None})()) for n in (1, 2, 3, 4)]
    assert delays == [1, 2, 4, 8]


def test_secrets_never_reach_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "s3cr3t-service-role-key-value"
    logs.configure(level="INFO", json=True, secrets=[secret])
    log = structlog.get_logger("t")
    log.info("connecting", url="postgresql://app:hunter22@db.example.com:5432/x", key=secret)
    logging.getLogger("celery").warning("broker redis://:p4ssw0rd@redis:6379/0 and %s", secret)
    log.info("token", value="eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.abcdefghijk")
    err = capsys.readouterr().err
    for leaked in (secret, "hunter22", "p4ssw0rd", "eyJhbGciOiJIUzI1NiJ9"):
        assert leaked not in err
    lines = [json.loads(line) for line in err.splitlines()]
    assert lines[0]["url"] == "postgresql://app:***@db.example.com:5432/x"


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (errors.AdminShutdown(), True),  # 57P01: the server is going down
        (errors.DeadlockDetected(), True),  # 40P01: the same call wins a moment later
        (errors.TooManyConnections(), True),  # 53300
        (errors.ProgramLimitExceeded(), False),  # 54000: a value too large, every time
        (errors.StringDataRightTruncation(), False),  # 22001: the data is wrong
        (errors.UndefinedFunction(), False),  # 42883: causa is not installed
        (psycopg.OperationalError("connection lost"), True),  # no answer from the server
    ],
)
def test_only_connectivity_errors_are_transient(error: Exception, transient: bool) -> None:
    # a statement that fails on its data fails again: retrying it would jam the queue
    assert retry.is_transient(error) is transient
