"""Classifying history on purpose (`causa backfill`).

By default only tickets received after the first `causa migrate` (or since
CAUSA_CLASSIFY_SINCE) are work; tickets from before are left alone. A backfill first counts
the ones it would queue (`plan`), then, once confirmed, queues them with a received time now
(`mark`): work items in causa's own table, in one statement that writes no ticket row and
locks none. It enqueues nothing: beat's poll finds them and hands them to the workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from shared.contract import Event
from shared.store import HistoryStore

log = structlog.get_logger("causa.backfill")


@dataclass(frozen=True)
class Plan:
    """What a backfill would queue: `tickets` tickets without a cause from before `cutoff`,
    received since `since` when given, at most `limit`."""

    tickets: int
    cutoff: str
    since: datetime | None = None
    limit: int | None = None


def plan(store: HistoryStore, since: datetime | None = None, limit: int | None = None) -> Plan:
    """Count the tickets a backfill would queue; changes nothing."""
    out = store.backfill(apply=False, since=since, limit=limit)
    return Plan(int(out["tickets"]), str(out["cutoff"]), since, limit)


def mark(store: HistoryStore, planned: Plan, triggered_by: str) -> dict[str, Any]:
    """Queue the planned tickets, record it in causa.events and return {marked, enqueued: 0}."""
    # Never more than the plan counted (fewer when some were labelled or queued meanwhile).
    marked = int(store.backfill(apply=True, since=planned.since, limit=planned.tickets)["tickets"])
    result: dict[str, Any] = {"marked": marked, "enqueued": 0}
    args = {
        "cutoff": planned.cutoff,
        "since": planned.since.isoformat() if planned.since else None,
        "limit": planned.limit,
    }
    store.record_event(
        Event.ADMIN, {"task": "backfill", "triggered_by": triggered_by, "args": args, **result}
    )
    log.info("backfill marked tickets pending", triggered_by=triggered_by, **args, **result)
    return result
