"""Where the rows that were then loaded one by one came from: the queryset the user wrote.

Each captured ``SELECT`` knows the queryset whose evaluation ran it (``Origin``): its model, its
``select_related`` paths, and, for a ``prefetch_related`` query, the lookup path from the root
queryset. So an N+1 on ``Author.publisher`` whose authors came from
``Book.objects.select_related("author")`` is fixed on the Book queryset with
``select_related("author__publisher")``: there is no Author queryset to change.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model

from django_dbperf.capture import Origin, QueryRecord


@dataclass(frozen=True)
class Source:
    """The queryset to change, and the path from its rows to the rows loaded one by one."""

    model: type[Model]  # the model of the queryset the user wrote
    prefix: str  # lookup path from its rows ("" when they are its own rows)
    single_valued: bool  # the prefix can be followed by select_related
    evaluated_at: str | None  # the project's line, else the template's, else the framework's
    # Set when a framework built the querysets that loaded the rows (Wagtail's specific()):
    # the rows' own model, which select_related on the outer queryset does not reach.
    built_for: type[Model] | None = None
    # The outer queryset's select_related takes for_specific_subqueries= (Wagtail).
    specific_subqueries: bool = False
    # The framework that evaluated the queryset, when no project line did (its module).
    framework_module: str | None = None


def _related_model(model: type[Model], name: str) -> type[Model] | None:
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    related = field.related_model
    return related if isinstance(related, type) else None


def _select_path(model: type[Model], select_related: Any, target: type[Model]) -> str | None:
    """The select_related path from ``model``'s rows to ``target`` rows ("" for its own)."""
    if issubclass(model, target):
        return ""
    if not isinstance(select_related, dict):
        return None
    for name, deeper in select_related.items():
        related = _related_model(model, name)
        if related is None:
            continue
        rest = _select_path(related, deeper, target)
        if rest is not None:
            return f"{name}__{rest}" if rest else name
    return None


def _join(*parts: str) -> str:
    return "__".join(part for part in parts if part)


@functools.cache
def _takes_specific_subqueries(queryset_type: Any) -> bool:
    try:
        parameters = inspect.signature(queryset_type.select_related).parameters
    except (TypeError, ValueError, AttributeError):
        return False
    return "for_specific_subqueries" in parameters


def _source(origin: Origin, target: type[Model], where: str | None) -> Source | None:
    path = _select_path(origin.model, origin.select_related, target)
    if path is None:
        return None
    outer = origin.outer
    if outer is not None and origin.prefetch_path:
        return Source(outer.model, _join(origin.prefetch_path, path), False, where)
    if outer is not None and not issubclass(origin.model, outer.model):
        return None  # a framework's own query while iterating something else
    if outer is not None and outer.model is not origin.model:
        # A framework iterable (specific()) loaded the rows with querysets of its own.
        queryset_type: Any = outer.queryset_type
        specific = queryset_type is not None and _takes_specific_subqueries(queryset_type)
        return Source(outer.model, path, True, where, target, specific)
    return Source(origin.model, path, True, where)


def _evaluated_at(record: QueryRecord) -> str | None:
    if record.callsite is not None:
        return str(record.callsite)
    if record.template is not None:
        return f"template {record.template}"
    return str(record.framework) if record.framework else None


def find_source(
    records: Sequence[QueryRecord], position: int, target: type[Model], skip: Collection[int]
) -> Source | None:
    """The last queryset evaluated before ``records[position]`` that loaded ``target`` rows.

    ``skip`` holds the ids of records that are themselves loads row by row (their querysets are
    Django's, inside a descriptor or related manager, not the user's).
    """
    for record in reversed(records[:position]):
        origin = record.origin
        if origin is None or record.lazy_load is not None or id(record) in skip:
            continue
        found = _source(origin, target, _evaluated_at(record))
        if found is not None:
            if record.callsite is None and record.framework is not None:
                found = replace(found, framework_module=record.framework.module)
            return found
    return None
