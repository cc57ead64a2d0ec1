"""Fixtures of the fault tests: a private Redis and a notification receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer
from tests.webhook import Receiver


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, to stop and restart, whose breaker state no other test run
    can flush: never the machine's."""
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r
