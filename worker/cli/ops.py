"""Commands for the person on call: status, health, a test notification."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Annotated

import typer

from flows import status as report_status
from shared import logs, notify
from shared.settings import ConfigError, load_settings
from worker.cli import render
from worker.cli.common import console, runtime, settings
from worker.health import CHECKS


def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The backlog and its oldest ticket, recent throughput, the model in service, the last
    training decision, drift and the workers online."""
    s = settings()
    rt = runtime(s)
    try:
        report = report_status.gather(rt)
    finally:
        rt.close()
    if as_json:
        print(json.dumps(report, default=str))
        return
    render.table(f"causa status: {s.table}", ("what", "value"), render.status_rows(report))


def health() -> None:
    """Exit 0 when the database and the broker both answer within seconds, else 1 (one line
    per check; the healthcheck of causa's containers)."""
    s = load_settings(retry_attempts=0)  # logging was set up at start, errors only on stderr
    scrub = logs.scrubber(s.secret_values())
    healthy = True
    for name, check in CHECKS.items():
        try:
            line = check(s)
        except ConfigError as exc:  # says what to do (not migrated, not configured)
            healthy = False
            line = " ".join(f"error: {exc}".split())
        except Exception as exc:
            healthy = False
            line = " ".join(f"error: {type(exc).__name__}: {exc}".split())  # one line
        print(f"{name}: {scrub(line)}", flush=True)
    if not healthy:
        raise typer.Exit(1)


def notify_test() -> None:
    """Send a test message to every configured channel."""
    s = settings()
    found = notify.channels(s)
    if not found:
        console.print(
            f"[red]error:[/red] no notification channel configured: {notify.SETTINGS_HINT}"
        )
        raise typer.Exit(1)
    failed = 0
    for channel in found:
        ok = notify.deliver(
            channel,
            "[notify-test] causa can reach this channel",
            f"A test message from `causa notify-test` on {socket.gethostname()}.",
        )
        failed += not ok
        outcome = "ok" if ok else "FAILED"
        print(f"{channel.kind:<8} {channel.redacted:<12} {channel.source:<20} {outcome}")
    raise typer.Exit(1 if failed else 0)


COMMANDS: list[Callable[..., object]] = [status, health, notify_test]
