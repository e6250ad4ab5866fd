"""Shared fixtures: which servers this run has, and skipping (or, in CI, failing) without them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import django
import pytest
from django.conf import settings
from django.db import connection

# tests/realclients is a project of its own (Wagtail, DRF): collected only under its settings,
# `pytest tests/realclients --ds=tests.realclients.settings`.
if os.environ.get("DJANGO_SETTINGS_MODULE") != "tests.realclients.settings":
    collect_ignore = ["realclients"]

# The server pass (under tests.servers) has both URLs; the SQLite pass deliberately has neither.
SERVER_PASS = bool(os.environ.get("DBPERF_TEST_DATABASE_URL"))
REQUIRED = os.environ.get("DBPERF_REQUIRE_SERVERS") == "1" and SERVER_PASS


def missing(reason: str) -> None:
    """Skip a test whose server is absent; in CI's server pass fail instead."""
    if REQUIRED:
        pytest.fail(f"{reason} (DBPERF_REQUIRE_SERVERS=1 forbids skipping in the server pass)")
    pytest.skip(reason)


def pytest_report_header(config: pytest.Config) -> list[str]:
    database = settings.DATABASES["default"]
    where = database["NAME"] if database["ENGINE"].endswith("sqlite3") else database["HOST"]
    cache = "redis" if "redis" in settings.CACHES else "none (set DBPERF_TEST_REDIS_URL)"
    return [
        f"dbperf: Django {django.get_version()}, database {connection.vendor} ({where}), "
        f"Valkey/Redis cache: {cache}"
    ]


@pytest.fixture
def postgres(db: None) -> None:
    """The test needs PostgreSQL."""
    if connection.vendor != "postgresql":
        # Not a failure even in CI: these run in the PostgreSQL pass.
        pytest.skip("needs PostgreSQL: run under `python -m tests.servers` or set "
                "DBPERF_TEST_DATABASE_URL")  # fmt: skip


def _extension_available(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = %s", [name])
        return cursor.fetchone() is not None


@pytest.fixture
def hypopg(postgres: None) -> None:
    """The test needs the hypopg extension (hypothetical indexes) in the test database."""
    if not _extension_available("hypopg"):
        missing("needs the hypopg extension (Debian: apt-get install postgresql-15-hypopg)")
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS hypopg")


@pytest.fixture
def pg_stat_statements(postgres: None) -> None:
    """The test needs pg_stat_statements loaded (shared_preload_libraries) and created."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW shared_preload_libraries")
        (preloaded,) = cursor.fetchone()
    if "pg_stat_statements" not in preloaded:
        missing("needs pg_stat_statements in shared_preload_libraries")
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


@pytest.fixture
def redis_cache() -> str:
    """The alias of a django-redis cache on a real Valkey/Redis server (cleared before use)."""
    if "redis" not in settings.CACHES:
        missing("needs Valkey/Redis: run under `python -m tests.servers` or set "
                "DBPERF_TEST_REDIS_URL")  # fmt: skip
    from django.core.cache import caches

    caches["redis"].clear()
    return "redis"


@pytest.fixture
def cache_alias() -> Iterator[str]:
    """Queryset caching switched on: real Valkey/Redis on the server pass, else local memory."""
    from django.core.cache import caches
    from django.test import override_settings

    from django_dbperf.cache.store import STORE

    alias = "redis" if "redis" in settings.CACHES else "default"
    caches[alias].clear()
    STORE.reset()
    with override_settings(DBPERF={"CACHE": {"ALIAS": alias}}):
        yield alias
