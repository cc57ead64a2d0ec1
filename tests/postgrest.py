"""A stand-in for PostgREST's RPC endpoint, for testing the Supabase adapter here.

There is no PostgREST on these machines. This server speaks the part of its wire format that
causa uses — `POST /rest/v1/rpc/{function}` with a JSON object of named arguments, the
`apikey` and `Authorization: Bearer` headers, only the exposed schema `public` (another one
named by `Content-Profile` is refused with PGRST106), a JSON response; errors as PostgREST's JSON
`{code, message, details, hint}` with the SQLSTATE as code — and runs the call on the real
test PostgreSQL. It does not cover: JWT verification or roles (it compares the key), tables,
filters, GET/HEAD calls, Prefer headers, or connection pooling. Faults can be injected: the
next N calls answer a given HTTP status.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

from shared.store import function_call

PREFIX = "/rest/v1/rpc/"
EXPOSED = ("public",)


class PostgREST:
    def __init__(self, database_url: str, key: str) -> None:
        self.database_url, self.key = database_url, key
        self.calls: list[str] = []
        self.fail_next: list[int] = []  # HTTP statuses to answer before running calls again
        self.hang_next = 0.0  # seconds the next call waits before it is answered (a hang)
        self.retry_after = "1"  # the Retry-After header sent with an injected 429
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> PostgREST:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def reply(self, h: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        if status == 429:
            h.send_header("Retry-After", self.retry_after)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length", 0))
        args = json.loads(h.rfile.read(length) or b"{}")
        if (
            h.headers.get("apikey") != self.key
            or h.headers.get("Authorization") != f"Bearer {self.key}"
        ):
            return self.reply(
                h,
                401,
                {"code": "PGRST301", "message": "JWT invalid", "details": None, "hint": None},
            )
        if not h.path.startswith(PREFIX):
            return self.reply(
                h,
                404,
                {"code": "PGRST125", "message": "Invalid path", "details": None, "hint": None},
            )
        function = h.path[len(PREFIX) :]
        self.calls.append(function)
        # PostgREST serves only the schemas it exposes (`public` here, as on Supabase by
        # default); Content-Profile picks one of them, any other is refused.
        schema = h.headers.get("Content-Profile", EXPOSED[0])
        if schema not in EXPOSED:
            return self.reply(
                h,
                406,
                {
                    "code": "PGRST106",
                    "message": f"The schema must be one of the following: {', '.join(EXPOSED)}",
                    "details": None,
                    "hint": None,
                },
            )
        if self.hang_next:
            hang, self.hang_next = self.hang_next, 0.0
            time.sleep(hang)  # a server that does not answer: the client's timeout decides
        if self.fail_next:
            status = self.fail_next.pop(0)
            return self.reply(
                h,
                status,
                {"code": str(status), "message": "injected", "details": None, "hint": None},
            )
        query, values = function_call(function, args, schema)
        try:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                row = conn.execute(query, values).fetchone()
        except psycopg.Error as exc:
            status = 404 if exc.sqlstate == "42883" else 400
            return self.reply(
                h,
                status,
                {
                    "code": exc.sqlstate,
                    "message": str(exc).split("\n")[0],
                    "details": None,
                    "hint": None,
                },
            )
        return self.reply(h, 200, row[0] if row else None)
