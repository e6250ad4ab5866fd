"""Which database a version and an entry belong to: not the alias alone.

A test run on ``test_mysite`` and the development server on ``mysite`` share an alias
(``default``) and often one Redis: keyed by the alias, one read the other's entries.

- Versions are kept per *logical* database: its name, the connection's ``options`` (where a
  ``search_path`` is set) and what the project's ``DBPERF["CACHE"]["NAMESPACE"]`` hook returns
  (the schema of a schema-per-tenant setup). Not the host: a replica (another alias, another
  host, the same database name) must see the primary's writes. Two servers with databases of
  one name share versions, which costs only extra invalidations.
- Entries are kept per alias and per server too (``entry_namespace``): a replica's entries are
  its own, and two in-memory SQLite databases never share one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils.module_loading import import_string

__all__ = ["all_databases", "database_namespace", "entry_namespace", "qualified"]

_identities: dict[tuple[str, ...], str] = {}
_hooks: dict[str, Callable[[Any], object]] = {}


def _hook() -> Callable[[Any], object] | None:
    from django_dbperf.conf import get_config

    path = get_config()["CACHE"].get("NAMESPACE")
    if not path:
        return None
    hook = _hooks.get(path)
    if hook is None:
        hook = _hooks[path] = import_string(path)
    return hook


def _identity(using: str) -> tuple[str, ...]:
    connection = connections[using]
    config = connection.settings_dict
    options = config.get("OPTIONS") or {}
    search_path = options.get("options", "") if isinstance(options, dict) else ""
    hook = _hook()
    extra = "" if hook is None else str(hook(connection))
    return (
        str(config.get("NAME") or ""),
        str(search_path),
        extra,
        connection.vendor,
        str(config.get("HOST") or ""),
        str(config.get("PORT") or ""),
        using,
    )


def _short(parts: tuple[str, ...]) -> str:
    name = _identities.get(parts)
    if name is None:
        text = "\x1f".join(parts)
        name = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]
        if len(_identities) >= 1024:
            _identities.clear()
        _identities[parts] = name
    return name


def database_namespace(using: str) -> str:
    """The name versions of the database ``using`` points at right now are kept under."""
    return _short(_identity(using)[:3])


def entry_namespace(using: str) -> str:
    """The name entries read through ``using`` are kept under: the server and alias too."""
    return _short(_identity(using))


def qualified(using: str, tables: Iterable[str]) -> frozenset[str]:
    """``tables`` as the cache names their versions in the database ``using`` points at."""
    namespace = database_namespace(using)
    return frozenset(f"{namespace}/{table}" for table in tables)


def all_databases(tables: Iterable[str]) -> frozenset[str]:
    """``tables`` in every configured database (for writes and reads not tied to one alias)."""
    tables = list(tables)
    return frozenset().union(*(qualified(alias, tables) for alias in settings.DATABASES))
