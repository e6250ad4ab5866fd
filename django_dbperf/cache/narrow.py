"""Finer invalidation than per table: the rows of one primary key or one foreign key value.

A query such as ``Book.objects.filter(author_id=5)`` reads only the books of author 5, so a
``save()`` of a book of author 7 need not invalidate it. Versions kept per value make that
possible (``docs/cache.rst`` explains why it is never stale):

- ``pk:<table>:<pk>``: bumped by every saved row of that primary key;
- ``part:<table>:<column>:<value>``: bumped by a saved row whose foreign key has that value;
- ``row:<table>:<pk>``: bumped with every saved row; an entry narrowed on a foreign key
  depends on the versions of the rows it holds, so a row leaving the value (whatever value it
  had in the database) invalidates it;
- ``bulk:<table>``: bumped by every other write of the table (``update()``, ``delete()``, bulk
  operations, raw SQL, transactions), which may touch any row;
- ``ins:<table>``: bumped by inserts, whose primary key is not known when they run.

Only an ``AND`` of top-level ``exact``/``in`` conditions on the query's own table narrows it,
and only when that table is read once (no self-join, no subquery or prefetch reading it).
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import Model
from django.db.models.expressions import Col
from django.db.models.lookups import Lookup
from django.db.models.sql.where import AND

from django_dbperf.cache.tables import table_occurrences

MAX_VALUES = 50  # an ``in`` list longer than this is cheaper to invalidate per table

_UNSAFE = frozenset(",|\n")  # characters the keys and entry headers use as separators


@dataclass(frozen=True)
class Narrowing:
    """What a narrowed query depends on instead of its table's version."""

    table: str
    column: str  # the primary key's or the foreign key's column attribute name
    by_pk: bool
    values: tuple[str, ...]
    joined: tuple[str, ...] = ()  # select_related tables joined on the narrowed foreign key


def canonical(value: Any) -> str | None:
    """The text a key holds for ``value``; None for a value that cannot be keyed safely."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str) and not (_UNSAFE & set(value)):
        return value
    return None


@functools.cache
def partition_fields(model: type[Model]) -> list[Any]:
    """The foreign keys of ``model``'s own table that target a primary key."""
    fields: list[Any] = list(model._meta.local_concrete_fields)
    return [
        field
        for field in fields
        if (field.many_to_one or field.one_to_one) and field.target_field.primary_key
    ]


def narrowable(model: type[Model]) -> bool:
    """A model whose rows live in one table (no multi-table inheritance parent)."""
    return not model._meta.concrete_model._meta.parents  # type: ignore[union-attr]


def _condition(child: Any, base_alias: str) -> tuple[Any, tuple[str, ...]] | None:
    """``(field, values)`` for ``column = value`` or ``column IN (...)`` on the base table."""
    if not isinstance(child, Lookup) or child.lookup_name not in ("exact", "in"):
        return None
    lhs = child.lhs
    if type(lhs) is not Col or lhs.alias != base_alias or not child.rhs_is_direct_value():
        return None
    rhs = child.rhs
    raw = (
        [rhs]
        if child.lookup_name == "exact"
        else list(rhs)
        if isinstance(rhs, list | tuple | set | frozenset)
        else None
    )
    if not raw or len(raw) > MAX_VALUES:
        return None
    values = [canonical(value) for value in raw]
    if None in values:
        return None
    target: Any = lhs.target
    return target, tuple(sorted(set(values)))  # type: ignore[arg-type]


def narrowing(queryset: Any, sql: str, other_tables: frozenset[str]) -> Narrowing | None:
    """How ``queryset`` can be narrowed, or None: it then depends on its tables' versions.

    ``sql`` is its compiled SQL; ``other_tables`` the tables its prefetches read.
    """
    model: Any = queryset.model
    query = queryset.query
    if not narrowable(model) or query.combinator or query.where.connector != AND:
        return None
    if query.where.negated:
        return None
    table = model._meta.db_table
    occurrences = table_occurrences(sql)
    if occurrences.get(table) != 1 or table in other_tables:
        return None
    # Not query.base_table: a cached_property, which read before the query has any alias
    # would stay None for good.
    base_alias = next(iter(query.alias_map), None)
    if base_alias is None:
        return None
    candidates: list[tuple[bool, str, tuple[str, ...], Any]] = []
    fks = {field.attname: field for field in partition_fields(model._meta.concrete_model)}
    for child in query.where.children:
        found = _condition(child, base_alias)
        if found is None:
            continue
        target, values = found
        attname: str = target.attname
        if target.primary_key and target.model._meta.concrete_model is model._meta.concrete_model:
            candidates.append((False, attname, values, target))
        elif fks.get(attname) is target:
            candidates.append((True, attname, values, target))
    if not candidates:
        return None
    is_fk, column, values, field = min(candidates, key=lambda c: (c[0], c[1]))
    if not is_fk:
        return Narrowing(table, column, True, values)
    return Narrowing(table, column, False, values, _joined(query, field, occurrences, other_tables))


def _joined(
    query: Any, field: Any, occurrences: dict[str, int], other_tables: frozenset[str]
) -> tuple[str, ...]:
    """The table ``select_related(<field>)`` joins, when its rows are those of the values'
    primary keys: it then depends on those rows, not on its whole table."""
    selected = query.select_related
    if not isinstance(selected, dict) or field.name not in selected:
        return ()
    related = field.related_model
    related_table = related._meta.db_table
    if not narrowable(related) or occurrences.get(related_table) != 1:
        return ()
    if related_table in other_tables:
        return ()
    return (related_table,)


_DEFERRED = object()


@dataclass(frozen=True)
class RowWrite:
    """One row written by ``Model.save()``: what it invalidates beyond its table's version."""

    table: str
    pk: str | None  # None for an insert whose primary key the database assigns
    parts: tuple[tuple[str, str], ...]  # (column, value) of its foreign keys
    insert: bool


def row_write(
    instance: Model, cls: type[Model], update_fields: Any, insert: bool
) -> RowWrite | None:
    """The row ``instance.save()`` writes in ``cls``'s table, or None when it cannot be told
    exactly (its foreign keys are then unknown: the whole table is invalidated instead)."""
    if not narrowable(cls):
        return None
    fields = partition_fields(cls)
    if update_fields is not None:
        # A foreign key left out is not written: its value in the database is unknown here.
        names = set(update_fields)
        if any(field.name not in names and field.attname not in names for field in fields):
            return None
    parts: list[tuple[str, str]] = []
    values = instance.__dict__  # never getattr(): a deferred field would run a query here
    for field in fields:
        value = values.get(field.attname, _DEFERRED)
        if value is _DEFERRED:
            return None
        if value is None:
            continue  # a null foreign key is in no ``column = value`` partition
        # The value as the database gets it (an int for "5" assigned to an integer key).
        text = str(value) if type(value) is int else canonical(field.get_prep_value(value))
        if text is None:
            return None
        parts.append((field.attname, text))
    pk_field: Any = cls._meta.pk
    pk_value = values.get(pk_field.attname)
    if pk_value is None:
        pk = None
    elif type(pk_value) is int:
        pk = str(pk_value)
    else:
        pk = canonical(pk_field.get_prep_value(pk_value))
    if pk is None and not insert:
        return None
    return RowWrite(cls._meta.db_table, pk, tuple(parts), insert)
