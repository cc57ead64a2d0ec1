"""Sending: the Notify protocol, one channel alone (`deliver`), or every configured channel
(`Notifier`, throttled). Neither raises."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Literal, Protocol

import structlog

from shared.logs import scrubber
from shared.notify.channels import Channel, channels
from shared.notify.guard import guard_apprise_logs
from shared.notify.throttle import Throttle
from shared.settings import ConfigError, Settings

if TYPE_CHECKING:
    import apprise  # lazy: Apprise loads its plugins; only processes that notify pay it

log = structlog.get_logger("causa.notify")

Level = Literal["info", "success", "warning", "failure"]


class Notify(Protocol):
    """What a sender of notifications needs: the Notifier, or a fake in tests."""

    def send(
        self,
        event: str,
        title: str,
        body: str,
        *,
        level: Level = "info",
        key: str | None = None,
        every: float | None = None,
    ) -> bool: ...


def _notify_type(level: Level) -> Any:
    import apprise  # lazy: Apprise loads its plugins; only processes that notify pay it

    return apprise.NotifyType(level)


def deliver(channel: Channel, title: str, body: str, level: Level = "info") -> bool:
    """Send to one channel alone (for `causa notify-test`); never raises."""
    import apprise  # lazy: Apprise loads its plugins; only processes that notify pay it

    guard_apprise_logs([channel.url])
    try:
        one = apprise.Apprise(asset=apprise.AppriseAsset(app_id="causa"))
        one.add(channel.url)
        return bool(one.notify(body=body, title=title, notify_type=_notify_type(level)))
    except Exception as exc:  # a channel must never break its caller
        log.warning("notify.channel_error", channel=channel.kind, error=type(exc).__name__)
        return False


class Notifier:
    """Sends events to every configured channel; one Apprise object per instance (per
    process in the worker), built on first use."""

    def __init__(self, settings: Settings, redis: Any = None) -> None:
        self.settings = settings
        self.redis = redis
        self._apprise: apprise.Apprise | None = None
        self._count = 0  # channels in self._apprise
        self._throttle = Throttle(redis)
        self._lock = threading.Lock()
        # Messages quote errors: secrets and ticket texts in flight are removed, as in the log.
        self._scrub = scrubber(settings.secret_values(), personal=settings.mask_pii)

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
        """Send to every configured channel. True only when every channel accepted it; False
        when nothing was configured, the key is throttled, or a channel failed (the others
        still get it). With `key`, the same key is sent at most once per `every` seconds
        (default settings.notify_every), across processes via Redis. Never raises."""
        try:
            sender = self._sender()
            if sender is None:
                return False
            period = self.settings.notify_every if every is None else every
            if key is not None and not self._throttle.first_in_period(key, period):
                log.info("notify.throttled", notify_event=event, key=key)
                return False
            result = sender.notify(
                body=self._scrub(body or title),
                title=self._scrub(f"[{event}] {title}"),
                notify_type=_notify_type(level),
            )
            failed = [r.name for r in result if not r]
            for name in failed:
                log.warning("notify.channel_failed", notify_event=event, channel=name)
            log.info("notify.sent", notify_event=event, channels=self._count, failed=len(failed))
            return bool(result)
        except Exception as exc:  # a notification must never fail the task that sent it
            log.error("notify.error", notify_event=event, error=type(exc).__name__)
            return False

    def _sender(self) -> apprise.Apprise | None:
        """The Apprise object, built once; None when no channel is configured or usable."""
        with self._lock:
            if self._apprise is None:
                import apprise  # lazy: Apprise loads its plugins; only processes that notify pay it

                self._apprise = apprise.Apprise(asset=apprise.AppriseAsset(app_id="causa"))
                try:
                    for channel in channels(self.settings):
                        self._apprise.add(channel.url)
                        self._count += 1
                except ConfigError as exc:
                    log.error("notify.misconfigured", error=str(exc))
            return self._apprise if self._count else None
