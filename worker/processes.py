"""Start and stop causa's long-running processes (worker, beat, listener) as children, for the
demo, the benchmarks and the end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
# What each process writes once it is ready to work.
READY_MARK = {"worker": b" ready.", "listener": b"listening", "beat": b"beat: Starting"}


def start(
    name: str, args: list[str], env: dict[str, str], logdir: Path, module: str = "worker.cli"
) -> subprocess.Popen[bytes]:
    """`python -m <module> <args>` (by default `causa <args>`) in its own session, output to
    logdir/<name>.log (this run only)."""
    logdir.mkdir(parents=True, exist_ok=True)
    with (logdir / f"{name}.log").open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the parent, which stops them in order
        )


def wait_ready(
    logdir: Path, procs: dict[str, subprocess.Popen[bytes]], timeout: float = READY_TIMEOUT_S
) -> None:
    marks = {
        name: READY_MARK[kind]
        for name in procs
        if (kind := name.rstrip("0123456789")) in READY_MARK
    }
    deadline = time.monotonic() + timeout
    while marks:
        for name in list(marks):
            if procs[name].poll() is not None:
                raise RuntimeError(f"the {name} exited at start: see {logdir / name}.log")
            if marks[name] in (logdir / f"{name}.log").read_bytes():
                del marks[name]
        if marks and time.monotonic() > deadline:
            raise RuntimeError(
                f"{', '.join(marks)} not ready after {timeout:.0f} s: see the logs in {logdir}"
            )
        time.sleep(0.05)


def stop(procs: list[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL to the whole group of what did not stop."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill(p)


def kill(p: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and every child it started (its session's process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)
    p.wait()
