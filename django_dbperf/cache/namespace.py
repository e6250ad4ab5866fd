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

__all__ = ["all_databases", "database_namespace", "entry_namespace", "namespaces", "qualified"]

_MEMO_SIZE = 1024
_names: dict[tuple[object, ...], tuple[str, str]] = {}
_qualified: dict[tuple[str, frozenset[str]], frozenset[str]] = {}
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


def _hash(parts: tuple[object, ...]) -> str:
    text = "\x1f".join(map(str, parts))
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


def namespaces(using: str) -> tuple[str, str]:
    """``(versions, entries)``: the names the versions of the database ``using`` points at
    right now, and the entries read through it, are kept under (remembered per identity: a
    read pays a few dictionary look-ups)."""
    # The connection's own settings dict (the test runner renames its database there), read
    # without the thread-local look-up of connections[using].
    config = connections.settings[using]
    options = config.get("OPTIONS") or {}
    search_path = options.get("options", "") if isinstance(options, dict) else ""
    hook = _hook()
    extra = "" if hook is None else str(hook(connections[using]))
    name, host, port = config.get("NAME") or "", config.get("HOST") or "", config.get("PORT") or ""
    identity = (name, search_path, extra, config.get("ENGINE") or "", host, port, using)
    found = _names.get(identity)
    if found is None:
        if len(_names) >= _MEMO_SIZE:
            _names.clear()
        found = _names[identity] = (_hash(identity[:3]), _hash(identity))
    return found


def database_namespace(using: str) -> str:
    """The name versions of the database ``using`` points at right now are kept under."""
    return namespaces(using)[0]


def entry_namespace(using: str) -> str:
    """The name entries read through ``using`` are kept under: the server and alias too."""
    return namespaces(using)[1]


def in_namespace(namespace: str, tables: frozenset[str]) -> frozenset[str]:
    """``tables`` as the cache names their versions under ``namespace``."""
    found = _qualified.get((namespace, tables))
    if found is None:
        if len(_qualified) >= _MEMO_SIZE:
            _qualified.clear()
        found = _qualified[(namespace, tables)] = frozenset(f"{namespace}/{t}" for t in tables)
    return found


def qualified(using: str, tables: Iterable[str]) -> frozenset[str]:
    """``tables`` as the cache names their versions in the database ``using`` points at."""
    return in_namespace(database_namespace(using), frozenset(tables))


def all_databases(tables: Iterable[str]) -> frozenset[str]:
    """``tables`` in every configured database (for writes and reads not tied to one alias)."""
    tables = frozenset(tables)
    return frozenset().union(*(qualified(alias, tables) for alias in settings.DATABASES))
