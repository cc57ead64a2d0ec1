"""Redis goes away under channels that are waiting for messages and hold unacknowledged ones,
as a worker's channels are: kombu's own transport then leaves channels open after dropping the
connection's details, and closing one of them later, as Celery does while it reconnects, raises
AttributeError, which stops a worker. causa's transport (worker/broker.py) reports a connection
error instead, which Celery ignores while closing."""

# mypy: disallow-untyped-calls=False
# (kombu is untyped)

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.transport import redis as kombu_redis

from tests.redis_server import RedisServer
from worker import broker as causa_broker

QUEUES = 3


def channels_closed_after_redis_left(broker: RedisServer, transport: str) -> Iterator[Exception]:
    """What closing each channel raises once Redis stopped and the connection was collected
    and closed, in the order Celery's consumer does on a lost connection."""
    conn = Connection(broker.url, transport=transport)
    queues = [Queue(f"q{i}", Exchange(f"q{i}"), f"q{i}") for i in range(QUEUES)]
    with conn.Producer() as producer:
        for queue in queues:
            producer.publish({"n": 1}, exchange=queue.exchange, routing_key=queue.routing_key,
                             declare=[queue])  # fmt: skip
    channels, received = [], []
    for queue in queues:
        channel = conn.channel()
        channel.basic_qos(prefetch_count=1)
        conn.Consumer(queue, callbacks=[lambda _, m: received.append(m)], channel=channel).consume()
        channels.append(channel)
    while len(received) < QUEUES:
        conn.drain_events(timeout=5)
    for channel in channels:  # each one waiting for its next message, one unacknowledged
        if not channel._in_poll:
            channel._brpop_start()
    broker.stop()
    for step in (lambda: conn.collect(socket_timeout=1), conn.close):
        try:
            step()
        except (OSError, *conn.connection_errors):
            pass
    for channel in channels:
        try:
            channel.close()
        except Exception as exc:
            yield exc


def test_kombus_transport_stops_a_worker_when_redis_goes_away(broker: RedisServer) -> None:
    # the upstream bug the transport works around: if this fails, kombu has mended it and
    # worker/broker.py can go
    errors = list(channels_closed_after_redis_left(broker, f"{kombu_redis.__name__}:Transport"))
    assert any(isinstance(e, AttributeError) and "hostname" in str(e) for e in errors), errors


def test_causas_transport_reports_a_lost_connection_which_celery_ignores(
    broker: RedisServer,
) -> None:
    errors = list(channels_closed_after_redis_left(broker, causa_broker.TRANSPORT))
    conn = Connection(broker.url)  # only its error classes are used
    assert errors, "closing after Redis left fails"
    assert all(isinstance(e, conn.connection_errors) for e in errors), errors


@pytest.mark.parametrize(
    ("url", "transport"),
    [
        ("redis://127.0.0.1:6379/0", causa_broker.TRANSPORT),
        ("rediss://redis.example:6380/0", causa_broker.TRANSPORT),
        ("sentinel://s1:26379", None),
        ("amqp://guest@localhost//", None),
        (None, None),
    ],
)
def test_the_transport_is_causas_for_redis_urls_only(
    url: str | None, transport: str | None
) -> None:
    assert causa_broker.transport_for(url) == transport
