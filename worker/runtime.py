"""One place wires the real parts: settings, store, model holder, built once per process,
lazily (nothing connects or loads at import) and afresh in every forked pool process."""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass

import redis
import structlog

from shared.notify import Notifier
from shared.settings import Settings, load_settings
from shared.store import TicketStore, make_store
from worker.model_holder import ModelHolder

log = structlog.get_logger("causa.runtime")


@dataclass
class Runtime:
    settings: Settings
    store: TicketStore
    models: ModelHolder
    worker: str  # who claims: host and process, shown in claimed_by
    redis: redis.Redis  # the broker's Redis: locks, the circuit breaker, notification throttles
    notifier: Notifier


@functools.cache
def settings() -> Settings:
    return load_settings()


@functools.cache
def runtime() -> Runtime:
    s = settings()
    if s.database_url is not None and s.supabase_url:
        log.info("DATABASE_URL and SUPABASE_URL are both set: using the direct connection")
    client = redis.Redis.from_url(s.require_redis_url(), socket_timeout=5, socket_connect_timeout=5)
    return Runtime(
        settings=s,
        store=make_store(s),
        models=ModelHolder(s.models_dir),
        worker=f"{socket.gethostname()}:{os.getpid()}",
        redis=client,
        notifier=Notifier(s, client),
    )


def reset() -> None:
    """Forget the parent's objects in a new child process (its pool's sockets are not ours)."""
    runtime.cache_clear()
