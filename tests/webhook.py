"""A local HTTP receiver for notifications: Apprise's generic JSON webhook
(`json://127.0.0.1:<port>/`) posts {"version", "title", "message", "attachments", "type"} to
it; the receiver keeps every body, in order of arrival."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with received._lock:
                    received.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:  # keep the test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self.url = f"json://127.0.0.1:{self.port}/"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def titled(self, event: str) -> list[dict[str, Any]]:
        """The notifications of one event: causa titles them "[<event>] ..."."""
        with self._lock:
            return [b for b in self.bodies if str(b.get("title", "")).startswith(f"[{event}]")]
