# django-dbperf. `make demo` and `make test` do all set-up themselves (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
VENV52 := .venv-django52
BIN := $(VENV)/bin
EVENTS ?= 1000
LINTED := django_dbperf tests example_project benchmarks docs/conf.py docs/_ext manage.py \
  noxfile.py scripts

# The supported extremes: $(VENV) is the newest Django on the newest Python, $(VENV52) the
# oldest of each (noxfile.py has the whole matrix).
NEWEST_PYTHONS := 3.13 3.12
OLDEST_PYTHONS := 3.12 3.13

# The first Python of the versions $(1), in that order: $(PYTHON) if given, then pythonX.Y on
# PATH, then pyenv's own (its shims answer only for the versions pyenv has selected). A version
# other than the first preferred is said on stderr.
define find_python
for candidate in $(PYTHON) $(foreach v,$(1),python$(v) \
    $$(pyenv root 2>/dev/null)/versions/$(v).*/bin/python$(v) \
    $$HOME/.pyenv/versions/$(v).*/bin/python$(v) /usr/local/bin/python$(v)); do \
  if version=$$("$$candidate" -c 'import sys, venv; assert sys.version_info >= (3, 12); \
      print("%d.%d" % sys.version_info[:2])' 2>/dev/null); then \
    if [ -z "$(PYTHON)" ] && [ "$$version" != "$(firstword $(1))" ]; then \
      echo "Python $(firstword $(1)) not found: using $$version for $@ (pyenv install" \
        "$(firstword $(1)), or make $@ PYTHON=/path/to/python$(firstword $(1)))" >&2; \
    fi; \
    command -v "$$candidate"; exit 0; \
  fi; \
done; \
echo "No Python 3.12 or newer found. Install one (e.g. 'pyenv install 3.13' or your system's" >&2; \
echo "python3.13 package with venv), or run: make $@ PYTHON=/path/to/python3.13" >&2; \
exit 1
endef

# Creates the virtual environment $(1) with $$python, or keeps an existing one (possibly of
# another Python: 'make clean' re-creates it).
define make_venv
if [ -x $(1)/bin/python ]; then \
  have=$$($(1)/bin/python -V); want=$$("$$python" -V); \
  [ "$$have" = "$$want" ] || echo "Keeping $(1) ($$have); 'make clean' re-creates it with $$want"; \
else \
  echo "Using $$python ($$("$$python" -V)) for $(1)"; "$$python" -m venv $(1); \
fi
endef

.PHONY: help
help:
	@echo "make demo   set up, seed the example project and print its per-page query report"
	@echo "make test   set up and run lint, types, docs and the suite (SQLite, PostgreSQL+Redis)"
	@echo "            on Django 6.1 + Python 3.13 and Django 5.2 + Python 3.12"
	@echo "make test-matrix      the suite on Python 3.12/3.13 x Django 5.2/6.1 (nox, SQLite)"
	@echo "make test-prerelease  the newest Django pre-release: internals probe, then tests"
	@echo "make dist   build the sdist and wheel into dist/ and check them with twine"
	@echo "make docs   build the documentation into docs/_build/html"
	@echo "make clean  remove virtual environments and build output"

$(VENV)/.installed: pyproject.toml
	@python=$$($(call find_python,$(NEWEST_PYTHONS))); $(call make_venv,$(VENV))
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# Django 5.2 LTS on the oldest Python: the suite runs there too.
$(VENV52)/.installed: pyproject.toml
	@python=$$($(call find_python,$(OLDEST_PYTHONS))); $(call make_venv,$(VENV52))
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
	@echo "== pytest: SQLite (in memory), Django $$($(BIN)/python -m django --version)," \
	  "$$($(BIN)/python -V) =="
	$(BIN)/pytest
	@echo "== pytest: real clients (admin, DRF, Wagtail), SQLite =="
	$(BIN)/pytest tests/realclients --ds=tests.realclients.settings
	$(BIN)/python -m tests.servers -- $(MAKE) --no-print-directory test-servers

# Runs inside tests.servers, which exports DBPERF_TEST_DATABASE_URL and DBPERF_TEST_REDIS_URL.
.PHONY: test-servers
test-servers: $(VENV)/.installed $(VENV52)/.installed
	@echo "== pytest: PostgreSQL + Valkey/Redis, Django $$($(BIN)/python -m django --version)," \
	  "$$($(BIN)/python -V) =="
	$(BIN)/pytest
	@echo "== pytest: real clients (admin, DRF, Wagtail), PostgreSQL =="
	$(BIN)/pytest tests/realclients --ds=tests.realclients.settings
	@echo "== pytest: PostgreSQL + Valkey/Redis, Django" \
	  "$$($(VENV52)/bin/python -m django --version), $$($(VENV52)/bin/python -V) =="
	$(VENV52)/bin/pytest

# noxfile.py: the suite on every Python x Django pair (SQLite); nox finds pyenv's Pythons.
.PHONY: test-matrix
test-matrix: $(VENV)/.installed
	$(BIN)/nox -s tests

# The newest Django, pre-releases included: scripts/django_internals.py checks the private
# Django internals django_dbperf depends on (OK / BROKEN, with the dependent file), then the
# tests of those files run. CI runs it without failing on it: it warns of the next release.
.PHONY: test-prerelease
test-prerelease: $(VENV)/.installed
	$(BIN)/nox -s django_prerelease

# What would be uploaded to PyPI: the sdist and the wheel, checked by twine.
.PHONY: dist
dist: $(VENV)/.installed
	rm -rf dist
	$(BIN)/python -m build --outdir dist
	$(BIN)/twine check --strict dist/*

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
	rm -rf $(VENV) $(VENV52) .venv-nox dist docs/_build .mypy_cache .ruff_cache .pytest_cache
