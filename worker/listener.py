"""The event path: LISTEN for the insert trigger's notifications, gather them for a few
milliseconds, enqueue enough classify tasks. Notifications are hints; beat's poll is the
safety net for whatever is missed while the listener is down."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import psycopg
import structlog

from shared.schema import CHANNEL
from shared.settings import ConfigError, Settings
from shared.store import CONNECT_TIMEOUT_S, KEEPALIVE, is_pooled

log = structlog.get_logger("causa.listener")
# Reconnect delays: from 0.5 s doubling to 30 s, so a restarted database is found quickly
# and a long outage costs one attempt every 30 s.
RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 30.0
IDLE_WAKEUP_S = 1.0  # how often the loop looks at the stop flag while nothing arrives
HEARTBEAT_S = 30.0  # an idle connection proves itself alive this often (SELECT 1)
# A heartbeat not answered in this long means a dead connection, even one whose TCP still
# looks fine (a proxy or NAT that keeps acknowledging): it is shut down and reconnected.
HEARTBEAT_TIMEOUT_S = 10.0


class Health(Protocol):
    """Where the listener reports: tickets heard, the connection alive, the path down."""

    def heard(self, tickets: int) -> None: ...

    def alive(self) -> None: ...

    def down(self, error: str) -> None: ...


class Silent:
    """No one to report to."""

    def heard(self, tickets: int) -> None:
        pass

    def alive(self) -> None:
        pass

    def down(self, error: str) -> None:
        pass


def gather(conn: psycopg.Connection[Any], window_s: float) -> int:
    """Block up to IDLE_WAKEUP_S for a notification; then gather for `window_s` more.
    Returns how many pending tickets the notifications announced (0 if none came)."""
    count = 0
    for note in conn.notifies(timeout=IDLE_WAKEUP_S, stop_after=1):
        count += _announced(note.payload)
    if count and window_s > 0:
        deadline = time.monotonic() + window_s
        while (left := deadline - time.monotonic()) > 0:
            for note in conn.notifies(timeout=left):
                count += _announced(note.payload)
    return count


def heartbeat(conn: psycopg.Connection[Any], timeout_s: float) -> None:
    """SELECT 1, answered within `timeout_s`, or the connection's socket is shut down: the
    wait then ends in an OperationalError, as for a connection the server closed."""
    timer = threading.Timer(timeout_s, _shut_down, args=(conn.fileno(),))
    timer.start()
    try:
        conn.execute("SELECT 1")
    finally:
        timer.cancel()


def _shut_down(fd: int) -> None:
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
        sock.shutdown(socket.SHUT_RDWR)


def _announced(payload: str) -> int:
    try:
        return max(1, int(payload))
    except ValueError:
        return 1


def _enqueue(enqueue: Callable[[int], int], announced: int) -> None:
    try:
        log.debug("tickets announced", tickets=announced, tasks=enqueue(announced))
    except Exception as exc:  # broker down: beat's poll picks the tickets up later
        log.warning("could not enqueue", tickets=announced, error=f"{type(exc).__name__}: {exc}")


def run(
    settings: Settings,
    enqueue: Callable[[int], int],
    stop: threading.Event | None = None,
    health: Health | None = None,
) -> None:
    """Listen until `stop` is set, reconnecting with backoff when the connection drops;
    an idle connection runs a heartbeat every HEARTBEAT_S, and `health` hears of it all."""
    url = settings.require_database_url()
    if is_pooled(url):
        raise ConfigError(
            "the listener needs LISTEN, which Supabase's transaction pooler (port 6543) does not"
            " support: give it a direct or session-mode URL (port 5432) in DATABASE_URL"
        )
    stop = stop or threading.Event()
    health = health or Silent()
    delay = RECONNECT_FIRST_S
    window_s = settings.listen_window_ms / 1000
    while not stop.is_set():
        try:
            with psycopg.connect(
                url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, **KEEPALIVE
            ) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                log.info("listening", channel=CHANNEL)
                health.alive()
                delay = RECONNECT_FIRST_S
                _enqueue(enqueue, 0)  # 0: catch up on what arrived while we were away
                beat = time.monotonic() + HEARTBEAT_S
                while not stop.is_set():
                    announced = gather(conn, window_s)
                    if announced:
                        health.heard(announced)
                        _enqueue(enqueue, announced)
                    if time.monotonic() >= beat:
                        heartbeat(conn, HEARTBEAT_TIMEOUT_S)  # a dead connection fails here
                        health.alive()
                        beat = time.monotonic() + HEARTBEAT_S
        except psycopg.OperationalError as exc:
            log.warning(
                "listener connection lost: the event path is down",
                error=str(exc)[:300],
                retry_in_s=delay,
            )
            health.down(str(exc)[:300])
            stop.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
