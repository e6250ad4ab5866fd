"""The tables behind a queryset's ``prefetch_related`` lookups, from model metadata."""

from __future__ import annotations

import contextlib
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db.models import ForeignObjectRel, Model, Prefetch

from django_dbperf.cache.dependencies import inherited_tables

UNKNOWN = "*"  # a table that cannot be named in advance: such querysets are not cached


def _hop_tables(model: type[Model], name: str) -> tuple[set[str], type[Model] | None]:
    from django_dbperf.managers import relations_of

    field = relations_of(model).get(name)
    if field is None:
        return set(), None
    related = field.related_model
    if related is None:  # a generic foreign key: its targets are not known in advance
        return {UNKNOWN}, None
    # A multi-table child's rows are read joined to its parents' (every Wagtail page type).
    tables = set(inherited_tables(related))
    if field.many_to_many:
        # The reverse side (a ManyToManyRel) knows its through model directly.
        rel = field if isinstance(field, ForeignObjectRel) else field.remote_field
        through = rel.through  # type: ignore[union-attr]
        tables |= inherited_tables(through)
    return tables, related


def prefetch_tables(queryset: Any) -> frozenset[str]:
    """Tables the prefetch lookups read; ``UNKNOWN`` when one cannot be known (generic FK)."""
    tables: set[str] = set()
    for lookup in getattr(queryset, "_prefetch_related_lookups", ()):
        path = lookup.prefetch_through if isinstance(lookup, Prefetch) else lookup
        model: type[Model] | None = queryset.model
        for name in path.split("__"):
            if model is None:
                break
            hop, model = _hop_tables(model, name)
            tables |= hop
        inner = getattr(lookup, "queryset", None)
        if inner is not None:
            from django_dbperf.cache.tables import read_tables

            tables |= prefetch_tables(inner)
            with contextlib.suppress(EmptyResultSet):  # an empty queryset reads nothing
                tables |= read_tables(inner.query.get_compiler(using=inner.db).as_sql()[0])
    return frozenset(tables)
