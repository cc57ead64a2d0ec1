"""kombu's Redis transport, with a closed connection reported as what it is.

When Redis goes away, kombu closes the connection's channels one by one and stops at the first
whose close fails (its outstanding BRPOP, or the restore of its unacknowledged messages, cannot
reach Redis); then it drops the connection's details. Celery closes the channels left over a
moment later, while it reconnects; each asks for a new pool, finds no details and raises
AttributeError ("'NoneType' object has no attribute 'hostname'"), which the worker takes for an
unrecoverable error: it exits (kombu 5.7.0; tests/faults/test_broker_transport.py shows it).
Here that request fails with redis' ConnectionError instead: Celery ignores it while closing
and reconnects. The messages it could not restore stay in Redis' unacknowledged set, which any
worker restores after the visibility timeout (or they went with Redis; beat's poll finds their
tickets either way).
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis

# Celery's `broker_transport` for redis:// and rediss:// broker URLs.
TRANSPORT = f"{__name__}:Transport"


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport is None or transport.client is None:
            raise redis.ConnectionError("the broker connection was closed: reconnecting")
        params: dict[str, Any] = super()._connparams(asynchronous)  # type: ignore[no-untyped-call]
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel


def transport_for(url: str | None) -> str | None:
    """The transport for a broker URL: this one for Redis, kombu's own for anything else."""
    scheme = (url or "").partition("://")[0]
    return TRANSPORT if scheme in ("redis", "rediss") else None
