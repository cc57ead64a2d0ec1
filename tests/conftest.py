"""Real PostgreSQL and Redis for the whole suite, never the user's data.

Servers: TEST_DATABASE_URL / TEST_REDIS_URL when set, else those on 127.0.0.1:5432 and
:6379 when they answer, else the embedded ones (started under .causa/test-services). The
suite works in a throwaway database (dropped at the end) and its own Redis database index,
and points every setting causa reads at them, so a user's DATABASE_URL, REDIS_URL and
models are never touched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/test"
LOCAL_REDIS = "redis://127.0.0.1:6379"
TEST_SERVICES = ROOT / ".causa" / "test-services"
EMBEDDED: list[str] = []  # the embedded servers this run started, stopped at its end
REDIS_DB = 13  # the suite's own index: far from the 0 a user's broker has
SIGNING_KEY = "causa-test-suite-model-signing-key-0123456789abcdef"  # tests.helpers.KEY
CLEARED = (
    "SUPABASE_URL",
    "SUPABASE_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SENTRY_DSN",
    "MLFLOW_TRACKING_URI",
)


def _postgres_admin_url() -> str:
    if url := os.environ.get("TEST_DATABASE_URL"):
        return url
    try:
        psycopg.connect(LOCAL_PG, connect_timeout=2).close()
        return LOCAL_PG
    except psycopg.OperationalError:
        from worker import services

        EMBEDDED.append("postgres")
        return services.start_postgres(TEST_SERVICES, "postgres")


def _redis_url() -> str:
    if url := os.environ.get("TEST_REDIS_URL"):
        base = url
    else:
        try:
            redis.Redis.from_url(LOCAL_REDIS, socket_timeout=2).ping()
            base = LOCAL_REDIS
        except redis.RedisError:
            from worker import services

            EMBEDDED.append("redis")
            base = services.start_redis(TEST_SERVICES).rsplit("/", 1)[0]
    return f"{base.rstrip('/')}/{REDIS_DB}" if base.count("/") == 2 else base


def pytest_configure(config: pytest.Config) -> None:
    admin = _postgres_admin_url()
    name = f"causa_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    home = Path(tempfile.mkdtemp(prefix="causa-test-"))
    config.stash[_STATE] = (admin, name, home)
    for key in CLEARED:
        os.environ.pop(key, None)
    os.environ.update(
        DATABASE_URL=make_conninfo(admin, dbname=name),
        REDIS_URL=_redis_url(),
        CAUSA_HOME=str(home / "home"),
        CAUSA_MODELS_DIR=str(home / "models"),
        CAUSA_LOG_JSON="true",
        CAUSA_MODEL_SIGNING_KEY=SIGNING_KEY,
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    admin, name, home = state
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    shutil.rmtree(home, ignore_errors=True)
    if EMBEDDED:
        from worker import services

        if "postgres" in EMBEDDED:
            services.stop_postgres(TEST_SERVICES)
        if "redis" in EMBEDDED:
            services.stop_redis(TEST_SERVICES)


_STATE = pytest.StashKey[tuple[str, str, Path]]()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With CAUSA_FAIL_ON_SKIP set (`make test`, CI) a skipped test fails the run."""
    reporter: Any = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("CAUSA_FAIL_ON_SKIP") and skipped:
        reporter.write_line(f"FAILED: {len(skipped)} test(s) skipped; CI allows none", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def database_url() -> str:
    return os.environ["DATABASE_URL"]


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = os.environ["REDIS_URL"]
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache") / "models"


@pytest.fixture
def settings(models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The suite's settings with this test's models and home; a command run in the test
    (CliRunner) reads the same from the environment."""
    from shared.settings import load_settings

    monkeypatch.setenv("CAUSA_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("CAUSA_HOME", str(tmp_path / "home"))
    return load_settings()


@pytest.fixture
def conn(database_url: str, settings: Any) -> Iterator[psycopg.Connection[Any]]:
    """A fresh, migrated `tickets` table in the suite's database."""
    from tests.helpers import fresh_table

    with psycopg.connect(database_url, autocommit=True) as c:
        fresh_table(c, settings)
        yield c


@pytest.fixture
def model(models_dir: Path, model_cache: Path) -> Path:
    from tests.helpers import install_model

    return install_model(models_dir, model_cache)


@pytest.fixture
def runtime_for(redis_url: str) -> Iterator[Callable[..., Any]]:
    """Build a runtime from given settings (the suite's, changed by keyword), as a process's
    entry point would, and make it the one the Celery app's tasks use; closed after the test."""
    from worker import bootstrap
    from worker.app import app
    from worker.queue import CeleryQueue

    built: list[Any] = []

    def build(settings: Any, **changes: Any) -> Any:
        runtime = bootstrap.build(settings.model_copy(update=changes), CeleryQueue(app))
        built.append(runtime)
        app.use_runtime(runtime)
        return runtime

    yield build
    app.use_runtime(None)
    for runtime in built:
        runtime.close()


@pytest.fixture
def rt(conn: psycopg.Connection[Any], settings: Any, runtime_for: Callable[..., Any]) -> Any:
    """The runtime a worker process would build from the suite's settings."""
    return runtime_for(settings)
