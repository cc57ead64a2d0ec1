"""One place wires the real parts: settings, store, model holder, built once per process,
lazily (nothing connects or loads at import) and afresh in every forked pool process."""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.breaker import Breaker
from shared.notify import Notifier
from shared.settings import Settings, load_settings
from shared.store import TicketStore, make_store
from worker.model_holder import ModelHolder

log = structlog.get_logger("causa.runtime")
# Locks, the breaker and throttles are small calls: a Redis that does not answer in this
# long is treated as down.
REDIS_TIMEOUT_S = 5


@dataclass
class Runtime:
    settings: Settings
    store: TicketStore
    models: ModelHolder
    worker: str  # who claims: host and process, shown in claimed_by
    redis: redis.Redis  # the broker's Redis: locks, the circuit breaker, notification throttles
    notifier: Notifier
    breaker: Breaker  # holds batches back while the database fails


@functools.cache
def settings() -> Settings:
    return load_settings()


@functools.cache
def runtime() -> Runtime:
    s = settings()
    if s.database_url is not None and s.supabase_url:
        log.info("DATABASE_URL and SUPABASE_URL are both set: using the direct connection")
    client = redis.Redis.from_url(
        s.require_redis_url(),
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),  # a call fails at once; its caller knows what to do
    )
    notifier = Notifier(s, client)
    return Runtime(
        settings=s,
        store=make_store(s),
        models=ModelHolder(s.models_dir, s.model_store),
        worker=f"{socket.gethostname()}:{os.getpid()}",
        redis=client,
        notifier=notifier,
        breaker=Breaker(client, notifier, probe_interval=s.breaker_probe_interval),
    )


def reset() -> None:
    """Forget the parent's objects in a new child process (its pool's sockets are not ours)."""
    runtime.cache_clear()
