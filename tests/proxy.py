"""A TCP forwarder the fault tests put between causa and PostgreSQL, to cut the database off
and bring it back without touching the server the rest of the suite uses.

`Proxy(upstream).start()` listens on 127.0.0.1:<free port> and forwards every connection to
`upstream`: (host, port), or the path of a unix socket (the embedded server listens on one
only). `cut()` closes every open connection and refuses new ones (the listening socket is
closed: a server that is down) or, with `blackhole=True`, accepts them and never answers (a
network partition: the client's connect timeout decides). `restore()` forwards again, on
the same port. `drop_next_reply()` drops the connection that carries the server's next
reply instead of forwarding it: the server did the work, the client never hears of it (a
lost reply).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

Address = tuple[str, int] | str
CHUNK = 65536
DEFAULT_PG_PORT = 5432


def upstream_of(database_url: str) -> Address:
    """Where a libpq URL or conninfo connects: (host, port), or the unix socket's path."""
    params = conninfo_to_dict(database_url)
    host = str(params.get("host") or "")
    port = int(params.get("port") or DEFAULT_PG_PORT)
    if not host or host.startswith("/"):
        directory = host or "/var/run/postgresql"
        return os.path.join(directory, f".s.PGSQL.{port}")
    return (host, port)


def through(database_url: str, port: int) -> str:
    """The same database, reached through the proxy on 127.0.0.1:`port`."""
    params = {k: v for k, v in conninfo_to_dict(database_url).items() if k != "hostaddr"}
    return make_conninfo("", **{**params, "host": "127.0.0.1", "port": str(port)})


class Proxy:
    def __init__(self, upstream: Address) -> None:
        self.upstream = upstream
        self.port = 0
        self.accepted = 0  # connections forwarded, over the proxy's life
        self.refused = 0  # connections that arrived while cut in blackhole mode
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()  # both ends of every forwarded connection
        self._held: list[socket.socket] = []  # blackholed clients
        self._blackhole = False
        self._drop_reply = threading.Event()
        self.dropped = 0  # replies dropped by drop_next_reply()
        self._frozen = threading.Event()
        self._lock = threading.Lock()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()

    def start(self) -> Proxy:
        self._listen()
        return self

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by cut() or stop()
                return
            if self._blackhole:
                with self._lock:
                    self.refused += 1
                    self._held.append(client)
                continue
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        family = socket.AF_UNIX if isinstance(self.upstream, str) else socket.AF_INET
        server = socket.socket(family, socket.SOCK_STREAM)
        try:
            server.connect(self.upstream)
        except OSError:
            client.close()
            server.close()
            return
        with self._lock:
            self.accepted += 1
            self._open |= {client, server}
        pump = threading.Thread(target=self._pump, args=(server, client, True), daemon=True)
        pump.start()
        self._pump(client, server)
        pump.join()
        with self._lock:
            self._open -= {client, server}
        client.close()
        server.close()

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool = False) -> None:
        try:
            while data := source.recv(CHUNK):
                if self._frozen.is_set():
                    continue  # lost on the way; the sender's TCP saw it acknowledged
                if replies and self._drop_reply.is_set():
                    self._drop_reply.clear()
                    self.dropped += 1
                    break
                sink.sendall(data)
        except OSError:
            pass
        # One direction ended: end both, as a dropped TCP connection would.
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def drop_next_reply(self) -> None:
        """Drop the connection that carries the server's next reply, and the reply with it."""
        self._drop_reply.set()

    def freeze(self) -> None:
        """Let everything sent vanish, both ways, with every connection left open: a
        half-open connection, which only a deadline of the client's own can notice."""
        self._frozen.set()

    def cut(self, blackhole: bool = False) -> None:
        """Drop every connection; refuse (or, with `blackhole`, swallow) new ones."""
        self._blackhole = blackhole
        if not blackhole and self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        """Forward again, on the same port."""
        self._frozen.clear()
        self._blackhole = False
        with self._lock:
            held, self._held = self._held, []
        for s in held:
            s.close()
        if self._listener is None:
            self._listen()

    def stop(self) -> None:
        self.cut()
        with self._lock:
            for s in self._held:
                s.close()
            self._held = []
