"""The familiar variables become Apprise URLs; a wrong setting is named, its secret is not."""

from __future__ import annotations

from typing import Any

import apprise
import pytest

from shared.notify import channels
from shared.settings import ConfigError, Settings

NONE: dict[str, Any] = {
    "notify_urls": "",
    "slack_webhook_url": None,
    "discord_webhook_url": None,
    "telegram_bot_token": None,
    "telegram_chat_id": None,
    "smtp_host": None,
    "smtp_port": 587,
    "smtp_user": None,
    "smtp_password": None,
    "email_from": None,
    "email_to": None,
}
SECRET = "s3cr3tPassw0rd"


def only(**values: Any) -> Settings:
    """Settings with exactly these notification values, whatever the environment holds."""
    return Settings(**{**NONE, **values})


def urls(**values: Any) -> list[str]:
    return [c.url for c in channels(only(**values))]


def test_nothing_configured_is_no_channel() -> None:
    assert channels(only()) == []


def test_webhooks_and_telegram_become_apprise_urls() -> None:
    found = channels(
        only(
            slack_webhook_url="https://hooks.slack.com/services/T0AB/B0CD/xyzXYZ123",
            discord_webhook_url="https://discord.com/api/webhooks/123456789/abc-DEF_ghi",
            telegram_bot_token="123456:AAH-secret_token",
            telegram_chat_id="-1001234567890, @causa_alerts",
        )
    )
    assert [(c.source, c.url) for c in found] == [
        ("SLACK_WEBHOOK_URL", "slack://T0AB/B0CD/xyzXYZ123"),
        ("DISCORD_WEBHOOK_URL", "discord://123456789/abc-DEF_ghi"),
        ("TELEGRAM_BOT_TOKEN", "tgram://123456:AAH-secret_token/-1001234567890/@causa_alerts"),
    ]
    assert [c.redacted for c in found] == ["slack://***", "discord://***", "tgram://***"]


def test_discordapp_host_and_a_bot_prefixed_token_are_accepted() -> None:
    assert urls(discord_webhook_url="https://discordapp.com/api/webhooks/1/tok/") == [
        "discord://1/tok"
    ]
    assert urls(telegram_bot_token="bot42:abc", telegram_chat_id="7") == ["tgram://42:abc/7"]


def email(url: str) -> Any:
    service = apprise.Apprise.instantiate(url)
    assert service is not None
    return service


def test_smtp_on_587_is_starttls_with_the_login_escaped() -> None:
    [url] = urls(
        smtp_host="smtp.example.com",
        smtp_user="alerts@example.com",
        smtp_password="p@ss:w/rd?&",
        email_from="causa@example.com",
        email_to="ops@example.com, oncall@example.org",
    )
    assert url.startswith("mailtos://")
    mail = email(url)
    assert (mail.smtp_host, mail.port, mail.secure_mode) == ("smtp.example.com", 587, "starttls")
    assert (mail.user, mail.password) == ("alerts@example.com", "p@ss:w/rd?&")
    assert mail.from_addr[1] == "causa@example.com"
    assert [t[1] for t in mail.targets] == ["ops@example.com", "oncall@example.org"]


def test_smtp_on_465_is_ssl_and_a_loopback_relay_is_plain() -> None:
    ssl = email(
        urls(smtp_host="mail.example.com", smtp_port=465, email_from="a@b.cd", email_to="x@y.zz")[0]
    )
    assert (ssl.port, ssl.secure_mode) == (465, "ssl")
    [plain_url] = urls(
        smtp_host="127.0.0.1", smtp_port=2525, email_from="a@b.cd", email_to="x@y.zz"
    )
    plain = email(plain_url)
    assert plain_url.startswith("mailto://")
    assert (plain.smtp_host, plain.port, plain.secure_mode) == ("127.0.0.1", 2525, "insecure")
    assert plain.user is None


def test_the_sender_defaults_to_an_smtp_user_that_is_an_address() -> None:
    [url] = urls(
        smtp_host="smtp.example.com",
        smtp_user="alerts@example.com",
        smtp_password=SECRET,
        email_to="ops@example.com",
    )
    assert email(url).from_addr[1] == "alerts@example.com"


def test_notify_urls_split_on_commas_and_spaces_but_not_inside_a_url() -> None:
    found = channels(
        only(
            notify_urls=" json://localhost:8000/x, mailto://u:p@example.com?to=a@b.cd,e@f.gh\n"
            "  ntfy://causa-alerts ,"
        )
    )
    assert [c.url for c in found] == [
        "json://localhost:8000/x",
        "mailto://u:p@example.com?to=a@b.cd,e@f.gh",
        "ntfy://causa-alerts",
    ]
    assert [c.source for c in found] == ["NOTIFY_URLS[1]", "NOTIFY_URLS[2]", "NOTIFY_URLS[3]"]


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"smtp_host": "smtp.example.com", "email_from": "a@b.cd"}, "EMAIL_TO"),
        ({"email_to": "ops@example.com"}, "SMTP_HOST"),
        ({"smtp_host": "h.example.com", "email_to": "ops@example.com"}, "EMAIL_FROM"),
        (
            {"smtp_host": "h.example.com", "email_to": "ops, x@y.zz", "email_from": "a@b.cd"},
            "'ops'",
        ),
        (
            {"smtp_host": "h.example.com", "email_to": "x@y.zz", "smtp_password": SECRET},
            "SMTP_USER and SMTP_PASSWORD",
        ),
        ({"slack_webhook_url": f"https://example.com/{SECRET}"}, "SLACK_WEBHOOK_URL"),
        ({"discord_webhook_url": f"https://discord.com/{SECRET}"}, "DISCORD_WEBHOOK_URL"),
        ({"telegram_bot_token": f"1:{SECRET}"}, "TELEGRAM_CHAT_ID"),
        ({"telegram_chat_id": "-100123"}, "TELEGRAM_BOT_TOKEN"),
        ({"telegram_bot_token": SECRET, "telegram_chat_id": "1"}, "<digits>:<letters>"),
        ({"notify_urls": SECRET}, "NOTIFY_URLS[1]"),
        ({"notify_urls": f"json://localhost nosuchservice://{SECRET}"}, "NOTIFY_URLS[2]"),
    ],
)
def test_bad_configuration_names_the_setting_and_hides_the_secret(
    values: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        channels(only(**values))
    assert named in str(raised.value)
    assert SECRET not in str(raised.value)
