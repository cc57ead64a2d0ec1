"""One place wires the real parts: store, model registry and holder, notifier, breaker,
built once per process by its entry point (nothing connects or loads at import; a forked
pool process builds its own)."""

from __future__ import annotations

import os
import socket

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

from flows.runtime import Runtime, TaskQueue
from shared.breaker import Breaker
from shared.notify import Notifier
from shared.settings import Settings
from shared.store import make_store
from training.registry import ModelRegistry
from worker.model_holder import ModelHolder

log = structlog.get_logger("causa.runtime")
# Locks, the breaker and throttles are small calls: a Redis that does not answer in this
# long is treated as down.
REDIS_TIMEOUT_S = 5


def worker_id() -> str:
    """Who claims: host and process, as in claimed_by, the logs and Sentry's tags."""
    return f"{socket.gethostname()}:{os.getpid()}"


def redis_client(settings: Settings) -> redis.Redis:
    """The broker's Redis for locks, the breaker and throttles: a call fails at once (its
    caller knows what to do) instead of retrying."""
    return redis.Redis.from_url(
        settings.require_redis_url(),
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )


def build(settings: Settings, queue: TaskQueue, served: ModelHolder | None = None) -> Runtime:
    """The runtime of one process; `served`: a model holder loaded before the pool forked
    (a worker's pool process then starts with the model in memory, not loading it within
    its first task's time limit)."""
    if settings.database_url is not None and settings.supabase_url:
        log.info("DATABASE_URL and SUPABASE_URL are both set: using the direct connection")
    client = redis_client(settings)
    notifier = Notifier(settings, client)
    models = ModelRegistry.from_settings(settings)
    if served is None:
        served = ModelHolder.from_settings(settings, models)
    served.notifier = notifier
    return Runtime(
        settings=settings,
        store=make_store(settings),
        registry=models,
        models=served,
        notifier=notifier,
        breaker=Breaker(client, notifier, probe_interval=settings.breaker_probe_interval),
        redis=client,
        queue=queue,
        worker=worker_id(),
    )
