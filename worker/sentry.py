"""Sentry, when SENTRY_DSN is set: errors of every process, beat schedules as Crons monitors.

Initialised once per process from Celery's signals (worker/app.py). Nothing personal is sent:
no default PII, no local variables, no request bodies, and every string of every event and
breadcrumb goes through the log's scrubber (secrets, passwords in URLs, JWTs, the ticket
texts in flight), so ticket text and secrets never leave the machine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import sentry_sdk
import structlog
from celery.schedules import schedule as interval
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.transport import Transport

from shared import logs
from shared.settings import Settings
from worker.bootstrap import worker_id

# Tags taken from the log context of the moment (bound by task_prerun and classify_batch).
CONTEXT_TAGS = ("worker", "task_name", "task_id", "model_version")
# Sentry Crons knows intervals of whole minutes only; shorter ones are left out of it.
CRONS_MIN_INTERVAL_S = 60


def not_monitorable(beat_schedule: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Patterns for the beat entries Sentry Crons cannot represent (intervals that are not a
    whole number of minutes, such as the default 5 s poll): excluded, or the SDK warns on
    every tick."""
    excluded = []
    for name, entry in beat_schedule.items():
        when = entry.get("schedule")
        if isinstance(when, interval):
            seconds: float | None = when.seconds
        elif isinstance(when, timedelta):
            seconds = when.total_seconds()
        elif isinstance(when, int | float):
            seconds = float(when)
        else:
            seconds = None  # a crontab: fine
        if seconds is not None and (seconds < CRONS_MIN_INTERVAL_S or seconds % 60):
            excluded.append(f"^{re.escape(name)}$")
    return excluded


def scrubbers(settings: Settings) -> tuple[Any, Any]:
    """Hooks for before_send (and before_send_transaction) and before_breadcrumb: a copy of
    the event or breadcrumb with every string scrubbed; events are also tagged with the log
    context of the moment (worker, task, model version)."""
    scrub = logs.scrubber(settings.secret_values(), personal=settings.mask_pii)

    def event_hook(event: Any, _hint: Any) -> Any:
        clean = logs.scrub_all(event, scrub)
        context = structlog.contextvars.get_contextvars()
        tags = clean.setdefault("tags", {})
        for key in CONTEXT_TAGS:
            if context.get(key) is not None:
                tags[key] = scrub(str(context[key]))
        return clean

    def breadcrumb_hook(crumb: Any, _hint: Any) -> Any:
        return logs.scrub_all(crumb, scrub)

    return event_hook, breadcrumb_hook


def init(
    settings: Settings,
    beat_schedule: Mapping[str, Mapping[str, Any]],
    *,
    process: str,
    transport: Transport | type[Transport] | None = None,
) -> bool:
    """Start Sentry in this process when SENTRY_DSN is set; True when it did. `process`
    (worker, beat) becomes a tag; `transport` replaces the HTTP one (tests)."""
    if settings.sentry_dsn is None:
        return False
    event_hook, breadcrumb_hook = scrubbers(settings)
    options: dict[str, Any] = {}
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        integrations=[
            CeleryIntegration(
                monitor_beat_tasks=True, exclude_beat_tasks=not_monitorable(beat_schedule)
            )
        ],
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        before_send=event_hook,
        before_send_transaction=event_hook,
        before_breadcrumb=breadcrumb_hook,
        **options,
    )
    scope = sentry_sdk.get_global_scope()
    scope.set_tag("process", process)
    scope.set_tag("worker", worker_id())  # as in claimed_by
    return True


def close() -> None:
    """Flush and stop this process's Sentry client (tests; at exit the SDK flushes itself)."""
    client = sentry_sdk.get_client()
    client.close()
    sentry_sdk.get_global_scope().set_client(None)
