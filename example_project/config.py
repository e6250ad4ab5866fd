"""Turn DATABASE_URL / REDIS_URL style environment variables into Django settings."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql"}
REDIS_SCHEMES = {"redis", "rediss", "valkey", "valkeys", "unix"}


def database_from_url(url: str) -> dict[str, Any]:
    """A DATABASES entry for ``postgres://user:pass@host:port/name?host=/socket/dir`` or ``sqlite:///path``."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(parts.path[1:]) or ":memory:",
        }
    if parts.scheme not in POSTGRES_SCHEMES:
        raise ValueError(
            f"Unsupported database URL scheme {parts.scheme!r}: use postgres:// or sqlite:///."
        )
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    # A Unix-socket directory may come as ?host=/run/postgresql (libpq's own convention).
    host = query.pop("host", None) or unquote(parts.hostname or "")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or ""),
        "OPTIONS": query,
    }


def cache_from_url(url: str) -> dict[str, Any]:
    """A CACHES entry served by django-redis for a Valkey or Redis URL."""
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(
            f"Unsupported cache URL scheme {parts.scheme!r}: use redis://, rediss:// or valkey://."
        )
    # redis-py only knows the redis schemes; valkey:// is the same protocol.
    location = url.replace("valkey://", "redis://", 1).replace("valkeys://", "rediss://", 1)
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": location,
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": 1,
            "SOCKET_TIMEOUT": 1,
        },
    }
