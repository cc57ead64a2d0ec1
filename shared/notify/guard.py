"""Apprise's own logging: records below WARNING (full URLs, payloads) dropped, the rest and
urllib3's scrubbed of the configured URLs' secret parts.

No module state: each guarded logger carries one `Scrub` filter, found in `logger.filters`
(attached on first use), and the secrets live on it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from shared.logs import REDACTED

SECRET_MIN_LEN = 6  # shorter URL parts ("mode", "to") are not secrets, and too common to scrub
# apprise logs full URLs and payloads below WARNING; urllib3 logs request lines at DEBUG
# ("POST /api/webhooks/<id>/<token>"), kept but scrubbed.
FLOORS = {"apprise": logging.WARNING, "urllib3.connectionpool": logging.NOTSET}
_ATTACH = threading.Lock()  # one Scrub per logger, and no lost update of its secrets


class Scrub(logging.Filter):
    """Drops records below `floor`, removes the configured URLs' secret parts from the rest."""

    def __init__(self, floor: int) -> None:
        super().__init__()
        self.floor = floor
        # Longest first; replaced whole, never changed in place, so a logging thread reads it
        # safely.
        self.secrets: tuple[str, ...] = ()

    def add(self, secrets: Iterable[str]) -> None:
        """Scrub `secrets` too, from now on."""
        known = set(self.secrets).union(secrets)
        self.secrets = tuple(sorted(known, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.floor:
            return False
        message = record.getMessage()
        for secret in self.secrets:
            message = message.replace(secret, REDACTED)
        record.msg, record.args = message, None
        return True


def secret_parts(url: str) -> set[str]:
    """Everything after the scheme that could be a token, a password or an id."""
    parts = urlsplit(url)
    pieces = re.split(r"[/@:]", parts.netloc + parts.path)
    pieces += [v for pair in parts.query.split("&") for v in pair.partition("=")[2].split(",")]
    found = {unquote(p) for p in pieces} | set(pieces)
    return {p for p in found if len(p) >= SECRET_MIN_LEN}


def _scrub_of(name: str) -> Scrub:
    """The Scrub filter on logger `name`, attached on first use (call with _ATTACH held)."""
    logger = logging.getLogger(name)
    for existing in logger.filters:
        if isinstance(existing, Scrub):
            return existing
    guard = Scrub(FLOORS[name])
    logger.addFilter(guard)
    return guard


def guard_apprise_logs(urls: Iterable[str]) -> None:
    """Guard Apprise's and urllib3's loggers, and scrub the secret parts of `urls` from them."""
    secrets = set[str]().union(*(secret_parts(url) for url in urls))
    with _ATTACH:
        for name in FLOORS:
            _scrub_of(name).add(secrets)
