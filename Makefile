# FeeSync: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The suite runs on PostgreSQL (DESIGN.md); override DATABASE_URL to point elsewhere.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/feesync
PORT ?= 8000

.PHONY: run test bench lint format install migrate demo clean

$(VENV)/.installed: pyproject.toml package.json
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet ".[dev]"
	@# axe-core for the accessibility checks of the browser tests (no lock file: see README).
	@if command -v npm >/dev/null; then npm install --silent --no-package-lock --no-audit --no-fund; \
	else echo "npm not found: the browser accessibility tests will be skipped"; fi
	touch $@

install: $(VENV)/.installed

migrate: install
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py seed_demo

## make run: the whole product on http://127.0.0.1:8000 with nothing else installed
## (SQLite + the embedded filesystem broker unless DATABASE_URL/CELERY_BROKER_URL are set).
run: demo
	@echo
	@echo "  FeeSync is starting on http://127.0.0.1:$(PORT)/"
	@echo "    staff site:     http://127.0.0.1:$(PORT)/admin/   (admin, clerk, support)"
	@echo "    parent portal:  http://127.0.0.1:$(PORT)/portal/  (parent1, parent2, ...)"
	@echo "    password:       $${DEMO_PASSWORD:-feesync-demo}"
	@echo "    partner API:    http://127.0.0.1:$(PORT)/api/docs/   (API user partner, application key $${PARTNER_DEMO_KEY:-demopart.feesync-demo-partner-key})"
	@echo
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PORT=$(PORT) honcho start

## make test: the whole suite, on PostgreSQL.
test: install
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) -m pytest $(PYTEST_ARGS)

## make bench: every benchmark under bench/, figures printed and written to bench/results.json.
bench: install
	$(PY) -m bench.run

## make lint: ruff, then mypy on apps/ (configured in pyproject.toml: strict on the ledger,
## the sync engine and the vendor adapters).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf var .pytest_cache .ruff_cache .mypy_cache
