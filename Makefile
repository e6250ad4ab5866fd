# django-dbperf. `make demo` and `make test` do all set-up themselves (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
VENV52 := .venv-django52
BIN := $(VENV)/bin
EVENTS ?= 1000
LINTED := django_dbperf tests example_project benchmarks docs/conf.py docs/_ext manage.py

# The first Python >= 3.12 found: $(PYTHON) if given, then the usual names, then pyenv's.
define find_python
for candidate in $(PYTHON) python3.13 python3.12 python3 \
    $$(pyenv root 2>/dev/null)/versions/3.1[2-9]*/bin/python3 \
    $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 /usr/local/bin/python3.1[2-9]; do \
  if "$$candidate" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
    command -v "$$candidate"; exit 0; \
  fi; \
done; \
echo "No Python 3.12 or newer found. Install one (e.g. 'pyenv install 3.12' or your system's" >&2; \
echo "python3.12 package with venv), or run: make $@ PYTHON=/path/to/python3.12" >&2; \
exit 1
endef

.PHONY: help
help:
	@echo "make demo   set up, seed the example project and print its per-page query report"
	@echo "make test   set up and run lint, types, docs and the suite (SQLite, PostgreSQL+Redis)"
	@echo "make docs   build the documentation into docs/_build/html"
	@echo "make clean  remove virtual environments and build output"

$(VENV)/.installed: pyproject.toml
	@python=$$($(find_python)); echo "Using $$python"; \
	  "$$python" -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# Django 5.2 LTS: the suite runs there too.
$(VENV52)/.installed: pyproject.toml
	@python=$$($(find_python)); "$$python" -m venv $(VENV52)
	$(VENV52)/bin/python -m pip install --quiet --upgrade pip
	$(VENV52)/bin/python -m pip install --quiet -e '.[test]' 'Django>=5.2,<5.3'
	@touch $@

.PHONY: lint
lint: $(VENV)/.installed
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

.PHONY: docs
docs: $(VENV)/.installed
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

.PHONY: test
test: lint docs $(VENV52)/.installed
	@echo "== pytest: SQLite (in memory), Django $$($(BIN)/python -m django --version) =="
	$(BIN)/pytest
	@echo "== pytest: real clients (admin, DRF, Wagtail), SQLite =="
	$(BIN)/pytest tests/realclients --ds=tests.realclients.settings
	$(BIN)/python -m tests.servers -- $(MAKE) --no-print-directory test-servers

# Runs inside tests.servers, which exports DBPERF_TEST_DATABASE_URL and DBPERF_TEST_REDIS_URL.
.PHONY: test-servers
test-servers: $(VENV)/.installed $(VENV52)/.installed
	@echo "== pytest: PostgreSQL + Valkey/Redis, Django $$($(BIN)/python -m django --version) =="
	$(BIN)/pytest
	@echo "== pytest: real clients (admin, DRF, Wagtail), PostgreSQL =="
	$(BIN)/pytest tests/realclients --ds=tests.realclients.settings
	@echo "== pytest: PostgreSQL + Valkey/Redis, Django $$($(VENV52)/bin/python -m django --version) =="
	$(VENV52)/bin/pytest

.PHONY: demo
demo: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput --verbosity 0
	$(BIN)/python manage.py seed_demo --events $(EVENTS) --reset
	$(BIN)/python manage.py demo_superuser
	$(BIN)/python manage.py demo_report
	@echo
	@echo "== dbperf_audit --all: every page, the naive ones (before) and /fast/ (after) =="
	$(BIN)/python manage.py dbperf_audit --all --fail-on none
	$(BIN)/python manage.py demo_indexes
	@echo
	@echo "Browse it:  $(BIN)/python manage.py runserver   then open http://127.0.0.1:8000/"
	@echo "Admin:      http://127.0.0.1:8000/admin/ with the user and password printed above;"
	@echo "            query statistics at http://127.0.0.1:8000/admin/django_dbperf/dashboard/"

# The CI gate on the example project: every GET page audited against the reviewed baseline;
# fails on a new N+1 or duplicate site, a page whose query count grew, or a crashing view.
AUDIT_DB := $(CURDIR)/.audit-example.sqlite3
AUDIT_ENV := DATABASE_URL=sqlite:///$(AUDIT_DB) REDIS_URL= VALKEY_URL=
.PHONY: audit-example
audit-example: $(VENV)/.installed
	rm -f $(AUDIT_DB)
	$(AUDIT_ENV) $(BIN)/python manage.py migrate --noinput --verbosity 0
	$(AUDIT_ENV) $(BIN)/python manage.py seed_demo --events 200 --reset
	$(AUDIT_ENV) $(BIN)/python manage.py dbperf_audit --all --fail-on nplusone,duplicates,budget \
	  --baseline example_project/dbperf-baseline.json
	rm -f $(AUDIT_DB)

.PHONY: clean
clean:
	rm -rf $(VENV) $(VENV52) docs/_build .mypy_cache .ruff_cache .pytest_cache
