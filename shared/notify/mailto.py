"""E-mail as a channel: SMTP_* and EMAIL_* settings as one Apprise mailto URL."""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode

from shared.settings import ConfigError, Notifications

SMTPS_PORT = 465  # implicit TLS; every other port gets STARTTLS (except on loopback)
LOOPBACK = ("localhost", "127.0.0.1", "::1")  # a local relay: plain SMTP, nothing leaves
EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")


def mailto_url(s: Notifications) -> str:
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
