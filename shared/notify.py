"""Notifications through Apprise: Slack, Discord, Telegram, e-mail and any Apprise URL.

`channels(settings)` turns NOTIFY_URLS and the familiar variables (SLACK_WEBHOOK_URL, ...)
into Apprise URLs, or raises ConfigError saying what to fix. `Notifier.send` never raises.
Apprise URLs hold tokens and passwords: they are never logged, and Apprise's own log lines
below WARNING (full URLs, payloads) are dropped, the rest and urllib3's scrubbed.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import quote, unquote, urlencode, urlsplit

import structlog

from shared.logs import REDACTED, scrubber
from shared.settings import ConfigError, Settings

if TYPE_CHECKING:
    import apprise

log = structlog.get_logger("causa.notify")

Level = Literal["info", "success", "warning", "failure"]

THROTTLE_PREFIX = "causa:notify:"
SMTPS_PORT = 465  # implicit TLS; every other port gets STARTTLS (except on loopback)
LOOPBACK = ("localhost", "127.0.0.1", "::1")  # a local relay: plain SMTP, nothing leaves
SECRET_MIN_LEN = 6  # shorter URL parts ("mode", "to") are not secrets, and too common to scrub
SETTINGS_HINT = (
    "set NOTIFY_URLS (Apprise URLs), SLACK_WEBHOOK_URL, DISCORD_WEBHOOK_URL,"
    " TELEGRAM_BOT_TOKEN with TELEGRAM_CHAT_ID, or SMTP_HOST with EMAIL_TO"
)

SLACK_WEBHOOK = re.compile(
    r"^https://hooks\.slack\.com/services/([A-Z0-9]+)/([A-Z0-9]+)/([A-Za-z0-9]+)/?$"
)
DISCORD_WEBHOOK = re.compile(
    r"^https://(?:discord|discordapp)\.com/api/webhooks/([0-9]+)/([A-Za-z0-9_-]+)/?$"
)
TELEGRAM_TOKEN = re.compile(r"^[0-9]+:[A-Za-z0-9_-]+$")
TELEGRAM_CHAT = re.compile(r"^(-?[0-9]+|@?[A-Za-z_][A-Za-z0-9_]+)$")
EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")
URL_BOUNDARY = re.compile(r"[\s,;]+(?=[A-Za-z][A-Za-z0-9+.-]*://)")  # between two URLs


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


@dataclass(frozen=True)
class Channel:
    """One Apprise URL and the setting it came from. `url` holds secrets: never log it."""

    source: str  # "SLACK_WEBHOOK_URL", "NOTIFY_URLS[2]", ...
    url: str

    @property
    def kind(self) -> str:
        return self.url.split("://", 1)[0].lower()

    @property
    def redacted(self) -> str:
        return f"{self.kind}://{REDACTED}"


def channels(settings: Settings) -> list[Channel]:
    """Every configured channel; ConfigError names the setting that is wrong and the fix."""
    found = [
        Channel(f"NOTIFY_URLS[{i}]", url) for i, url in enumerate(_split(settings.notify_urls), 1)
    ]
    for channel in found:
        if "://" not in channel.url:
            raise ConfigError(
                f"{channel.source} is not an Apprise URL (scheme://...): separate several URLs"
                " with commas or spaces; see https://appriseit.com/services/"
            )
    s = settings
    if s.slack_webhook_url is not None:
        found.append(Channel("SLACK_WEBHOOK_URL", _slack(s.slack_webhook_url.get_secret_value())))
    if s.discord_webhook_url is not None:
        found.append(
            Channel("DISCORD_WEBHOOK_URL", _discord(s.discord_webhook_url.get_secret_value()))
        )
    if s.telegram_bot_token is not None or s.telegram_chat_id:
        found.append(Channel("TELEGRAM_BOT_TOKEN", _telegram(s)))
    if s.smtp_host or s.email_to or s.email_from or s.smtp_user or s.smtp_password:
        found.append(Channel("SMTP_HOST", _mailto(s)))
    _check_with_apprise(found)
    return found


def _split(value: str) -> list[str]:
    """Apprise URLs separated by commas or whitespace; a comma inside a URL (?to=a,b) stays."""
    return [u.strip(" ,;\t\n") for u in URL_BOUNDARY.split(value.strip(" ,;\t\n")) if u.strip()]


def _slack(webhook: str) -> str:
    match = SLACK_WEBHOOK.match(webhook.strip())
    if not match:
        raise ConfigError(
            "SLACK_WEBHOOK_URL is not a Slack incoming-webhook URL: expected"
            " https://hooks.slack.com/services/T.../B.../... (Slack app, Incoming Webhooks);"
            " for other Slack modes use NOTIFY_URLS with a slack:// URL"
        )
    return "slack://{}/{}/{}".format(*match.groups())


def _discord(webhook: str) -> str:
    match = DISCORD_WEBHOOK.match(webhook.strip())
    if not match:
        raise ConfigError(
            "DISCORD_WEBHOOK_URL is not a Discord webhook URL: expected"
            " https://discord.com/api/webhooks/<id>/<token> (channel settings, Integrations)"
        )
    return "discord://{}/{}".format(*match.groups())


def _telegram(s: Settings) -> str:
    if s.telegram_bot_token is None or not s.telegram_chat_id:
        raise ConfigError(
            "Telegram needs both TELEGRAM_BOT_TOKEN (from @BotFather) and TELEGRAM_CHAT_ID"
            " (the chat to post to; a group's id starts with -)"
        )
    token = s.telegram_bot_token.get_secret_value().strip().removeprefix("bot")
    if not TELEGRAM_TOKEN.match(token):
        raise ConfigError(
            "TELEGRAM_BOT_TOKEN is not a bot token: expected <digits>:<letters> as @BotFather"
            " gives it"
        )
    chats = [c for c in re.split(r"[\s,]+", s.telegram_chat_id) if c]
    bad = [c for c in chats if not TELEGRAM_CHAT.match(c)]
    if bad:
        raise ConfigError(
            f"TELEGRAM_CHAT_ID={','.join(bad)!r} is not a chat id: give the numeric id"
            " (e.g. -1001234567890) or a public @channelname"
        )
    return f"tgram://{token}/{'/'.join(quote(c, safe='@') for c in chats)}"


def _mailto(s: Settings) -> str:
    """SMTP_* and EMAIL_* as an Apprise mailto URL: SSL on 465, plain SMTP to a loopback
    relay, STARTTLS otherwise (a plain relay elsewhere: NOTIFY_URLS=mailto://...)."""
    if not s.smtp_host:
        raise ConfigError("EMAIL_TO/EMAIL_FROM/SMTP_USER are set but SMTP_HOST is not: set it")
    if not s.email_to:
        raise ConfigError(
            "SMTP_HOST is set but EMAIL_TO is not: set EMAIL_TO to the recipients"
            " (several separated by commas)"
        )
    recipients = [a for a in re.split(r"[\s,;]+", s.email_to) if a]
    bad = [a for a in recipients if not EMAIL.match(a)]
    if bad:
        raise ConfigError(f"EMAIL_TO holds {', '.join(bad)!r}: not an e-mail address")
    if (s.smtp_user is None) != (s.smtp_password is None):
        raise ConfigError("SMTP_USER and SMTP_PASSWORD go together: set both, or neither")
    sender = s.email_from or (s.smtp_user if s.smtp_user and EMAIL.match(s.smtp_user) else None)
    if not sender or not EMAIL.match(sender):
        raise ConfigError(
            "e-mail needs a sender: set EMAIL_FROM to an address (e.g. causa@example.com)"
        )
    host = s.smtp_host.strip()
    if s.smtp_port == SMTPS_PORT:
        scheme, mode = "mailtos", "ssl"
    elif host.lower() in LOOPBACK:
        scheme, mode = "mailto", "insecure"
    else:
        scheme, mode = "mailtos", "starttls"
    login = ""
    if s.smtp_user is not None and s.smtp_password is not None:
        user = quote(s.smtp_user, safe="")
        login = f"{user}:{quote(s.smtp_password.get_secret_value(), safe='')}@"
    netloc_host = f"[{host}]" if ":" in host else host
    query = urlencode(
        {"smtp": host, "from": sender, "name": "causa", "to": ",".join(recipients), "mode": mode}
    )
    return f"{scheme}://{login}{netloc_host}:{s.smtp_port}/?{query}"


def _check_with_apprise(found: list[Channel]) -> None:
    import apprise

    _guard_apprise_logs(found)
    for channel in found:
        if apprise.Apprise.instantiate(channel.url) is None:
            raise ConfigError(
                f"{channel.source} ({channel.redacted}) is not a URL Apprise can use: check"
                " its form at https://appriseit.com/services/"
            )


# --- Apprise's own logging ----------------------------------------------------------------


class _Scrub(logging.Filter):
    """Drops records below `floor`, removes the configured URLs' secret parts from the rest."""

    def __init__(self, floor: int) -> None:
        super().__init__()
        self.floor = floor

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.floor:
            return False
        message = record.getMessage()
        for secret in _SECRETS:
            message = message.replace(secret, REDACTED)
        record.msg, record.args = message, None
        return True


# Longest first; replaced whole, never changed in place, so a logging thread reads it safely.
_SECRETS: tuple[str, ...] = ()
# apprise logs full URLs and payloads below WARNING; urllib3 logs request lines at DEBUG
# ("POST /api/webhooks/<id>/<token>"), kept but scrubbed.
_GUARDS = {"apprise": _Scrub(logging.WARNING), "urllib3.connectionpool": _Scrub(logging.NOTSET)}


def _secret_parts(url: str) -> set[str]:
    """Everything after the scheme that could be a token, a password or an id."""
    parts = urlsplit(url)
    pieces = re.split(r"[/@:]", parts.netloc + parts.path)
    pieces += [v for pair in parts.query.split("&") for v in pair.partition("=")[2].split(",")]
    found = {unquote(p) for p in pieces} | set(pieces)
    return {p for p in found if len(p) >= SECRET_MIN_LEN}


def _guard_apprise_logs(found: list[Channel]) -> None:
    global _SECRETS
    known = set(_SECRETS).union(*(_secret_parts(c.url) for c in found))
    _SECRETS = tuple(sorted(known, key=len, reverse=True))
    for name, guard in _GUARDS.items():
        logger = logging.getLogger(name)
        if guard not in logger.filters:
            logger.addFilter(guard)


# --- sending ----------------------------------------------------------------------------


def _notify_type(level: Level) -> Any:
    import apprise

    return apprise.NotifyType(level)


def deliver(channel: Channel, title: str, body: str, level: Level = "info") -> bool:
    """Send to one channel alone (for `causa notify-test`); never raises."""
    import apprise

    _guard_apprise_logs([channel])
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
        self._local: dict[str, float] = {}  # throttle key -> monotonic time it expires
        self._lock = threading.Lock()
        # Messages quote errors: secrets and ticket texts in flight are removed, as in the log.
        self._scrub = scrubber(settings.secret_values())

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
            if key is not None and not self._first_in_period(key, every):
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
                import apprise

                self._apprise = apprise.Apprise(asset=apprise.AppriseAsset(app_id="causa"))
                try:
                    for channel in channels(self.settings):
                        self._apprise.add(channel.url)
                        self._count += 1
                except ConfigError as exc:
                    log.error("notify.misconfigured", error=str(exc))
            return self._apprise if self._count else None

    def _first_in_period(self, key: str, every: float | None) -> bool:
        """True for the first send of `key` in the period: Redis SET NX EX across processes,
        this process's memory when there is no Redis or it fails."""
        period = self.settings.notify_every if every is None else every
        if period <= 0:
            return True
        if self.redis is not None:
            try:
                return bool(
                    self.redis.set(THROTTLE_PREFIX + key, 1, nx=True, ex=max(1, math.ceil(period)))
                )
            except Exception as exc:  # Redis down must not silence "Redis is down"
                log.warning("notify.throttle_fallback", key=key, error=type(exc).__name__)
        now = time.monotonic()
        with self._lock:
            if self._local.get(key, 0.0) > now:
                return False
            self._local[key] = now + period
            return True
