"""API: `causa serve` (2 processes) under an open-loop load of single-text predictions, then
saturated with batches of 100.

Starts `causa serve --workers 2` on a free port with the bootstrap model (then again with the
model `causa train`'s search chose, when there is one), makes an API key with the predict
scope, and drives the API from a separate load-generator process (this file again, with
--load-generator):

1. single texts, open loop: `POST /v1/predict` with one demo ticket's text, on a fixed
   schedule of --rate requests a second for --seconds (after --warmup seconds at the same
   rate, not counted), whatever the answers. A request's latency runs from the time the
   schedule gave it, not from when it went out, so a stall of the server (or of the
   generator) shows as latency, not as fewer requests. No request waits for another: when
   every keep-alive connection is busy a new one is opened (up to MAX_CONNECTIONS; past
   that a request waits for a connection, and its wait counts). A request not answered
   DRAIN_S after the last one was sent is an error, and its latency is infinite. The 32
   connections opened first are spread evenly over the API's processes (they share one
   socket, and a burst of connections tends to land on one), and each process answers one
   prediction before the schedule starts (a process loads its model at its first).
2. batches of 100 texts, closed loop: --batch-concurrency connections each send a batch as
   soon as their last one is answered (the API is saturated) for --seconds; tickets/s counts
   the texts of the answers that arrived in those seconds.

The generator is one asyncio event loop with a minimal HTTP/1.1 client (requests encoded
before the clock starts, answers read by Content-Length), at a raised priority when it may:
about 8 % of a core at 500 requests/s, so it keeps its schedule while the server uses the
cores. It reports its own lateness: how long after its scheduled time each request was
written to its socket (less any time spent opening a connection or waiting for one, which
is the server's doing). Lateness adds to the latencies, never hides them; when many sends
are late the output says so. It also reports the CPU the API's processes, itself and the
rest of the machine used while the counted requests went out.

With --explain, every request also asks for the terms that raised each cause (what
explanations cost a caller: run it with and without).

    python bench/api.py [--rate 500] [--seconds 30] [--searched-models DIR] [--explain] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from shared.settings import Settings, load_settings
from training import registry
from worker import demodata, processes, services

HOST = "127.0.0.1"
WORKERS = 2  # API processes: one per core of the benchmark machine
BATCH = 100  # texts per request in the batch phase (the figure)
# Batch connections: 4 per API process keeps both busy without much queueing before them.
BATCH_CONCURRENCY = 8
WARMUP_S = 5.0  # at the same rate, not counted
BATCH_WARMUP_S = 2.0
# Opened before the schedule starts and used in turn, as many held by each API process.
WARM_CONNECTIONS = 32
# A server that stops answering is not sent thousands of sockets: past this many connections
# a request waits for one to be free (below the usual limit of 1,024 open files a process).
MAX_CONNECTIONS = 512
# A send later than this after its scheduled time is late. Sends on time lag 0-1 ms (epoll
# waits whole milliseconds), and on 2 cores shared with the API a few lag 2-5 ms; 5 ms is a
# fifth of the 25 ms p99 target. (Lateness is in the latencies, so it never flatters them.)
LATE_MS = 5.0
# The generator's priority: on a machine the API saturates, it still runs when its next send
# is due (it needs a few percent of a core). Lowering niceness needs root; else it keeps 0.
GENERATOR_NICE = -10
LATE_SHARE = 0.01  # more late sends than this and the latencies are partly the generator's
DRAIN_S = 10.0  # after the last send, answers are awaited this long; later ones are errors
READY_TIMEOUT_S = 120.0  # for `causa serve` to answer /healthz, and a process its first predict
BALANCE_TIMEOUT_S = 30.0  # to spread the warm connections over the API processes
# Before the batch phase, until /healthz answers this fast: a server left with a backlog by
# the first phase works it off first.
SETTLED_S = 0.25
RATE_LIMIT = "100000/minute"  # the key's own limit: far above what the benchmark sends
TEXTS_SEED = 13  # apart from the bootstrap model's training data (seed 42)
TEXTS = 20_000  # distinct texts, used in turn
BOOTSTRAP_ROW = "bootstrap model"
SEARCHED_ROW = "searched model"


# --- the load generator (a process of its own) ----------------------------------------------


def parse_response(buffer: bytearray) -> tuple[int, bytes, int, bool] | None:
    """The first whole HTTP/1.1 response in `buffer`: (status, body, bytes it took, whether the
    server closes the connection after it); None until all of it has arrived."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    close = headers.get("connection") == "close"
    start = end + 4
    if headers.get("transfer-encoding") == "chunked":
        body, at = bytearray(), start
        while True:
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                return None
            size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
            if size == 0:
                trailer_end = buffer.find(b"\r\n\r\n", line_end)
                if trailer_end < 0:
                    return None
                return status, bytes(body), trailer_end + 4, close
            if len(buffer) < line_end + 2 + size + 2:
                return None
            body += buffer[line_end + 2 : line_end + 2 + size]
            at = line_end + 2 + size + 2
    length = int(headers.get("content-length", "0"))
    if len(buffer) < start + length:
        return None
    return status, bytes(buffer[start : start + length]), start + length, close


class Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection with at most one request in flight: `on_done` gets
    the answer's status and body, or status 0 when the connection was lost first."""

    def __init__(self, on_closed: Callable[[], None]) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.on_done: Callable[[int, bytes], None] | None = None
        self.on_closed = on_closed
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport  # asyncio sets TCP_NODELAY on its TCP sockets

    def send(self, request: bytes, on_done: Callable[[int, bytes], None]) -> None:
        assert self.transport is not None and self.on_done is None
        self.on_done = on_done
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        parsed = parse_response(self.buffer)
        if parsed is None:
            return
        status, body, used, close = parsed
        del self.buffer[:used]
        if close:
            self.close()
        done, self.on_done = self.on_done, None
        if done is not None:
            done(status, body)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.on_closed()
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()
        done, self.on_done = self.on_done, None
        if done is not None:
            done(0, b"")


class Pool:
    """Idle connections used in turn (first in, first out), so that the load is spread over
    every connection, and thus over the API processes that hold them."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: deque[Connection] = deque()
        self.every: list[Connection] = []
        self.opened = 0
        self.open = 0
        self.server_pids: list[int] = []  # the API's processes, when this user may see them

    def _closed(self) -> None:
        self.open -= 1

    async def connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        self.open += 1  # counted from the start: the limit holds while connections open
        try:
            _, conn = await loop.create_connection(
                lambda: Connection(self._closed), self.host, self.port
            )
        except BaseException:
            self.open -= 1
            raise
        self.opened += 1
        self.every.append(conn)
        return conn

    async def warm(self, n: int, processes: int, first: bytes) -> tuple[list[int], list[float]]:
        """n idle connections, as many held by each of the API's `processes`, and each
        process's answer to `first` awaited (a process may load its model then).

        The processes share one listening socket and the one that accepts first takes every
        connection waiting (often all of a burst): connections are opened one at a time and
        those beyond a process's share closed. Returns the connections each process holds
        (empty when which holds which cannot be told: then the first n, however spread) and
        the seconds each process took to answer `first`."""
        loop = asyncio.get_running_loop()
        share = max(1, n // processes)
        held: dict[int, list[Connection]] = {}
        known = True
        deadline = loop.time() + BALANCE_TIMEOUT_S
        while sum(min(len(c), share) for c in held.values()) < share * processes:
            fresh = []
            for _ in range(min(8, share * processes - sum(len(c) for c in held.values()))):
                conn = await self.connect()
                await asyncio.wait_for(exchange(conn, health_request(self)), READY_TIMEOUT_S)
                fresh.append(conn)
            owners = owners_of(self.port)
            if any(local_port(c) not in owners for c in fresh):  # not ours to see
                known = False
                fresh += [c for conns in held.values() for c in conns]
                held = {local_port(c): [c] for c in fresh[:n]}
                for conn in fresh[n:]:
                    conn.close()
                break
            for conn in fresh:
                conns = held.setdefault(owners[local_port(conn)], [])
                if len(conns) < share:
                    conns.append(conn)
                else:
                    conn.close()
            if loop.time() > deadline:
                break
        answers = []
        for conns in held.values():
            began = loop.time()
            status, body = await asyncio.wait_for(exchange(conns[0], first), READY_TIMEOUT_S)
            if status != 200:
                raise RuntimeError(f"the first request answered HTTP {status}: {body[:300]!r}")
            answers.append(round(loop.time() - began, 3))
        for i in range(share):  # in turn: a connection of each process after the other
            self.idle.extend(conns[i] for conns in held.values() if i < len(conns))
        if known:
            self.server_pids = sorted(held)
        return (sorted((len(c) for c in held.values()), reverse=True) if known else []), answers

    def take(self) -> Connection | None:
        while self.idle:
            conn = self.idle.popleft()
            if not conn.closed:
                return conn
        return None

    def give(self, conn: Connection) -> None:
        if not conn.closed:
            self.idle.append(conn)

    def close(self) -> None:
        """Every connection, answered or not."""
        for conn in self.every:
            conn.close()
        self.idle.clear()


async def exchange(conn: Connection, request: bytes) -> tuple[int, bytes]:
    """Send one request on `conn` and wait for its answer."""
    answer: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
    conn.send(request, lambda status, body: answer.set_result((status, body)))
    return await answer


def health_request(pool: Pool) -> bytes:
    return f"GET /healthz HTTP/1.1\r\nHost: {pool.host}:{pool.port}\r\n\r\n".encode()


def predict_request(
    host: str, port: int, key: str, texts: list[str], explain: bool = False
) -> bytes:
    body = json.dumps({"texts": texts, "explain": explain}, ensure_ascii=False).encode()
    head = (
        f"POST /v1/predict HTTP/1.1\r\nHost: {host}:{port}\r\nX-API-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def local_port(conn: Connection) -> int:
    assert conn.transport is not None
    return int(conn.transport.get_extra_info("sockname")[1])


def owners_of(port: int) -> dict[int, int]:
    """The process that holds the server's end of each connection to `port` on this machine,
    by the connection's client port (those this user may not see are missing)."""
    import psutil

    return {
        c.raddr.port: c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.laddr and c.laddr.port == port and c.raddr and c.pid is not None
    }


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def rounded(value: float | None, digits: int) -> float | None:
    """For JSON: None for no value or an infinite one (a request without an answer)."""
    return None if value is None or math.isinf(value) else round(value, digits)


def ms(seconds: float | None, digits: int = 2) -> float | None:
    return rounded(None if seconds is None else seconds * 1000, digits)


class CpuMeter:
    """CPU used between two marks: by the API's processes, by this generator and by the whole
    machine (the rest is other work on it), in cores."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.marks: list[tuple[float, float, float, float]] = []

    def mark(self) -> None:
        import psutil

        api = 0.0
        for pid in self.pids:
            with contextlib.suppress(psutil.Error):
                t = psutil.Process(pid).cpu_times()
                api += t.user + t.system
        m = psutil.cpu_times()
        busy = m.user + m.nice + m.system + getattr(m, "irq", 0) + getattr(m, "softirq", 0)
        self.marks.append((time.monotonic(), api, time.process_time(), busy))

    def cores(self) -> dict[str, float | None]:
        (w0, a0, g0, b0), (w1, a1, g1, b1) = self.marks[0], self.marks[-1]
        wall = max(w1 - w0, 1e-9)
        api, generator, machine = (a1 - a0) / wall, (g1 - g0) / wall, (b1 - b0) / wall
        return {
            "api": round(api, 2) if self.pids else None,
            "generator": round(generator, 2),
            "others": round(machine - api - generator, 2) if self.pids else None,
        }


class OpenLoop:
    """`n` requests on a fixed schedule, `rate` a second; each one's times and answer."""

    def __init__(self, pool: Pool, requests: list[bytes], rate: float, n: int, first: int) -> None:
        self.pool, self.requests, self.rate, self.n = pool, requests, rate, n
        self.first = first  # the first request counted: the warm-up's are not
        self.meter = CpuMeter(pool.server_pids)
        self.scheduled = [math.nan] * n
        self.lag = [math.nan] * n  # written, less the time spent connecting or waiting
        self.answered = [math.inf] * n
        self.status = [-1] * n  # -1: no answer; 0: connection lost; else the HTTP status
        self.valid = [False] * n
        self.waiting: deque[int] = deque()  # for a connection, all MAX_CONNECTIONS busy
        self.waited = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.outstanding = 0
        self.sending = True
        self.all_answered = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        for i in range(self.n):
            due = start + i / self.rate
            now = loop.time()
            if due > now:
                await asyncio.sleep(due - now)
            if i == self.first:
                self.meter.mark()
            self.scheduled[i] = due
            self.outstanding += 1
            conn = self.pool.take()
            if conn is not None:
                self.send(conn, i, 0.0)
            elif self.pool.open < MAX_CONNECTIONS:
                self.start(self.connect_and_send(i))
            else:
                self.waiting.append(i)
                self.waited += 1
        self.sending = False
        self.meter.mark()
        if self.outstanding:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_answered.wait(), DRAIN_S)

    def start(self, job: Coroutine[Any, Any, None]) -> None:
        """Run `job` as a task, kept until it ends (the loop holds only weak references)."""
        task = asyncio.get_running_loop().create_task(job)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def connect_and_send(self, i: int) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            conn = await self.pool.connect()
        except OSError:
            self.done(i, None, 0, b"")
            return
        self.send(conn, i, loop.time() - began)

    def send(self, conn: Connection, i: int, held_up: float) -> None:
        """Request i on `conn`; `held_up`: seconds it spent waiting for the connection."""
        conn.send(self.requests[i % len(self.requests)], functools.partial(self.done, i, conn))
        self.lag[i] = asyncio.get_running_loop().time() - self.scheduled[i] - held_up

    def done(self, i: int, conn: Connection | None, status: int, body: bytes) -> None:
        now = asyncio.get_running_loop().time()
        if status:
            self.answered[i] = now
        self.status[i] = status
        self.valid[i] = status == 200 and b'"predictions"' in body
        self.outstanding -= 1
        if self.waiting and conn is not None and not conn.closed:
            j = self.waiting.popleft()
            self.send(conn, j, now - self.scheduled[j])
            self.lag[j] = math.nan  # it waited for the server, not for the generator
        elif self.waiting and self.pool.open < MAX_CONNECTIONS:
            j = self.waiting.popleft()
            self.start(self.connect_and_send(j))
        elif conn is not None:
            self.pool.give(conn)
        if not self.sending and self.outstanding == 0:
            self.all_answered.set()

    def summary(self, seconds: float) -> dict[str, Any]:
        """Of the requests counted (those of the warm-up are not)."""
        first = self.first
        counted = range(first, self.n)
        latency = sorted(self.answered[i] - self.scheduled[i] for i in counted)
        lag = sorted(self.lag[i] * 1000 for i in counted if not math.isnan(self.lag[i]))
        kinds: dict[str, int] = {}
        for i in counted:
            if not self.valid[i]:
                kind = {-1: "no answer", 0: "connection lost"}.get(self.status[i])
                kind = kind or f"HTTP {self.status[i]}"
                kinds[kind] = kinds.get(kind, 0) + 1
        # answers with predictions that arrived in the counted seconds, to whichever request
        start = self.scheduled[first]
        ok_in_window = sum(
            1
            for i in range(self.n)
            if self.valid[i] and start <= self.answered[i] < start + seconds
        )
        return {
            "requests": len(counted),
            "errors": sum(kinds.values()),
            "error_kinds": kinds,
            # of every request: one without an answer counts as infinitely slow (None)
            "p50_ms": ms(percentile(latency, 0.50)),
            "p90_ms": ms(percentile(latency, 0.90)),
            "p99_ms": ms(percentile(latency, 0.99)),
            "p999_ms": ms(percentile(latency, 0.999)),
            "max_ms": ms(latency[-1]) if latency else None,
            "ok_per_s": round(ok_in_window / seconds, 1),
            "late_sends": sum(1 for x in lag if x > LATE_MS),
            "scheduled_sends": len(lag),  # those that did not wait for a connection
            "lag_p50_ms": rounded(percentile(lag, 0.50), 3),
            "lag_p99_ms": rounded(percentile(lag, 0.99), 3),
            "lag_max_ms": rounded(lag[-1], 3) if lag else None,
            "waited_for_connection": self.waited,
            "cpu_cores": self.meter.cores(),  # while the counted requests were sent
        }


async def single_phase(
    host: str, port: int, processes: int, requests: list[bytes], config: dict[str, Any]
) -> dict[str, Any]:
    rate, seconds, warmup = float(config["rate"]), float(config["seconds"]), config["warmup"]
    pool = Pool(host, port)
    spread, first_answers = await pool.warm(WARM_CONNECTIONS, processes, requests[0])
    first = round(rate * warmup)
    run = OpenLoop(pool, requests, rate, first + round(rate * seconds), first)
    await run.run()
    pool.close()
    return {
        **run.summary(seconds),
        "connections": pool.opened,
        "warm_connections_by_process": spread,
        "first_answer_s": first_answers,  # of each process: its model may load then
    }


async def settle(host: str, port: int) -> float:
    """Until /healthz answers within SETTLED_S (the server has worked off what the last
    phase left); the seconds that took."""
    loop = asyncio.get_running_loop()
    pool = Pool(host, port)
    began = loop.time()
    try:
        while loop.time() - began < READY_TIMEOUT_S:
            conn = pool.take() or await pool.connect()
            asked = loop.time()
            await asyncio.wait_for(exchange(conn, health_request(pool)), READY_TIMEOUT_S)
            pool.give(conn)
            if loop.time() - asked < SETTLED_S:
                break
            await asyncio.sleep(0.5)
    finally:
        pool.close()
    return round(loop.time() - began, 1)


async def batch_phase(
    host: str, port: int, processes: int, requests: list[bytes], config: dict[str, Any]
) -> dict[str, Any]:
    """Closed loop: each connection sends its next batch when its last one is answered."""
    concurrency, seconds = int(config["batch_concurrency"]), float(config["seconds"])
    loop = asyncio.get_running_loop()
    settled = await settle(host, port)
    pool = Pool(host, port)
    spread, _ = await pool.warm(concurrency, processes, requests[0])
    counted_from = loop.time() + BATCH_WARMUP_S
    stop_at = counted_from + seconds
    meter = CpuMeter(pool.server_pids)

    async def metering() -> None:
        await asyncio.sleep(counted_from - loop.time())
        meter.mark()
        await asyncio.sleep(stop_at - loop.time())
        meter.mark()

    latency: list[float] = []
    errors: dict[str, int] = {}
    texts = 0

    async def lane(k: int) -> None:
        nonlocal texts
        conn = pool.take() or await pool.connect()
        sent = k
        while loop.time() < stop_at:
            began = loop.time()
            status, body = await exchange(conn, requests[sent % len(requests)])
            sent += concurrency
            now = loop.time()
            if counted_from <= now < stop_at:
                n = len(json.loads(body).get("predictions", [])) if status == 200 else 0
                if n == BATCH:
                    latency.append((now - began) * 1000)
                    texts += n
                else:
                    kind = f"HTTP {status}" if status else "connection lost"
                    errors[kind] = errors.get(kind, 0) + 1
            if conn.closed:
                conn = await pool.connect()

    await asyncio.gather(metering(), *(lane(k) for k in range(concurrency)))
    pool.close()
    latency.sort()
    return {
        "requests": len(latency) + sum(errors.values()),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "tickets_per_s": round(texts / seconds, 1),
        "p50_ms": rounded(percentile(latency, 0.50), 1),
        "p99_ms": rounded(percentile(latency, 0.99), 1),
        "concurrency": concurrency,
        "connections_by_process": spread,
        "settle_s": settled,
        "cpu_cores": meter.cores(),
    }


def generate_load(config: dict[str, Any]) -> dict[str, Any]:
    """The generator's whole run, from its configuration: both phases, one after the other."""
    host, port, key = config["host"], int(config["port"]), config["key"]
    processes = int(config["processes"])
    texts = [
        f"{t.short_description} {t.description}" for t in demodata.generate(TEXTS, seed=TEXTS_SEED)
    ]
    explain = bool(config["explain"])
    singles = [predict_request(host, port, key, [t], explain) for t in texts]
    batches = [
        predict_request(host, port, key, texts[i : i + BATCH], explain)
        for i in range(0, len(texts) - BATCH + 1, BATCH)
    ]
    gc.freeze()  # what is built so far is never scanned again: no collector pauses mid-schedule
    single = asyncio.run(single_phase(host, port, processes, singles, config))
    batch = asyncio.run(batch_phase(host, port, processes, batches, config))
    return {"single": single, "batch": batch}


# --- the benchmark: services, the API, the generator -----------------------------------------


def healthy(port: int) -> bool:
    try:
        url = f"http://{HOST}:{port}/healthz"
        with urllib.request.urlopen(url, timeout=2) as answer:
            return int(answer.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def wait_healthy(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not healthy(port):
        if proc.poll() is not None:
            raise SystemExit(f"causa serve exited at start (code {proc.returncode}): see {log}")
        if time.monotonic() > deadline:
            raise SystemExit(f"causa serve did not answer /healthz in {READY_TIMEOUT_S:.0f} s")
        time.sleep(0.1)


def check_predict(port: int, key: str) -> str:
    """One prediction before the load: the API answers as the benchmark expects (else stop,
    with its answer); the model version it serves."""
    request = urllib.request.Request(
        f"http://{HOST}:{port}/v1/predict",
        data=json.dumps({"texts": ["no puedo entrar a la vpn"]}).encode(),
        headers={"X-API-Key": key, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=READY_TIMEOUT_S) as answer:  # noqa: S310 (http://127.0.0.1)
            body = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"POST /v1/predict answered {exc.code}: {exc.read()[:500]!r}") from None
    if len(body.get("predictions", [])) != 1:
        raise SystemExit(f"POST /v1/predict answered without one prediction: {body}")
    return str(body.get("model_version"))


def api_key(env: dict[str, str]) -> str:
    """A new key with the predict scope and a limit the benchmark stays far below."""
    name = f"bench-{os.getpid()}-{int(time.time())}"
    create = ["api-key", "create", name, "--scope", "predict", "--rate-limit", RATE_LIMIT]
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", *create, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"causa api-key create failed: {out.stderr.strip() or out.stdout}")
    return str(json.loads(out.stdout.strip().splitlines()[-1])["key"])


@contextlib.contextmanager
def serving(env: dict[str, str], models: Path, logdir: Path) -> Iterator[int]:
    """`causa serve` with WORKERS processes on a free port and the model in `models`; stopped
    (its whole process group) on the way out, however that is."""
    port = services.free_port()
    serve_env = dict(env, CAUSA_MODELS_DIR=str(models))
    args = ["serve", "--host", HOST, "--port", str(port), "--workers", str(WORKERS)]
    proc = processes.start("api", args, serve_env, logdir)
    try:
        wait_healthy(proc, port, logdir / "api.log")
        yield port
    finally:
        processes.stop([proc])


def run_generator(config: dict[str, Any]) -> dict[str, Any]:
    """The generator in a process of its own (this file, --load-generator); killed if this
    one stops first."""
    with subprocess.Popen(
        [sys.executable, __file__, "--load-generator"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # Ctrl-C reaches this process only, which stops it
    ) as proc:
        try:
            out, _ = proc.communicate(json.dumps(config))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if proc.returncode != 0:
        raise SystemExit(f"the load generator failed (exit code {proc.returncode})")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def measure(
    env: dict[str, str], models: Path, logdir: Path, key: str, args: argparse.Namespace
) -> dict[str, Any]:
    with serving(env, models, logdir) as port:
        version = check_predict(port, key)
        print(f"causa serve on port {port} with model {version}: load...", file=sys.stderr)
        result = run_generator(
            {
                "host": HOST,
                "port": port,
                "key": key,
                "processes": WORKERS,
                "rate": args.rate,
                "seconds": args.seconds,
                "warmup": args.warmup,
                "batch_concurrency": args.batch_concurrency,
                "explain": args.explain,
            }
        )
    return {"model": version, **result}


def bootstrap_models(base: Settings) -> tuple[Path, registry.ModelInfo]:
    """The bootstrap model the other benchmarks use (made once, kept under CAUSA_HOME)."""
    apart = base.model_copy(update={"models_dir": base.home / "bench-models"})
    return common.model_dir(apart, base.home)


def searched_models(base: Settings, given: Path | None) -> tuple[Path | None, str]:
    """The models directory of a model that `causa train`'s search chose, or None and why."""
    where = given or base.models_dir
    try:
        info = registry.read_manifest(where, registry.signing_key(base))
    except registry.ModelError as exc:
        return None, f"skipped: the model in {where} is refused ({exc})"
    if info is None:
        return None, f"skipped: no model in {where} (train one: causa train)"
    if info.decision == "bootstrap":
        return None, f"skipped: the model in {where} is a bootstrap model"
    return where, info.version


def kept_schedule(result: dict[str, Any]) -> bool:
    single = result["single"]
    return bool(single["late_sends"] <= LATE_SHARE * single["scheduled_sends"])


def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--rate", type=float, default=500.0, help="single-text requests a second")
    p.add_argument("--seconds", type=float, default=30.0, help="counted, of each phase")
    p.add_argument("--warmup", type=float, default=WARMUP_S, help="before the counted seconds")
    p.add_argument("--batch-concurrency", type=int, default=BATCH_CONCURRENCY)
    p.add_argument(
        "--searched-models",
        type=Path,
        help="the models directory of a model from `causa train`, for the second row"
        " (default: CAUSA_MODELS_DIR, unless its model is a bootstrap one)",
    )
    p.add_argument("--explain", action="store_true", help="every request asks for explanations too")
    p.add_argument("--load-generator", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.load_generator:
        with contextlib.suppress(OSError):  # raising its priority needs root: else as it is
            os.nice(GENERATOR_NICE)
        print(json.dumps({**generate_load(json.load(sys.stdin)), "nice": os.nice(0)}))
        return
    # SIGTERM unwinds as Ctrl-C does: every process started here is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base = load_settings()
    # The API verifies the model's signature: the key it was signed with, for every process.
    os.environ["CAUSA_MODEL_SIGNING_KEY"] = registry.signing_key(base).decode()
    models, info = bootstrap_models(base)
    searched, searched_note = searched_models(base, args.searched_models)
    load = os.getloadavg()[0]
    print(
        f"bootstrap model {info.version}; {SEARCHED_ROW}: {searched_note};"
        f" load average {load:.2f}; machine: {common.machine()}",
        file=sys.stderr,
    )
    results: dict[str, dict[str, Any]] = {}
    with common.environment(base.home, args.database_url, args.redis_url) as (settings, env):
        with psycopg.connect(settings.require_database_url(), autocommit=True) as conn:
            common.fresh_table(conn, settings)
        key = api_key(env)
        logdir = base.home / "bench-logs-api"
        results[BOOTSTRAP_ROW] = measure(env, models, logdir, key, args)
        if searched is not None:
            results[SEARCHED_ROW] = measure(env, searched, logdir / "searched", key, args)
    report(results, None if searched else searched_note, load, args)


def report(
    results: dict[str, dict[str, Any]],
    skipped: str | None,
    load: float,
    args: argparse.Namespace,
) -> None:
    def row(measure: str, cell: Callable[[dict[str, Any]], str]) -> tuple[str, ...]:
        return (measure, *(cell(r) for r in results.values()), *(["—"] if skipped else []))

    def latency(value: float | None) -> str:
        return f"{value:,.1f} ms" if value is not None else f"no answer in {DRAIN_S:g} s"

    def cpu(cores: dict[str, float | None]) -> str:
        return " / ".join(num(v, 2) for v in cores.values())

    def num(value: float | None, digits: int = 1) -> str:
        return "—" if value is None else f"{value:,.{digits}f}"

    s = "single"
    rows = [
        ("model", *(r["model"] for r in results.values()), *([skipped] if skipped else [])),
        row(
            f"single text, open loop, {args.rate:g}/s for {args.seconds:g} s: p50",
            lambda r: latency(r[s]["p50_ms"]),
        ),
        row("  p90", lambda r: latency(r[s]["p90_ms"])),
        row("  p99 (target ≤ 25 ms)", lambda r: latency(r[s]["p99_ms"])),
        row("  max", lambda r: latency(r[s]["max_ms"])),
        row("  errors (target 0)", lambda r: f"{r[s]['errors']:,} of {r[s]['requests']:,}"),
        row("  answered with predictions, a second", lambda r: f"{r[s]['ok_per_s']:,.0f}"),
        row("  connections opened", lambda r: f"{r[s]['connections']:,}"),
        row(
            "  each process's first answer",
            lambda r: " / ".join(f"{x:.2f} s" for x in r[s]["first_answer_s"]),
        ),
        row(
            f"  generator: sends > {LATE_MS:g} ms late",
            lambda r: f"{r[s]['late_sends']:,} of {r[s]['scheduled_sends']:,}",
        ),
        row(
            "  generator: lateness p99 / max",
            lambda r: f"{num(r[s]['lag_p99_ms'])} / {num(r[s]['lag_max_ms'])} ms",
        ),
        row(
            f"  waited for one of {MAX_CONNECTIONS} connections",
            lambda r: f"{r[s]['waited_for_connection']:,}",
        ),
        row("  CPU, cores: API / generator / other work", lambda r: cpu(r[s]["cpu_cores"])),
        row(
            f"batches of {BATCH}, closed loop, {args.batch_concurrency} connections:"
            " tickets/s (target ≥ 5,000)",
            lambda r: f"{r['batch']['tickets_per_s']:,.0f}",
        ),
        row(
            "  batch p50 / p99",
            lambda r: f"{num(r['batch']['p50_ms'], 0)} / {num(r['batch']['p99_ms'], 0)} ms",
        ),
        row("  batch errors", lambda r: f"{r['batch']['errors']:,} of {r['batch']['requests']:,}"),
        row("  CPU, cores: API / generator / other work", lambda r: cpu(r["batch"]["cpu_cores"])),
    ]
    kept = all(kept_schedule(r) for r in results.values())
    if not kept:
        print(
            f"warning: the load generator fell behind its schedule (over {LATE_SHARE:.0%} of"
            f" sends more than {LATE_MS:g} ms late): the latencies are partly its own",
            file=sys.stderr,
        )
    first = results[BOOTSTRAP_ROW]
    common.emit(
        rows,
        f"causa serve, {WORKERS} processes{', explanations asked' if args.explain else ''},"
        f" on {common.machine()} (load average {load:.2f})",
        {
            "single_p50_ms": first[s]["p50_ms"],
            "single_p99_ms": first[s]["p99_ms"],
            "errors": first[s]["errors"],
            "batch_tickets_per_s": first["batch"]["tickets_per_s"],
            "rate": args.rate,
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "late_sends": first[s]["late_sends"],
            "generator_lag_p99_ms": first[s]["lag_p99_ms"],
            "generator_kept_schedule": kept,
            "generator_nice": first.get("nice"),
            "batch_mode": f"closed loop, {args.batch_concurrency} connections",
            "explain": args.explain,
            "api_processes": WORKERS,
            "machine": common.machine(),
            "load_average": round(load, 2),
            "searched_model": skipped or SEARCHED_ROW,
            "runs": results,
        },
        args.json,
        columns=("measure", *results, *([SEARCHED_ROW] if skipped else [])),
    )


if __name__ == "__main__":
    main()
