"""Settings as Apprise URLs: NOTIFY_URLS and the familiar variables (SLACK_WEBHOOK_URL, ...),
validated; ConfigError says what to fix. The URLs hold tokens and passwords: never log them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from shared.logs import REDACTED
from shared.notify.guard import guard_apprise_logs
from shared.notify.mailto import mailto_url
from shared.settings import ConfigError, Notifications

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
URL_BOUNDARY = re.compile(r"[\s,;]+(?=[A-Za-z][A-Za-z0-9+.-]*://)")  # between two URLs


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


def channels(settings: Notifications) -> list[Channel]:
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
        found.append(Channel("SMTP_HOST", mailto_url(s)))
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


def _telegram(s: Notifications) -> str:
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


def _check_with_apprise(found: list[Channel]) -> None:
    import apprise  # lazy: Apprise loads its plugins; only processes that notify pay it

    guard_apprise_logs(c.url for c in found)
    for channel in found:
        if apprise.Apprise.instantiate(channel.url) is None:
            raise ConfigError(
                f"{channel.source} ({channel.redacted}) is not a URL Apprise can use: check"
                " its form at https://appriseit.com/services/"
            )
