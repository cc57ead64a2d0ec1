"""Notifications through Apprise: Slack, Discord, Telegram, e-mail and any Apprise URL.

INTERFACE ONLY (being implemented): `Notifier(settings, redis=None).send(...)` never raises.
"""

from __future__ import annotations

from typing import Any, Literal

from shared.settings import Settings

Level = Literal["info", "success", "warning", "failure"]


class Notifier:
    def __init__(self, settings: Settings, redis: Any = None) -> None:
        self.settings = settings
        self.redis = redis

    def send(
        self,
        event: str,
        title: str,
        body: str,
        *,
        level: Level = "info",
        key: str | None = None,
        every: float | None = None,
    ) -> bool:
        """Send to every configured channel; False when nothing was sent (no channel,
        throttled, or every channel failed). With `key`, the same key is sent at most once
        per `every` seconds (default settings.notify_every), across processes via Redis."""
        return False
