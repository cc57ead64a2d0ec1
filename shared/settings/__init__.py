"""causa's settings: the only module that reads the environment.

causa's own settings carry the ``CAUSA_`` prefix; the conventional names (``DATABASE_URL``,
``REDIS_URL``, ``SUPABASE_URL``, ...) are read as they are. Values come from the environment,
then ``.env``, then the URLs that a running ``causa up`` wrote to ``$CAUSA_HOME/services.env``.
The fields are grouped by concern in sections.py; `Settings` is all of them.
"""

from __future__ import annotations

import base64
import json
import re
import typing
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, SecretStr, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings.sections import (
    Api,
    Connections,
    Logging,
    Monitoring,
    Notifications,
    Queue,
    Retries,
    TicketTable,
    Training,
)

__all__ = [
    "Api",
    "ConfigError",
    "Connections",
    "Logging",
    "Monitoring",
    "Notifications",
    "Queue",
    "Retries",
    "Settings",
    "TicketTable",
    "Training",
    "env_names",
    "jwt_role",
    "load_settings",
    "read_env_file",
    "requested_log_level",
    "timing_problems",
]


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message says which and what to do."""


class Settings(
    BaseSettings,
    Connections,
    TicketTable,
    Queue,
    Retries,
    Training,
    Logging,
    Notifications,
    Monitoring,
    Api,
):
    model_config = SettingsConfigDict(
        env_prefix="CAUSA_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
        env_ignore_empty=True,  # NAME= in .env means unset, not an empty value
        allow_inf_nan=False,  # no setting means "never" by inf, and NaN passes every bound
    )

    @property
    def services_env(self) -> Path:
        return self.home / "services.env"

    def secret_values(self) -> list[str]:
        """Every secret these settings hold, for the log and Sentry redactors."""
        values = [getattr(self, name) for name, f in type(self).model_fields.items()]
        return [v.get_secret_value() for v in values if isinstance(v, SecretStr)]

    def require_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        raise ConfigError(
            "no database: set DATABASE_URL (a PostgreSQL URL, e.g. Supabase's direct or pooled"
            " connection string), or run `causa up` to start the embedded services"
        )

    def require_supabase(self) -> tuple[str, str]:
        """SUPABASE_URL and a key that may call causa's functions: the service-role JWT or a
        secret key (sb_secret_...). Any other key is refused: PostgREST would run causa's calls
        as a role that has no right to them."""
        if not self.supabase_url or self.supabase_key is None:
            raise ConfigError(
                "no database: set DATABASE_URL (a PostgreSQL URL), or SUPABASE_URL with"
                " SUPABASE_SERVICE_ROLE_KEY, or run `causa up` for the embedded services"
            )
        key = self.supabase_key.get_secret_value()
        role = jwt_role(key)
        if key.startswith(SECRET_KEY_PREFIX) or role == "service_role":
            return self.supabase_url, key
        if key.startswith(PUBLISHABLE_KEY_PREFIX):
            given = "a publishable key"
        elif role:
            given = f"a JWT of role {role!r}"
        else:
            given = "no Supabase API key"
        raise ConfigError(
            f"SUPABASE_SERVICE_ROLE_KEY holds {given}: causa needs the service-role key (a JWT"
            f" of role service_role) or a secret key ({SECRET_KEY_PREFIX}...), from the Supabase"
            " dashboard: Project Settings, API keys"
        )

    def require_redis_url(self) -> str:
        if self.redis_url is not None:
            return self.redis_url.get_secret_value()
        raise ConfigError(
            "no broker: set REDIS_URL (e.g. redis://localhost:6379/0),"
            " or run `causa up` to start the embedded services"
        )


# Supabase's API keys of the new kind: secret keys act as the service role, publishable keys
# as anon (and are meant for browsers).
SECRET_KEY_PREFIX = "sb_secret_"  # noqa: S105 (a prefix, not a secret)
PUBLISHABLE_KEY_PREFIX = "sb_publishable_"


def jwt_role(token: str) -> str | None:
    """The `role` claim of a JWT (not verified: only to refuse the wrong key early)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    role = payload.get("role") if isinstance(payload, dict) else None
    return role if isinstance(role, str) else None


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def env_names(field: str) -> list[str]:
    """The environment variables a field is read from: `CAUSA_<FIELD>`, or its aliases."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [c for c in alias.choices if isinstance(c, str)]
    return [f"CAUSA_{field.upper()}"]


# A value shown as it was given when it is a plain number or word, else quoted (spaces count).
_PLAIN = re.compile(r"-?[0-9][0-9_.]*\Z")
# A value longer than this is shown cut: a 1 MB variable makes no 1 MB message.
SHOWN_CHARS = 80
# What a bound is called in a message: pydantic's error type -> the words before the bound.
_BOUNDS = {
    "less_than_equal": ("le", "is above the maximum"),
    "less_than": ("lt", "must be below"),
    "greater_than_equal": ("ge", "is below the minimum"),
    "greater_than": ("gt", "must be above"),
}


def _problem(error: ErrorDetails) -> str:
    """One invalid setting as a person reads it: `NAME=value` and what is allowed."""
    where = str(error["loc"][0]) if error["loc"] else ""
    field = where if where in Settings.model_fields else None
    if field is None:  # pydantic-settings reports an aliased field under the variable's name
        field = next((f for f in Settings.model_fields if where in env_names(f)), None)
    name = where if field is None or where in env_names(field) else env_names(field)[0]
    given = error.get("input")
    secret = field is not None and "SecretStr" in repr(Settings.model_fields[field].annotation)
    if secret:
        shown = "***"
    elif isinstance(given, str) and _PLAIN.match(given):
        shown = given
    elif isinstance(given, str) and len(given) > SHOWN_CHARS:
        shown = f"{given[:SHOWN_CHARS]!r}..."
    else:
        shown = repr(given)
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        bound = ctx.get(key)
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # 0, not 0.0
        return f"{name}={shown} {words} {bound}"
    if kind == "literal_error" and field is not None:
        choices = typing.get_args(Settings.model_fields[field].annotation)
        return f"{name}={shown} must be {' or '.join(str(c) for c in choices)}"
    if kind == "value_error" and "error" in ctx:
        message = str(ctx["error"])  # causa's own validators: the message says what to do
        if message.startswith(f"{name}="):
            return message
        if isinstance(given, str) and message.startswith(repr(given)):
            return f"{name}={shown}{message[len(repr(given)) :]}"
        return f"{name}={shown}: {message}"
    return f"{name}={shown} {error['msg'].replace('Input should be', 'must be', 1)}"


def _settings(**values: object) -> Settings:
    """Settings, or a ConfigError of one line that names each invalid variable."""
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError("; ".join(_problem(e) for e in exc.errors())) from exc


class _LogLevel(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CAUSA_", env_file=".env", extra="ignore", env_ignore_empty=True
    )
    log_level: str = "INFO"


def requested_log_level() -> str:
    """CAUSA_LOG_LEVEL as set, readable even when another setting is invalid (to decide
    whether an error shows its traceback)."""
    return _LogLevel().log_level.upper()


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and .env, falling back to the URLs of a running `causa up`.
    An invalid value raises a ConfigError naming the variable, the value and what is allowed."""
    settings = _settings(**overrides)
    unset = (
        settings.database_url is None and settings.redis_url is None and not settings.supabase_url
    )
    if unset and settings.services_env.exists():
        embedded = read_env_file(settings.services_env)
        settings = _settings(
            **{
                "database_url": embedded.get("DATABASE_URL"),
                "redis_url": embedded.get("REDIS_URL"),
                **overrides,
            }
        )
    if unfilled := placeholders(settings):
        raise ConfigError(
            f"{', '.join(unfilled)} still hold{'s' if len(unfilled) == 1 else ''} the"
            f" placeholder {PLACEHOLDER!r} of .env.example: set a real secret, or comment the"
            " line out"
        )
    return settings


# What .env.example puts where a secret goes: a secret still holding it was never filled in.
PLACEHOLDER = "change-me"


def placeholders(settings: Settings) -> list[str]:
    """The secret settings that still hold .env.example's placeholder, by variable name."""
    return [
        env_names(name)[0]
        for name in Settings.model_fields
        if isinstance(value := getattr(settings, name), SecretStr)
        and PLACEHOLDER in value.get_secret_value()
    ]


def timing_problems(settings: Settings) -> list[str]:
    """The reliability rules of DESIGN.md that these settings break (empty when none).

    A lease must outlive everything a worker may still do with the ticket (the task's hard
    time limit plus the retries of its last write), or a second worker takes it while the
    first still writes; Redis must not redeliver a task before its lease ends.
    """
    s = settings
    problems = []
    if s.task_time_limit >= s.lease_seconds:
        problems.append(
            f"CAUSA_TASK_TIME_LIMIT={s.task_time_limit} must be shorter than"
            f" CAUSA_LEASE_SECONDS={s.lease_seconds}"
        )
    if s.task_time_limit + s.longest_backoff >= s.lease_seconds:
        problems.append(
            f"the task time limit plus the longest retry backoff"
            f" ({s.task_time_limit} + {s.longest_backoff:.1f} s) must be shorter than"
            f" CAUSA_LEASE_SECONDS={s.lease_seconds}: lower CAUSA_RETRY_* or raise"
            " the lease"
        )
    if s.lease_seconds >= s.visibility_timeout:
        problems.append(
            f"CAUSA_LEASE_SECONDS={s.lease_seconds} must be shorter than"
            f" CAUSA_VISIBILITY_TIMEOUT={s.visibility_timeout}"
        )
    return problems
