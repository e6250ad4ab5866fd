"""What a cached evaluation is keyed by: its SQL and parameters, compiled once per query shape.

Compiling a queryset's SQL costs more than a whole cache hit (about 110 µs for a page of books
with their authors). ``shape.query_shape()`` reads what the SQL depends on straight from the
query (about 5 µs), so the SQL is compiled the first time a shape is seen and remembered.

A shape only holds in this process (it names models and fields by ``id()``), so the key stored
in the cache is made of the SQL text, the lookup classes in the order the WHERE clause holds
them (``contains`` and ``startswith`` compile to the same ``LIKE %s`` and differ only in how
they turn the value into the parameter), the time zone settings Django converts datetimes
with, and the uncompiled values. Queries no shape describes are keyed by their compiled SQL
and parameters, under a different marker. Values are written by ``encode.py`` (never ``repr()``);
one it cannot write exactly raises ``Unencodable`` and the read is served uncached.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db.models.lookups import Lookup
from django.db.models.sql.where import WhereNode

from django_dbperf.cache.encode import encode_all
from django_dbperf.cache.shape import query_shape

MEMO_SIZE = 2048  # shapes remembered; each slice bound is its own shape, so it is bounded


@dataclass(frozen=True)
class QueryKey:
    sql: str
    identity: str  # the key's text beyond the SQL: what makes equal SQL distinct, and values


@dataclass(frozen=True)
class _Compiled:
    sql: str
    signature: str


_memo: dict[tuple[str, Hashable], _Compiled] = {}


def _lookup_signature(node: Any) -> list[str]:
    names: list[str] = []
    for child in getattr(node, "children", ()):
        if isinstance(child, WhereNode):
            names.append(f"({child.connector},{child.negated}")
            names += _lookup_signature(child)
            names.append(")")
        elif isinstance(child, Lookup):
            names.append(f"{type(child).__module__}.{type(child).__qualname__}")
    return names


def query_key(queryset: Any) -> QueryKey:
    """The SQL of ``queryset`` and the rest of its cache key. Raises ``EmptyResultSet`` like
    compiling does, for a query Django knows matches nothing, and ``Unencodable``."""
    query, using = queryset.query, queryset.db
    shaped = query_shape(query)
    if shaped is None:
        sql, params = query.get_compiler(using=using).as_sql()
        return QueryKey(sql, "compiled:" + encode_all(params))
    shape, values = shaped
    compiled = _memo.get((using, shape))
    if compiled is None:
        sql = query.get_compiler(using=using).as_sql()[0]
        signature = "|".join(_lookup_signature(query.where))
        zone = f"{settings.USE_TZ}:{settings.TIME_ZONE}"
        compiled = _Compiled(sql, f"shape:{zone}:{signature}")
        if len(_memo) >= MEMO_SIZE:
            _memo.clear()
        _memo[(using, shape)] = compiled
    return QueryKey(compiled.sql, f"{compiled.signature}:{encode_all(values)}")


def _forget(*, setting: str, **kwargs: object) -> None:
    # A shape's SQL depends on the database settings, its parameters on the time zone's.
    if setting in ("DATABASES", "USE_TZ", "TIME_ZONE"):
        _memo.clear()


setting_changed.connect(_forget, dispatch_uid="django_dbperf.cache.keys")
