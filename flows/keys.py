"""The HTTP API's keys: made here (the key is shown once, only its SHA-256 is stored), found
by their first characters, compared in constant time. A key's scope grants what the scopes
before it grant: admin ⊃ review ⊃ predict.

Keys are 256-bit random values, so a fast hash is enough (a slow password hash per request
could not sustain the API's load); their first PREFIX_CHARS characters find them."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from dataclasses import dataclass
from typing import Any

from shared.settings.sections import check_rate_limit
from shared.store import KeyStore

SCOPES = ("predict", "review", "admin")
KEY_START = "causa_"  # what every key begins with: easy to recognise in a leak scan
PREFIX_CHARS = len(KEY_START) + 8  # the part that finds a key (48 random bits)
NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,100}$")
RANDOM_BYTES = 32  # 256 bits
RANDOM_CHARS = math.ceil(RANDOM_BYTES * 8 / 6)  # in base64url, unpadded: 43
# What `create` makes: anything else is no key, refused before the database is asked.
SECRET = re.compile(rf"^{KEY_START}[A-Za-z0-9_-]{{{RANDOM_CHARS}}}\Z")


@dataclass(frozen=True)
class Key:
    name: str
    scope: str
    rate_limit: str | None

    def allows(self, scope: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(scope)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(store: KeyStore, name: str, scope: str, rate_limit: str | None) -> dict[str, Any]:
    """A new key: {name, key, scopes, rate_limit}; the key itself is never stored."""
    if not NAME.match(name):
        raise ValueError(f"{name[:60]!r} is not a key name: use 1-100 letters, digits and _.@-")
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
    if rate_limit is not None:
        check_rate_limit(rate_limit)
    key = KEY_START + secrets.token_urlsafe(RANDOM_BYTES)
    store.create_api_key(name, key[:PREFIX_CHARS], digest(key), scope, rate_limit)
    granted = list(SCOPES[: SCOPES.index(scope) + 1])
    return {"name": name, "key": key, "scopes": granted, "rate_limit": rate_limit}


def find(store: KeyStore, key: str) -> Key | None:
    """The key's owner, or None for an unknown, wrong or revoked key."""
    if not SECRET.match(key):
        return None
    row = store.find_api_key(key[:PREFIX_CHARS])
    if row is None or row["revoked"] or not hmac.compare_digest(row["hash"], digest(key)):
        return None
    return Key(row["name"], row["scope"], row["rate_limit"])
