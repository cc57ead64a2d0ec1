"""What every command shares: the console, errors that say what to do, settings, the runtime."""

from __future__ import annotations

import typer
from rich.console import Console

from flows.runtime import Runtime
from shared import logs
from shared.settings import ConfigError, Settings, load_settings, timing_problems

console = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def settings() -> Settings:
    """Settings, with logging set up as they say."""
    s = load_settings()
    logs.setup(s)
    return s


def ready_to_run() -> Settings:
    """Settings for a process that works the queue: both services named, timing rules kept."""
    s = load_settings()
    try:
        if s.database_url is None:
            s.require_supabase()  # or say what to set
        s.require_redis_url()
    except ConfigError as exc:
        raise fail(str(exc)) from None
    problems = timing_problems(s)
    if problems:
        raise fail("unsafe timing settings: " + "; ".join(problems))
    return s


def runtime(s: Settings) -> Runtime:
    """This command's runtime: the real parts, tasks sent to the workers by name."""
    # lazy: the Celery app (and the model libraries behind the flows) cost a second of
    # start-up that commands without a runtime (`causa health`, `--help`) should not pay.
    from worker import bootstrap
    from worker.app import app as celery
    from worker.queue import CeleryQueue

    try:
        return bootstrap.build(s, CeleryQueue(celery))
    except ConfigError as exc:
        raise fail(str(exc)) from None
