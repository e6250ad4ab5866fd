"""The example project's DATABASE_URL / REDIS_URL parsing (also used by the test settings)."""

from __future__ import annotations

import pytest

from example_project.config import cache_from_url, database_from_url


def test_postgres_url() -> None:
    database = database_from_url("postgres://app:s%40cret@db.example:6543/shop?sslmode=require")
    assert database == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "shop",
        "USER": "app",
        "PASSWORD": "s@cret",
        "HOST": "db.example",
        "PORT": "6543",
        "OPTIONS": {"sslmode": "require"},
    }


def test_postgres_unix_socket_in_query() -> None:
    database = database_from_url("postgresql:///shop?host=/run/postgresql")
    assert database["HOST"] == "/run/postgresql"
    assert database["NAME"] == "shop"
    assert database["OPTIONS"] == {}


def test_sqlite_url() -> None:
    assert database_from_url("sqlite:////tmp/x.sqlite3")["NAME"] == "/tmp/x.sqlite3"
    assert database_from_url("sqlite://")["NAME"] == ":memory:"


@pytest.mark.parametrize("url", ["mysql://localhost/db", "http://x"])
def test_unsupported_database_url(url: str) -> None:
    with pytest.raises(ValueError, match="Unsupported database URL scheme"):
        database_from_url(url)


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("redis://127.0.0.1:6379/1", "redis://127.0.0.1:6379/1"),
        ("valkey://127.0.0.1:6379/1", "redis://127.0.0.1:6379/1"),
        ("valkeys://cache.example:6380/0", "rediss://cache.example:6380/0"),
    ],
)
def test_cache_url_for_valkey_or_redis(url: str, location: str) -> None:
    cache = cache_from_url(url)
    assert cache["BACKEND"] == "django_redis.cache.RedisCache"
    assert cache["LOCATION"] == location


def test_unsupported_cache_url() -> None:
    with pytest.raises(ValueError, match="use redis://, rediss:// or valkey://"):
        cache_from_url("memcached://127.0.0.1:11211")
