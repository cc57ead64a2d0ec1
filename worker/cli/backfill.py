"""`causa backfill`: classify history on purpose, after saying how much and asking."""

from __future__ import annotations

import getpass
import socket
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from flows import backfill as flow
from shared.store import make_store
from worker.cli.common import console, fail, settings


def _when(text: str | None) -> datetime | None:
    """An ISO date or time; UTC unless it names an offset."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"--since {text!r} is not an ISO date or time (e.g. 2025-01-01)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def backfill(
    since: Annotated[
        str | None,
        typer.Option(
            help="Only tickets received since this ISO date or time (UTC unless it has an"
            " offset); rows from before causa have no received time and are left out."
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many tickets, newest first.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Classify history on purpose: queue the tickets without a cause from before the
    cut-off (the first `causa migrate`, or CAUSA_CLASSIFY_SINCE). Says how many first."""
    s = settings()
    when = _when(since)
    store = make_store(s)
    try:
        planned = flow.plan(store, when, limit)
        writes = (
            "classify them and write their cause"
            if s.mode == "apply"
            else "classify them and write causa_predicted only (CAUSA_MODE=suggest)"
        )
        scope = f", received since {when.isoformat()}" if when else ""
        cap = f", at most {limit}" if limit else ""
        console.print(
            f"backfill: {planned.tickets} ticket(s) without a cause from before the cut-off"
            f" {planned.cutoff}{scope}{cap}; the workers will {writes}."
        )
        if planned.tickets == 0:
            console.print("nothing to backfill")
            return
        if not yes:
            if not sys.stdin.isatty():
                raise fail("not confirmed: pass --yes to backfill without a terminal")
            if not typer.confirm(f"Queue {planned.tickets} ticket(s)?"):
                console.print("nothing changed")
                raise typer.Exit(1)
        who = f"causa backfill, {getpass.getuser()}@{socket.gethostname()}"
        result = flow.mark(store, planned, who)
    finally:
        store.close()
    console.print(
        f"marked {result['marked']} ticket(s) pending. causa backfill enqueues nothing itself:"
        f" beat's poll (every {s.poll_interval:g} s) finds them and hands them to the workers;"
        " `causa status` shows the backlog going down."
    )


COMMANDS = (backfill,)
