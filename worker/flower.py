"""Celery Flower on causa's app, always behind basic authentication.

Flower reads its options from ``FLOWER_*`` environment variables as well as from its command
line; the credentials go through ``FLOWER_BASIC_AUTH`` in this process's own environment, so
they never appear in `ps`. Flower's unauthenticated API stays off. Flower itself serves
``/metrics`` (Prometheus) and ``/healthcheck`` without authentication, by design.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass

from shared.settings import ConfigError, Monitoring, Settings

# 24 random bytes: about 190 bits, far beyond guessing over HTTP.
GENERATED_PASSWORD_BYTES = 24
# Flower's own switch for an API without authentication: never on for causa.
UNAUTHENTICATED_API = "FLOWER_UNAUTHENTICATED_API"
BASIC_AUTH = "FLOWER_BASIC_AUTH"


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str
    generated: bool


def credentials(settings: Monitoring) -> Credentials:
    """The user and password from settings, or a random password when none is set.

    Flower splits its basic-auth option at commas (it holds a list of `user:password`), so a
    comma would silently create a second, different credential: refused, as is a colon in the
    user name. Flower compares credentials with `hmac.compare_digest`, ASCII only.
    """
    user = settings.flower_user
    if not user or ":" in user or "," in user or not user.isascii():
        raise ConfigError(
            f"CAUSA_FLOWER_USER={user!r}: give a non-empty ASCII name without ':' or ','"
        )
    if settings.flower_password is None or not settings.flower_password.get_secret_value():
        return Credentials(user, secrets.token_urlsafe(GENERATED_PASSWORD_BYTES), generated=True)
    password = settings.flower_password.get_secret_value()
    if "," in password or not password.isascii():
        raise ConfigError(
            "CAUSA_FLOWER_PASSWORD: use ASCII characters without ',' (Flower splits its"
            " credentials at commas)"
        )
    return Credentials(user, password, generated=False)


def run(settings: Settings, creds: Credentials, port: int, address: str) -> None:
    """Start Flower in this process and serve until stopped."""
    settings.require_redis_url()
    os.environ[BASIC_AUTH] = f"{creds.user}:{creds.password}"
    os.environ.pop(UNAUTHENTICATED_API, None)
    if creds.generated:
        # Once, on stderr, never through the log: the operator needs it to log in.
        print(
            f"flower: no CAUSA_FLOWER_PASSWORD set; user {creds.user!r}, generated password:"
            f" {creds.password}",
            file=sys.stderr,
            flush=True,
        )
    from worker.app import app as celery  # lazy: after FLOWER_* are set in the environment

    # Flower applies tasks by name from its own app (POST /api/task/async-apply/<name>):
    # the task modules must be imported, as a worker does.
    celery.loader.import_default_modules()
    celery.start(["flower", f"--port={port}", f"--address={address}"])
