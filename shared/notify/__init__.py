"""Notifications through Apprise: Slack, Discord, Telegram, e-mail and any Apprise URL.

`channels(settings)` turns NOTIFY_URLS and the familiar variables (SLACK_WEBHOOK_URL, ...)
into Apprise URLs, or raises ConfigError saying what to fix. `Notifier.send` never raises.
Apprise URLs hold tokens and passwords: they are never logged, and Apprise's own log lines
below WARNING (full URLs, payloads) are dropped, the rest and urllib3's scrubbed.

channels: settings as Apprise URLs (mailto: the e-mail one); guard: Apprise's and urllib3's
loggers; throttle: once per period; send: Notify, Notifier, deliver.
"""

from shared.notify.channels import SETTINGS_HINT, Channel, channels
from shared.notify.guard import SECRET_MIN_LEN
from shared.notify.mailto import LOOPBACK, SMTPS_PORT
from shared.notify.send import Level, Notifier, Notify, deliver
from shared.notify.throttle import THROTTLE_PREFIX, Throttle

__all__ = [
    "LOOPBACK",
    "SECRET_MIN_LEN",
    "SETTINGS_HINT",
    "SMTPS_PORT",
    "THROTTLE_PREFIX",
    "Channel",
    "Level",
    "Notifier",
    "Notify",
    "Throttle",
    "channels",
    "deliver",
]
