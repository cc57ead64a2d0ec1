"""Structured logging: structlog for causa's own events, the standard library's for Celery's,
both rendered by one formatter (JSON when not on a terminal) with secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s]+@", re.I)
JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}")
REDACTED = "***"


def redactor(secrets: Iterable[str]) -> structlog.types.Processor:
    """A processor that removes passwords in URLs, JWTs and the given secret values."""
    known = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def scrub(value: str) -> str:
        for secret in known:
            value = value.replace(secret, REDACTED)
        value = URL_PASSWORD.sub(rf"\g<scheme>:{REDACTED}@", value)
        return JWT.sub(REDACTED, value)

    def processor(
        _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = scrub(value)
            elif isinstance(value, BaseException):
                event[key] = scrub(repr(value))
        return event

    return processor


def configure(
    *, level: str = "INFO", json: bool | None = None, secrets: Iterable[str] = ()
) -> None:
    """Configure structlog and the standard library's root logger once per process."""
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor(secrets),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
