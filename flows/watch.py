"""The watch: alarms that need no event of their own, checked by beat every minute.

- The oldest pending ticket is older than CAUSA_STALL_AFTER: the one alarm that catches every
  stall, whatever its cause (no worker, no model, the broker lost the tasks, a bug).
- Tickets were dead-lettered: one message per CAUSA_NOTIFY_EVERY with their count and a few
  examples, never one per ticket.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flows.status import RECENT_WINDOW_S
from shared.notify import Notify
from shared.settings import Settings
from shared.store import ActivityStore

# The time of the last dead-letter report, shared by every process (beat may move).
DEAD_LETTER_MARK = "causa:watch:dead-letter-reported"


def watch(
    store: ActivityStore,
    notifier: Notify,
    client: Any,
    settings: Settings,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    mark = client.get(DEAD_LETTER_MARK)
    if mark is None:  # first run: report from now on, not the history
        client.set(DEAD_LETTER_MARK, now.isoformat())
        mark = now.isoformat().encode()
    since = datetime.fromisoformat(mark.decode())
    activity = store.activity(RECENT_WINDOW_S, since.isoformat())
    oldest = activity["oldest_pending_s"]
    stalled = oldest is not None and oldest > settings.stall_after
    if stalled:
        notifier.send(
            "backlog stalled",
            f"the oldest pending ticket waits for {oldest / 60:.0f} min",
            f"Nothing has classified it for longer than CAUSA_STALL_AFTER={settings.stall_after:g}"
            f" s. {activity['decided_recently']} tickets were decided in the last 5 minutes."
            " Check `causa status` (workers online, model in service, drift) and the worker logs.",
            level="failure",
            key="stall",
        )
    dead = int(activity["dead_lettered"])
    due = (now - since).total_seconds() >= settings.notify_every
    if dead and due:
        examples = "\n".join(
            f"{e['number']}: {e['error']}" for e in activity["dead_letter_examples"]
        )
        notifier.send(
            "tickets dead-lettered",
            f"{dead} ticket(s) failed for good since {since:%Y-%m-%d %H:%M} UTC",
            f"{examples}\n\nFix the cause, then replay them: `causa admin requeue-failed`.",
            level="warning",
        )
    if due:
        client.set(DEAD_LETTER_MARK, now.isoformat())
    return {"oldest_pending_s": oldest, "stalled": stalled, "dead_lettered": dead if due else 0}
