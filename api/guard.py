"""Who may call: the key (X-API-Key, or Authorization: Bearer), its scope, its rate limit.

A looked-up key is trusted for CAUSA_API_KEY_CACHE_S seconds (a revocation takes effect within
that long). Rate limits are moving windows in Redis (the `limits` library), so they hold in
total across every API process and machine. When Redis is down the API keeps predicting (fail
open for `predict` and `review`) and refuses admin calls (fail closed)."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.concurrency import run_in_threadpool

from api.errors import ApiError
from flows import keys
from flows.keys import Key
from shared.settings import Settings
from shared.store import KeyStore

log = structlog.get_logger("causa.api")
# Once Redis failed, requests go on without it (fail open, or closed) for this long before one
# tries it again: in a network partition each would otherwise wait out the connect timeout.
REDIS_RETRY_S = 5.0


class Guard:
    """Used on the event loop only: its checks cost no thread (a key's lookup in the database,
    once in CAUSA_API_KEY_CACHE_S, runs in one)."""

    def __init__(self, settings: Settings, store: KeyStore) -> None:
        self.settings = settings
        self.store = store
        self._cache: dict[str, tuple[float, asyncio.Future[Key | None]]] = {}
        storage = RedisStorage(
            "async+" + settings.require_redis_url(),
            implementation="redispy",
            socket_timeout=1,
            socket_connect_timeout=1,
        )
        self.limiter = MovingWindowRateLimiter(storage)
        self.default_limit = parse(settings.api_rate_limit)
        self.public_limit = parse(settings.api_public_rate_limit)
        self._redis_down_until = 0.0  # time.monotonic()

    async def key(self, given: str) -> Key | None:
        """The key's owner (cached a few seconds), None for an unknown or revoked key. A key
        is looked up once at a time: the requests that arrive meanwhile wait for that answer."""
        digest = keys.digest(given)
        hit = self._cache.get(digest)
        if hit is None or hit[0] <= time.monotonic():
            if len(self._cache) > 10_000:  # many wrong keys: start again, never grow
                self._cache.clear()
            lookup = asyncio.ensure_future(run_in_threadpool(keys.find, self.store, given))
            hit = self._cache[digest] = (time.monotonic() + self.settings.api_key_cache_s, lookup)
        try:
            return await asyncio.shield(hit[1])
        except Exception:
            if self._cache.get(digest) is hit:  # the database failed: the next one asks again
                del self._cache[digest]
            raise

    async def limit(self, item: RateLimitItem, who: str, fail_open: bool) -> None:
        """Count one request of `who` against `item`; 429 when over it."""
        if time.monotonic() < self._redis_down_until:
            self._without_redis(fail_open)
            return
        try:
            allowed = await self.limiter.hit(item, who)
            if allowed:
                return
            reset, _ = await self.limiter.get_window_stats(item, who)
        except Exception as exc:  # Redis down
            log.warning("rate limit not checked: Redis is down", error=type(exc).__name__)
            self._redis_down_until = time.monotonic() + REDIS_RETRY_S
            self._without_redis(fail_open)
            return
        retry = max(1, int(reset - time.time() + 0.999))
        raise ApiError(
            429,
            "rate_limited",
            f"over the limit of {item}: retry after {retry} s",
            headers={
                "Retry-After": str(retry),
                "RateLimit-Limit": str(item.amount),
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(retry),
            },
        )

    @staticmethod
    def _without_redis(fail_open: bool) -> None:
        if not fail_open:
            raise ApiError(
                503, "unavailable", "the broker (Redis) is down: admin calls wait until it is back"
            )


parsed_limit = functools.lru_cache(maxsize=1024)(parse)


def presented(request: Request) -> str | None:
    """The key a request carries: X-API-Key, or Authorization: Bearer KEY."""
    if key := request.headers.get("x-api-key"):
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def require(scope: str) -> Callable[[Request], Awaitable[Key]]:
    """A FastAPI dependency: the caller's key, which grants `scope`, within its rate limit."""

    async def dependency(request: Request) -> Key:
        guard: Guard = request.app.state.guard
        given = presented(request)
        if given is None:
            raise ApiError(
                401, "unauthenticated", "no API key: send it in X-API-Key (causa api-key create)"
            )
        key = await guard.key(given)
        if key is None:
            raise ApiError(401, "unauthenticated", "unknown or revoked API key")
        if not key.allows(scope):
            raise ApiError(403, "forbidden", f"key {key.name!r} lacks the {scope!r} scope")
        item = parsed_limit(key.rate_limit) if key.rate_limit else guard.default_limit
        await guard.limit(item, f"key:{key.name}", fail_open=scope != "admin")
        request.state.key = key
        return key

    dependency.scope = scope  # type: ignore[attr-defined]  # read by the route audit
    return dependency


async def public(request: Request) -> None:
    """A FastAPI dependency for the login-free endpoints: limited per client address."""
    guard: Guard = request.app.state.guard
    address = request.client.host if request.client else "unknown"
    await guard.limit(guard.public_limit, f"addr:{address}", fail_open=True)


def scope_of(dependency: Any) -> str | None:
    return getattr(dependency, "scope", None)
