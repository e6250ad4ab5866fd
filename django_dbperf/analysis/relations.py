"""Name the relation behind a repeated statement, from a lazy-load frame or from the SQL itself.

Forward foreign keys, one-to-ones and deferred fields announce themselves through the
descriptor frame seen at capture time. Reverse foreign keys and many-to-many loads do not (the
related manager's queryset is evaluated later, elsewhere), so their statement is read instead:
``WHERE "app_job"."event_id" = ?`` over ``app_job`` is ``Event.jobs``; the same filter on a
many-to-many through table is ``Event.tags``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db.models import Field, ForeignObjectRel, ManyToManyField, Model

from django_dbperf.capture import LazyLoad

FORWARD = "forward"
REVERSE_ONE_TO_ONE = "reverse_one_to_one"
DEFERRED = "deferred"
REVERSE_FK = "reverse_fk"
MANY_TO_MANY = "m2m"
PK_LOOKUP = "pk_lookup"

# Hops that select_related can follow; the others need prefetch_related.
SINGLE_VALUED = {FORWARD, REVERSE_ONE_TO_ONE}

_FROM = re.compile(r'\bFROM "(?P<table>[^"]+)"')
_FILTER = re.compile(r'\bWHERE \(?"(?P<table>[^"]+)"\."(?P<column>[^"]+)" (?:= \?|IN \(\.\.\.\))')


@dataclass(frozen=True)
class Relation:
    kind: str
    model: type[Model]  # the model whose instances are loaded row by row
    name: str  # its attribute: field name or accessor
    target: type[Model] | None = None  # the model the relation leads to

    @property
    def label(self) -> str:
        return f"{self.model._meta.label}.{self.name}"


def from_lazy_load(lazy_load: LazyLoad) -> Relation:
    model: type[Model] = lazy_load.model
    target: type[Model] | None = None
    if lazy_load.kind == FORWARD:
        target = model._meta.get_field(lazy_load.name).related_model
    elif lazy_load.kind == REVERSE_ONE_TO_ONE:
        for rel in model._meta.related_objects:
            if rel.one_to_one and rel.get_accessor_name() == lazy_load.name:
                target = rel.related_model
    return Relation(lazy_load.kind, model, lazy_load.name, target)


def _models_by_table() -> dict[str, type[Model]]:
    return {model._meta.db_table: model for model in apps.get_models(include_auto_created=True)}


def _field_for_column(model: type[Model], column: str) -> Field[Any, Any] | None:
    for field in model._meta.concrete_fields:
        if field.column == column:
            return field
    return None


def _many_to_many(through: type[Model], column: str) -> Relation | None:
    for model in apps.get_models():
        for field in model._meta.local_many_to_many:
            if not isinstance(field, ManyToManyField) or field.remote_field.through is not through:
                continue
            related: type[Model] = field.related_model
            if column == field.m2m_column_name():
                return Relation(MANY_TO_MANY, model, field.name, related)
            if column == field.m2m_reverse_name():
                accessor = field.remote_field.get_accessor_name()
                return Relation(MANY_TO_MANY, related, accessor, model) if accessor else None
    return None


def from_sql(shape: str) -> Relation | None:
    """The relation a statement of this shape loads for one instance, when it reads as one."""
    source, condition = _FROM.search(shape), _FILTER.search(shape)
    if source is None or condition is None:
        return None
    tables = _models_by_table()
    main, filtered = tables.get(source["table"]), tables.get(condition["table"])
    if main is None or filtered is None:
        return None
    field = _field_for_column(filtered, condition["column"])
    if field is None:
        return None
    if field.primary_key and filtered is main:
        return Relation(PK_LOOKUP, main, field.name, main)
    if not (field.many_to_one or field.one_to_one):
        return None
    # A through table, read directly (Django does so for .count() and .exists()) or joined.
    through = _many_to_many(filtered, condition["column"])
    if through is not None:
        return through
    if filtered is not main:
        return None
    rel = field.remote_field
    assert isinstance(rel, ForeignObjectRel)
    accessor = rel.get_accessor_name()
    holder: type[Model] = field.related_model  # type: ignore[assignment]
    kind = REVERSE_ONE_TO_ONE if field.one_to_one else REVERSE_FK
    return Relation(kind, holder, accessor, main) if accessor else None
