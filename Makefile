# The interface to causa: CI runs these same targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
DEMO_ARGS ?=
BENCH_ARGS ?=
SERVE_ARGS ?=
PYTEST := $(BIN)/pytest -p no:cacheprovider

.PHONY: install lock chromium demo test unit integration e2e faults browser lint bench worker beat listen flower serve clean

$(BIN)/causa: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock -e '.[dev]'
	touch $@

install: $(BIN)/causa ## .venv with causa and its dev tools, versions from requirements.lock

lock: ## re-resolve requirements.lock from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra dev -o requirements.lock --no-header

# The browser tests (tests/browser) drive Debian's Chromium through Playwright; Playwright's own
# browser builds are never downloaded. Installed here when missing (as root, or through sudo).
chromium: ## Debian's Chromium at /usr/bin/chromium, for the browser tests
	test -x /usr/bin/chromium || { \
	  sudo=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$sudo apt-get update -q && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

demo: install ## everything on embedded services: make demo DEMO_ARGS="--tickets 500 --json"
	$(BIN)/causa demo $(DEMO_ARGS)

# Line coverage of every process the suite starts (pytest; worker, beat and listener; the pool
# children): [tool.coverage.*] in pyproject.toml. The report is printed even when tests fail.
test: install chromium ## the whole suite on real PostgreSQL and Redis; a skipped test or coverage under fail_under fails it
	$(BIN)/coverage erase
	CAUSA_FAIL_ON_SKIP=1 $(BIN)/coverage run $(PYTEST) tests; tests=$$?; \
	$(BIN)/coverage combine --quiet && $(BIN)/coverage report; report=$$?; \
	exit $$((tests ? tests : report))

unit: install
	$(PYTEST) tests/unit

integration: install
	$(PYTEST) tests/integration

e2e: install
	$(PYTEST) tests/e2e tests/faults

browser: install chromium ## the review desk in Chromium; screenshots in test-output/screenshots/
	$(PYTEST) -m browser tests/browser

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install ## throughput and latency: make bench BENCH_ARGS="--tickets 5000"
	$(BIN)/python bench/throughput.py $(BENCH_ARGS)
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/training.py
	$(BIN)/python bench/explain.py
	$(BIN)/python bench/rest.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/api.py

worker: install
	$(BIN)/causa worker

beat: install
	$(BIN)/causa beat

listen: install
	$(BIN)/causa listen

flower: install ## Flower on 127.0.0.1:5555, basic auth (CAUSA_FLOWER_PASSWORD or printed once)
	$(BIN)/causa flower

serve: install ## the HTTP API on 127.0.0.1:8000 (docs at /docs): make serve SERVE_ARGS="--workers 2"
	$(BIN)/causa serve $(SERVE_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache celerybeat-schedule* .coverage .coverage.*
