"""The review desk in a real browser: one `causa serve` for the whole package, on a database of
its own, seeded through causa's real paths, and Debian's Chromium driven by Playwright.

- Database: `<suite database>_desk`, made here and dropped at the end, so the other tests'
  fresh tables (which drop causa's schema) never pull it from under the served pages.
- Tickets: plain INSERTs into `tickets` (the trigger queues them), classified by the real flow
  (`flows.classify.classify_batch`): a few at the usual threshold (classified), the rest with
  CAUSA_CONFIDENCE_THRESHOLD=0.99 (`needs_review`); one dead-lettered as causa does
  (`failed`); one hostile ticket, decided first so that it is the oldest in the review queue
  (the other tests skip it); a few left pending (the backlog); a second model promoted over
  the first, which is then a backup to roll back to.
- Keys: made with `causa api-key create`, one per scope (review, admin, predict).
- Browser: /usr/bin/chromium (Debian's; `make chromium` installs it), never a browser build of
  Playwright's own; one per package, a fresh context per test.
- Screenshots: every page a test visits, full page, in test-output/screenshots/<test>/ at the
  repository's root (git-ignored; CAUSA_TEST_OUTPUT moves it); the server's log in
  test-output/browser-logs/api.log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from playwright.sync_api import Response as PageResponse
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.e2e.cluster import serving
from tests.helpers import dead_letter, demo_rows, install_model
from worker import demodata

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("CAUSA_TEST_OUTPUT", ROOT / "test-output"))
SCREENSHOTS = OUTPUT / "screenshots"
LOGS = OUTPUT / "browser-logs"
CHROMIUM = "/usr/bin/chromium"  # Debian's; `make chromium` installs it
START_TIMEOUT_S = 60.0  # one API process importing the model libraries and loading the model
PAGE_TIMEOUT_MS = 15_000  # any one wait in a page: a page of the desk answers in well under 1 s
THRESHOLD = "0.99"  # so that most of the demo tickets go to needs_review
KEY_RATE_LIMIT = "10000/minute"  # the tests' clicks never meet a key's limit

HOSTILE = "H000001"  # decided first: the oldest ticket in the review queue
FAILED = "F000001"  # dead-lettered
CLASSIFIED = 8  # demo tickets C000000..C000007, decided at CONFIDENT: mostly classified
CONFIDENT = 0.6
NORMAL = 16  # demo tickets T000008..T000023, decided at THRESHOLD: needs_review
PENDING = 3  # demo tickets P000024..P000026, left waiting: the backlog
FILLER_CHARS = 1_000_000
HOSTILE_MARKUP = (
    '<script>alert(1)</script> <img src=x onerror="alert(2)"> <a href="javascript:alert(3)">x</a>'
)
RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\ufeff")  # space, non-joiner, joiner, BOM
HOSTILE_SHORT = f"VPN caida {HOSTILE_MARKUP}"
HOSTILE_DESCRIPTION = (
    f"No conecta la vpn desde casa. Factura {RLO}fdp.exe{chr(0x202C)} adjunta;"
    f" cla{ZERO_WIDTH[0]}ve{ZERO_WIDTH[1]} de{ZERO_WIDTH[2]} acceso{ZERO_WIDTH[3]} bloqueada. "
    + ("relleno " * (FILLER_CHARS // 8))
)


@dataclass(frozen=True)
class Keys:
    review: str
    admin: str
    predict: str
    names: dict[str, str] = field(default_factory=dict)  # scope -> key name


@dataclass(frozen=True)
class Desk:
    """The served desk: its base URL, its database, its keys, where its models live."""

    url: str
    database_url: str
    keys: Keys
    models_dir: Path
    logdir: Path


# --- the database and the seeded tickets ------------------------------------------------------


@pytest.fixture(scope="package")
def desk_database() -> Iterator[str]:
    """A database of the desk's own, beside the suite's, dropped at the end."""
    suite = os.environ["DATABASE_URL"]
    name = f"{conninfo_to_dict(suite)['dbname']}_desk"
    with psycopg.connect(suite, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    yield make_conninfo(suite, dbname=name)
    with psycopg.connect(suite, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="package")
def desk_env(
    desk_database: str, model_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The environment of every process of the desk: its database, the suite's Redis, a
    trained model of its own and the suite's signing key (set by tests/conftest.py)."""
    home = tmp_path_factory.mktemp("desk")
    models = install_model(home / "models", model_cache)
    return {
        **os.environ,
        "DATABASE_URL": desk_database,
        "CAUSA_MODELS_DIR": str(models),
        "CAUSA_HOME": str(home / "home"),
        "CAUSA_CONFIDENCE_THRESHOLD": THRESHOLD,
    }


def causa(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"causa {' '.join(args)}: {done.stderr}"
    return done.stdout


def _settings(env: dict[str, str]) -> Any:
    from shared.settings import load_settings

    return load_settings(
        database_url=env["DATABASE_URL"],
        models_dir=Path(env["CAUSA_MODELS_DIR"]),
        home=Path(env["CAUSA_HOME"]),
        confidence_threshold=float(THRESHOLD),
    )


def _classify(rt: Any) -> None:
    from flows.classify import classify_batch

    while classify_batch(rt.store, rt.models, rt.settings, worker="desk-seed", limit=1000)[
        "claimed"
    ]:
        pass


def _insert(c: psycopg.Connection[Any], rows: list[tuple[str, str | None, str | None]]) -> None:
    for number, short, long in rows:  # one statement each: each its own received time
        c.execute(
            "INSERT INTO tickets (number, short_description, description) VALUES (%s, %s, %s)",
            [number, short, long],
        )


def _seed(env: dict[str, str]) -> None:
    """The ticket table, migrated; the hostile ticket decided first (the oldest in the review
    queue), then a failed one and the demo tickets, through causa's real paths."""
    from shared import schema
    from worker import bootstrap
    from worker.app import app
    from worker.queue import CeleryQueue

    settings = _settings(env)
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as c:
        c.execute(demodata.TABLE_SQL)
        schema.migrate(c, settings)
        rt = bootstrap.build(settings, CeleryQueue(app))
        try:
            # a second model in service, so that the first is a backup to roll back to
            first = rt.registry.load_current()
            rt.registry.promote(
                first.pipeline,
                classes=first.classes,
                n_train=first.info.n_train,
                metrics=first.info.metrics,
                decision="browser tests: a backup to roll back to",
            )
            c.execute(
                "INSERT INTO tickets (number, short_description, description) VALUES (%s, %s, %s)",
                [HOSTILE, HOSTILE_SHORT, HOSTILE_DESCRIPTION],
            )
            _classify(rt)
            c.execute(
                "INSERT INTO tickets (number, short_description, description)"
                " VALUES (%s, 'impresora atascada', 'la impresora del piso 2 no imprime')",
                [FAILED],
            )
            dead_letter(c, [FAILED], error="ValueError: the model could not read this ticket")
            # some decided at the usual threshold (mostly classified: the charts show both
            # verdicts), then the rest at 0.99 (needs_review)
            confident = bootstrap.build(
                settings.model_copy(update={"confidence_threshold": CONFIDENT}), CeleryQueue(app)
            )
            try:
                _insert(c, demo_rows(CLASSIFIED, prefix="C"))
                _classify(confident)
            finally:
                confident.close()
            _insert(c, demo_rows(NORMAL, start=CLASSIFIED))
            _classify(rt)
            # and a backlog: tickets still waiting (no worker runs while the tests do)
            _insert(c, demo_rows(PENDING, prefix="P", start=CLASSIFIED + NORMAL))
        finally:
            rt.close()
        states: dict[str, str] = dict(
            c.execute("SELECT number::text, status FROM causa.outcomes").fetchall()
        )
    assert states.get(HOSTILE) == "needs_review", states
    assert states.get(FAILED) == "failed", states
    waiting = [n for n, s in states.items() if s == "needs_review" and n.startswith("T")]
    assert len(waiting) >= 6, f"too few demo tickets went to needs_review: {states}"


def _make_keys(env: dict[str, str]) -> Keys:
    def make(scope: str) -> str:
        out = causa(
            "api-key",
            "create",
            f"desk-{scope}",
            "--scope",
            scope,
            "--rate-limit",
            KEY_RATE_LIMIT,
            "--json",
            env=env,
        )
        made = json.loads(out.strip().splitlines()[-1])
        assert scope in made["scopes"], made
        key: str = made["key"]
        return key

    scopes = ("review", "admin", "predict")
    with ThreadPoolExecutor(len(scopes)) as pool:
        review, admin, predict = pool.map(make, scopes)
    return Keys(review, admin, predict, {s: f"desk-{s}" for s in scopes})


@pytest.fixture(scope="package")
def desk(desk_env: dict[str, str]) -> Iterator[Desk]:
    """`causa serve` on a free port with the seeded tickets and the three keys; stopped at
    the end, whatever happens. The Redis database is the suite's, emptied before and after."""
    client = redis.Redis.from_url(desk_env["REDIS_URL"])
    client.flushdb()
    shutil.rmtree(LOGS, ignore_errors=True)
    _seed(desk_env)
    made = _make_keys(desk_env)
    try:
        with serving(LOGS, desk_env, 1, START_TIMEOUT_S) as url:
            yield Desk(
                url, desk_env["DATABASE_URL"], made, Path(desk_env["CAUSA_MODELS_DIR"]), LOGS
            )
    finally:
        client.flushdb()


@pytest.fixture(scope="package")
def db(desk: Desk) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the desk's database, to check what the pages did."""
    with psycopg.connect(desk.database_url, autocommit=True) as c:
        yield c


# --- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert os.access(CHROMIUM, os.X_OK), f"no {CHROMIUM}: `make chromium` installs it"
    # --no-sandbox: the suite runs as root (CI, the multihost tests), where Chromium's sandbox
    # refuses to start.
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    yield launched
    launched.close()


@pytest.fixture(scope="package", autouse=True)
def _fresh_screenshots() -> None:
    """The screenshots of this run only."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)


@dataclass
class Visit:
    """One test's browser tab on the desk: what it opened (a full-page screenshot of each),
    the dialogs that appeared and every request the page sent."""

    page: Page
    base_url: str
    shots: Path
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    taken: int = 0

    def goto(self, path: str) -> PageResponse:
        response = self.page.goto(self.base_url + path)
        assert response is not None, path
        self.snap()
        return response

    def snap(self, label: str | None = None) -> Path:
        """A full-page screenshot of what the tab shows now, named after its path."""
        self.taken += 1
        where = self.page.url.removeprefix(self.base_url).split("?")[0].strip("/") or "root"
        name = f"{self.taken:02d}-{re.sub(r'[^A-Za-z0-9]+', '-', label or where)}.png"
        self.shots.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=self.shots / name, full_page=True)
        return self.shots / name

    def after(self, action: Callable[[], object]) -> PageResponse | None:
        """Do `action` (a click, a key) that navigates; wait for the new page; screenshot it."""
        with self.page.expect_navigation() as navigation:
            action()
        response = navigation.value
        self.snap()
        return response

    def csrf_token(self) -> str:
        """The CSRF token of the page's forms (the sign-out form is on every signed-in page)."""
        token = self.page.locator("input[name=csrf_token]").first.get_attribute("value")
        assert token, "no csrf_token on the page"
        return token


@pytest.fixture
def context(browser: Browser, desk: Desk) -> Iterator[BrowserContext]:
    made = browser.new_context(base_url=desk.url, viewport={"width": 1280, "height": 900})
    made.set_default_timeout(PAGE_TIMEOUT_MS)
    yield made
    made.close()


@pytest.fixture
def visit(context: BrowserContext, desk: Desk, request: pytest.FixtureRequest) -> Iterator[Visit]:
    page = context.new_page()
    test = re.sub(r"[^A-Za-z0-9_]+", "-", request.node.name).strip("-")
    seen = Visit(page, desk.url, SCREENSHOTS / test)

    def on_dialog(dialog: Any) -> None:
        seen.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("request", lambda r: seen.requests.append(r.url))
    yield seen
    if getattr(request.node, "failed_call", False) and not page.is_closed():
        shot = seen.snap("at-failure")  # and the page's HTML beside it
        shot.with_suffix(".html").write_text(page.content(), encoding="utf-8")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        item.failed_call = True  # type: ignore[attr-defined]
    return report


def sign_in(visit: Visit, key: str) -> PageResponse | None:
    """Sign in on /login with `key`; the answer to the form's POST (after redirects, the
    page it led to)."""
    visit.goto("/login")
    visit.page.fill("#key", key)
    with visit.page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/login")
    ) as posted:
        visit.after(lambda: visit.page.click("#sign-in"))
    return posted.value
