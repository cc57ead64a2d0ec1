"""What every command shares: the console, errors that say what to do, settings, the runtime.

Every command starts in `start` (called by the command line's callback, worker/cli/__init__.py):
settings read once, logging set up from them. A ConfigError raised anywhere in a command
becomes one line, `error: ...`, and exit code 2 (`CausaGroup` there, with `report`)."""

from __future__ import annotations

import getpass
import os
import traceback

import structlog
import typer
from rich.console import Console
from rich.markup import escape

from flows.runtime import Runtime
from shared import logs
from shared.settings import (
    ConfigError,
    Settings,
    load_settings,
    requested_log_level,
    timing_problems,
)

console = Console(stderr=True)
log = structlog.get_logger("causa.cli")


def fail(message: str) -> typer.Exit:
    """Say what is wrong on one line (never wrapped: a person greps for it) and exit 2."""
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    return typer.Exit(2)


def wants_traceback(debug: bool) -> bool:
    """An error shows its traceback with --debug or CAUSA_LOG_LEVEL=DEBUG, not otherwise."""
    if debug:
        return True
    try:
        return requested_log_level() == "DEBUG"
    except Exception:  # an invalid .env says so on its own line
        return False


def report(exc: ConfigError, debug: bool) -> typer.Exit:
    """A ConfigError as `error: <message>` (exit 2); its traceback too when asked for."""
    if wants_traceback(debug):
        console.print(escape("".join(traceback.format_exception(exc))), soft_wrap=True)
    return fail(str(exc))


def start(command: str, console_level: str | None = None) -> Settings:
    """A command's start: its settings, and logging set up as they say (the only place a
    command does; `console_level`: a quieter console for `causa health`). The log file
    records which command ran and who ran it (never its arguments: they may be ticket text)."""
    s = load_settings()
    logs.setup(s, console_level=console_level)
    structlog.get_logger(logs.FILE_ONLY).info(
        "command started", command=command, user=getpass.getuser(), pid=os.getpid()
    )
    return s


def settings() -> Settings:
    """Settings (logging was set up from them at the command's start)."""
    return load_settings()


def ready_to_run() -> Settings:
    """Settings for a process that works the queue: both services named, timing rules kept."""
    s = load_settings()
    if s.database_url is None:
        s.require_supabase()  # or say what to set
    s.require_redis_url()
    problems = timing_problems(s)
    if problems:
        raise fail("unsafe timing settings: " + "; ".join(problems))
    return s


def database_installed(s: Settings) -> None:
    """Fail now, with what to do, when causa was never migrated into this database; a database
    that does not answer yet is only logged (the worker starts and waits for it)."""
    from worker import health  # lazy: the health checks' client libraries

    try:
        health.database(s.model_copy(update={"retry_attempts": 0}))
    except ConfigError:
        raise  # not installed, not configured: the command says so and stops
    except Exception as exc:
        log.warning("database not answering at start", error=type(exc).__name__, detail=str(exc))


def runtime(s: Settings) -> Runtime:
    """This command's runtime: the real parts, tasks sent to the workers by name."""
    # lazy: the Celery app (and the model libraries behind the flows) cost a second of
    # start-up that commands without a runtime (`causa health`, `--help`) should not pay.
    from worker import bootstrap
    from worker.app import app as celery
    from worker.queue import CeleryQueue

    return bootstrap.build(s, CeleryQueue(celery))
