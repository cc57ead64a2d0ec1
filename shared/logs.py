"""Structured logging: structlog for causa's own events, the standard library's for Celery's,
both rendered by one formatter (JSON when not on a terminal; always JSON in the log file)
with secrets and the ticket texts in flight redacted.

One scrubber (`scrubber`) serves the log and Sentry (worker/sentry.py): secret values, passwords
in URLs and connection strings, JWTs, and the texts of the batch being classified.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import logging
import re
import sys
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import structlog
from concurrent_log_handler import ConcurrentRotatingFileHandler

from shared.text import clean, mask, normalize

if TYPE_CHECKING:
    from shared.settings import Settings

URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s]+@", re.I)
CONNINFO_PASSWORD = re.compile(r"(?P<key>\bpassword\s*=\s*)(?:'[^']*'|\S+)", re.I)
JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}")
REDACTED = "***"
TICKET_TEXT = "[ticket text]"
# Shorter values would redact ordinary words everywhere; they carry no secret worth hiding.
MIN_SECRET_CHARS = 6
MIN_TEXT_CHARS = 3

# Lines of this logger go to the log file only: the record of which command ran, which the
# person who typed it need not read back on the console.
FILE_ONLY = "causa.command"


class _InFlight:
    """The texts of the batch a context is classifying, and every form in which one could
    appear in a log line (as stored, cleaned, normalised; each also as inside JSON or a repr),
    longest first. The forms are worked out for the first line logged while the texts are in
    flight: a batch that logs nothing until it is done (the usual case) never pays for them
    (some 12 % of a worker's time when it did, for every batch)."""

    def __init__(self, texts: Iterable[str | None]) -> None:
        self.texts = [t for t in texts if t]
        self._forms: tuple[str, ...] | None = None

    def forms(self) -> tuple[str, ...]:
        if self._forms is None:
            found: set[str] = set()
            for text in self.texts:
                cleaned = clean(text)  # as the model sees it: its normal form is remembered
                for form in (text, cleaned, normalize(cleaned)):
                    found.add(form)
                    found.add(jsonlib.dumps(form)[1:-1])
                    found.add(repr(form)[1:-1])
            kept = (f for f in found if len(f) >= MIN_TEXT_CHARS)
            self._forms = tuple(sorted(kept, key=len, reverse=True))
        return self._forms


# Set by classify_batch, kept after an error so that the report made up the stack (Celery's
# failure line, Sentry's event) still hides them; the task's end clears it.
_texts_in_flight: ContextVar[_InFlight | None] = ContextVar("causa_texts_in_flight", default=None)


def hide_ticket_texts(texts: Iterable[str | None]) -> None:
    """From now on, in this context, scrub these ticket texts (replacing the previous ones)."""
    _texts_in_flight.set(_InFlight(texts))


def forget_ticket_texts() -> None:
    _texts_in_flight.set(None)


def _url_passwords(secrets: Iterable[str]) -> list[str]:
    """The passwords inside secret URLs, as written and percent-decoded."""
    found = []
    for secret in secrets:
        with contextlib.suppress(ValueError):
            password = urlsplit(secret).password
            if password:
                found += [password, unquote(password)]
    return found


def scrubber(secrets: Iterable[str], *, personal: bool = False) -> Callable[[str], str]:
    """A function that removes from a string: the given secret values (and the passwords in
    them), passwords in URLs and connection strings, JWTs, the ticket texts in flight, and
    with `personal` the personal data shared.text.mask finds (e-mail and IP addresses, card
    and phone numbers: CAUSA_MASK_PII)."""
    given = [s for s in secrets if s]
    known = sorted(
        {s for s in [*given, *_url_passwords(given)] if len(s) >= MIN_SECRET_CHARS},
        key=len,
        reverse=True,
    )

    def scrub(value: str) -> str:
        flight = _texts_in_flight.get()
        texts = flight.forms() if flight is not None and len(value) >= MIN_TEXT_CHARS else ()
        if texts and len(value) >= len(texts[-1]):
            for text in texts:
                if text in value:
                    value = value.replace(text, TICKET_TEXT)
        for secret in known:
            if secret in value:
                value = value.replace(secret, REDACTED)
        value = URL_PASSWORD.sub(rf"\g<scheme>:{REDACTED}@", value)
        value = CONNINFO_PASSWORD.sub(rf"\g<key>{REDACTED}", value)
        value = JWT.sub(REDACTED, value)
        return mask(value) if personal else value

    return scrub


def scrub_all(value: Any, scrub: Callable[[str], str]) -> Any:
    """A copy of `value` with every string in nested dicts, lists and tuples scrubbed (the
    caller's containers are left alone); an exception becomes its scrubbed repr."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, BaseException):
        return scrub(repr(value))
    if isinstance(value, Mapping):
        return {key: scrub_all(v, scrub) for key, v in value.items()}
    if isinstance(value, list):
        return [scrub_all(v, scrub) for v in value]
    if isinstance(value, tuple):
        return tuple(scrub_all(v, scrub) for v in value)
    return value


def redactor(secrets: Iterable[str], *, personal: bool = True) -> structlog.types.Processor:
    """A processor that scrubs every value of the event (see `scrubber`)."""
    scrub = scrubber(secrets, personal=personal)

    def processor(
        _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event.items():
            event[key] = scrub_all(value, scrub)
        return event

    return processor


def file_handler(path: Path, max_bytes: int, backups: int) -> ConcurrentRotatingFileHandler:
    """A handler for the log file that several processes may share (a worker and its pool
    children, beat, the listener): concurrent-log-handler takes an exclusive lock on a hidden
    lock file beside it (`.__causa.lock` for `causa.log`) for every write and rotation, and a
    process whose open file was rotated away by another reopens the path. The file rotates
    once it has reached `max_bytes` (so it may pass that by one line) into gzip-compressed
    files: causa.log.1.gz (newest) to causa.log.<backups>.gz; with no backups the full file
    is simply started afresh."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return ConcurrentRotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", use_gzip=True
    )


def configure(
    *,
    level: str = "INFO",
    json: bool | None = None,
    secrets: Iterable[str] = (),
    file: Path | None = None,
    max_bytes: int = 10 * 1024 * 1024,
    backups: int = 5,
    console_level: str | None = None,
    mask_personal: bool = True,
) -> None:
    """Configure structlog and the standard library's root logger once per process (again in
    a forked child: Celery's pool sets logging up in each): stderr, and `file` when given.
    `console_level` raises the bar for stderr alone (the file keeps `level`)."""
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor(secrets, personal=mask_personal),
    ]
    structlog.configure(
        # Lines below the level are dropped before any processor runs (per-ticket debug lines).
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a reconfiguration (a forked pool process, structlog.testing.capture_logs)
        # reaches every logger; building one per call costs microseconds.
        cache_logger_on_first_use=False,
    )

    def formatter(renderer: structlog.types.Processor) -> logging.Formatter:
        return structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )

    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(
        formatter(
            structlog.processors.JSONRenderer()
            if json
            else structlog.dev.ConsoleRenderer(colors=False)
        )
    )
    console.addFilter(lambda record: record.name != FILE_ONLY)
    if console_level is not None:
        console.setLevel(console_level.upper())
    handlers: list[logging.Handler] = [console]
    if file is not None:
        to_file = file_handler(file, max_bytes, backups)
        to_file.setFormatter(formatter(structlog.processors.JSONRenderer()))
        handlers.append(to_file)
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, ConcurrentRotatingFileHandler):
            old.close()
    root.handlers[:] = handlers
    root.setLevel(level.upper())


def setup(
    settings: Settings, extra_secrets: Iterable[str] = (), *, console_level: str | None = None
) -> None:
    """Logging as the settings say: level, console format, secrets to redact, the log file.

    The one way an entry point sets logging up, at its start: every `causa` command (the
    command line's callback, worker/cli/__init__.py), and the worker, beat and their pool
    processes (Celery's setup_logging signal, worker/app.py). `extra_secrets`: values to
    redact that are not settings (a password generated at start); `console_level`: a quieter
    console for a command whose output is its answer (`causa health`)."""
    configure(
        level=settings.log_level,
        json=settings.log_json,
        secrets=[*settings.secret_values(), *extra_secrets],
        file=settings.log_file,
        max_bytes=settings.log_max_bytes,
        backups=settings.log_backups,
        console_level=console_level,
        mask_personal=settings.mask_pii,
    )
