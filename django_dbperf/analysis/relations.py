"""Name the relation behind a repeated statement, from a lazy-load frame or from the SQL itself.

Forward foreign keys, one-to-ones, generic foreign keys and deferred fields announce themselves
through the descriptor frame seen at capture time. Reverse foreign keys, many-to-many fields
(including django-taggit's ``TaggableManager`` and modelcluster's ``ParentalManyToManyField``)
and generic relations do not (the related manager's queryset is evaluated later, elsewhere), so
their statement is read instead: ``WHERE "app_job"."event_id" = ?`` over ``app_job`` is
``Event.jobs``; the same filter on a through table is a many-to-many; a filter on a content type
and an object id is a generic relation.

A relation is only *named* when the name is one a developer can type into
``select_related()``/``prefetch_related()``: never a hidden accessor (``+``), a primary key or a
multi-table inheritance parent link (``page_ptr``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db.models import ForeignObjectRel, ManyToManyField, Model

from django_dbperf.capture import LazyLoad

FORWARD = "forward"
REVERSE_ONE_TO_ONE = "reverse_one_to_one"
DEFERRED = "deferred"
REVERSE_FK = "reverse_fk"
MANY_TO_MANY = "m2m"
GENERIC_RELATION = "generic_relation"
GENERIC_FOREIGN_KEY = "generic_foreign_key"
PK_LOOKUP = "pk_lookup"
PARENT_LINK = "parent_link"

# Hops that select_related can follow; the others need prefetch_related.
SINGLE_VALUED = {FORWARD, REVERSE_ONE_TO_ONE}
# Hops that eager loading fixes (deferred fields, pk lookups and parent links are fixed otherwise).
EAGER_KINDS = SINGLE_VALUED | {REVERSE_FK, MANY_TO_MANY, GENERIC_RELATION, GENERIC_FOREIGN_KEY}

_FROM = re.compile(r'\bFROM "(?P<table>[^"]+)"')
_CONDITION = re.compile(r'"(?P<table>[^"]+)"\."(?P<column>[^"]+)" (?:= \?|IN \(\.\.\.\))')


@dataclass(frozen=True)
class Relation:
    kind: str
    model: type[Model]  # the model whose instances are loaded row by row
    name: str  # its attribute: field name or accessor
    target: type[Model] | None = None  # the model the relation leads to

    @property
    def named(self) -> bool:
        """Whether ``name`` is an attribute a developer can put in an eager-loading call."""
        return (
            self.kind not in (PK_LOOKUP, PARENT_LINK)
            and self.name.isidentifier()
            and not self.name.endswith("+")
        )

    @property
    def label(self) -> str | None:
        return f"{self.model._meta.label}.{self.name}" if self.named else None

    @property
    def model_label(self) -> str:
        return str(self.model._meta.label)


def _is_parent_link(model: type[Model], name: str) -> bool:
    try:
        found = model._meta.get_field(name)
    except Exception:
        return False
    return bool(getattr(found.remote_field, "parent_link", False))


def from_lazy_load(lazy_load: LazyLoad) -> Relation:
    model: type[Model] = lazy_load.model
    target: type[Model] | None = None
    kind = lazy_load.kind
    if kind == FORWARD:
        related = model._meta.get_field(lazy_load.name).related_model
        target = related if isinstance(related, type) else None
        if _is_parent_link(model, lazy_load.name):
            kind = PARENT_LINK
    elif kind == REVERSE_ONE_TO_ONE:
        for rel in model._meta.related_objects:
            if rel.one_to_one and rel.get_accessor_name() == lazy_load.name:
                target = rel.related_model
    return Relation(kind, model, lazy_load.name, target)


@dataclass(frozen=True)
class _Candidate:
    """What a filter on one column means, and what else the statement must show."""

    relation: Relation
    main_table: str | None  # the statement's FROM table must be this one (None: any)
    # Other filtered columns required: any one of these sets (empty: none required).
    also: tuple[frozenset[tuple[str, str]], ...] = ()
    content_type_of: type[Model] | None = None  # generic: the holder's content type disambiguates
    for_concrete_model: bool = True


@dataclass
class _Index:
    by_column: dict[tuple[str, str], list[_Candidate]] = field(default_factory=dict)

    def add(self, table: str, column: str, candidate: _Candidate) -> None:
        self.by_column.setdefault((table, column), []).append(candidate)


def _column(model: type[Model], name: str) -> str | None:
    try:
        found = model._meta.get_field(name)
    except Exception:
        return None
    return getattr(found, "column", None)


def _foreign_keys(index: _Index, model: type[Model]) -> None:
    table = model._meta.db_table
    for fk in model._meta.local_concrete_fields:
        rel, holder = fk.remote_field, fk.related_model
        if not (fk.many_to_one or fk.one_to_one) or not isinstance(holder, type) or not fk.column:
            continue
        assert isinstance(rel, ForeignObjectRel)
        if fk.primary_key and not getattr(rel, "parent_link", False):
            continue
        accessor = None if rel.hidden else rel.get_accessor_name()
        kind = REVERSE_ONE_TO_ONE if fk.one_to_one else REVERSE_FK
        relation = Relation(kind, holder, accessor or "+", model)
        index.add(table, fk.column, _Candidate(relation, table))


def _primary_key(index: _Index, model: type[Model]) -> None:
    pk = model._meta.pk
    if pk is not None and pk.column:
        table = model._meta.db_table
        # Listed first: a filter on a child's parent link column is a pk lookup before a
        # reverse one-to-one from the parent (the lazy-load frame names the latter).
        index.by_column.setdefault((table, pk.column), []).insert(
            0, _Candidate(Relation(PK_LOOKUP, model, pk.name, model), table)
        )


def _generic_filters(table: str, content_type: str) -> tuple[frozenset[tuple[str, str]], ...]:
    """A content type is filtered by its id, or by a join on its app label and model name."""
    content_types = "django_content_type"
    return (
        frozenset({(table, content_type)}),
        frozenset({(content_types, "app_label"), (content_types, "model")}),
    )


def _through_columns(relation_field: Any, through: type[Model], model: type[Model]) -> list[Any]:
    """The through model's filters that select one ``model`` instance's rows."""
    if isinstance(relation_field, ManyToManyField):
        return [(relation_field.m2m_column_name(), None)]
    for candidate in through._meta.concrete_fields:  # e.g. taggit's custom content_object FK
        if candidate.is_relation and candidate.related_model is not None:
            related = candidate.related_model
            if isinstance(related, type) and issubclass(model, related):
                return [(candidate.column, None)]
    object_id, content_type = _column(through, "object_id"), _column(through, "content_type")
    if object_id and content_type:  # taggit's generic TaggedItem
        return [(object_id, content_type)]
    return []


def _many_to_many(index: _Index, model: type[Model]) -> None:
    for m2m in model._meta.local_many_to_many:
        through: Any = getattr(m2m.remote_field, "through", None)
        related = m2m.related_model
        if not isinstance(through, type) or not isinstance(related, type):
            continue
        table: str = through._meta.db_table  # type: ignore[attr-defined]
        for column, content_type in _through_columns(m2m, through, model):
            also = _generic_filters(table, content_type) if content_type else ()
            relation = Relation(MANY_TO_MANY, model, m2m.name, related)
            index.add(table, column, _Candidate(relation, None, also, model if also else None))
        if isinstance(m2m, ManyToManyField):
            rel = m2m.remote_field
            accessor = None if rel.hidden else rel.get_accessor_name()
            reverse = Relation(MANY_TO_MANY, related, accessor or "+", model)
            index.add(table, m2m.m2m_reverse_name(), _Candidate(reverse, None))


def _generic_relations(index: _Index, model: type[Model]) -> None:
    from django.contrib.contenttypes.fields import GenericRelation

    for generic in model._meta.private_fields:
        if not isinstance(generic, GenericRelation) or not isinstance(generic.related_model, type):
            continue
        related: type[Model] = generic.related_model
        table = related._meta.db_table
        object_id = _column(related, generic.object_id_field_name)
        content_type = _column(related, generic.content_type_field_name)
        if object_id and content_type:
            relation = Relation(GENERIC_RELATION, model, generic.name, related)
            candidate = _Candidate(
                relation,
                table,
                _generic_filters(table, content_type),
                model,
                generic.for_concrete_model,
            )
            index.add(table, object_id, candidate)


@functools.cache
def _index() -> _Index:
    index = _Index()
    uses_contenttypes = apps.is_installed("django.contrib.contenttypes")
    for model in apps.get_models(include_auto_created=True):
        _foreign_keys(index, model)
        _many_to_many(index, model)
        if uses_contenttypes:
            _generic_relations(index, model)
    for model in apps.get_models(include_auto_created=True):
        _primary_key(index, model)
    return index


def _flat(params: Any) -> set[Any]:
    if isinstance(params, dict):
        params = list(params.values())
    if isinstance(params, list | tuple):
        return {value for value in params if isinstance(value, int | str)}
    return set()


def _content_type_id(model: type[Model], for_concrete_model: bool) -> int | None:
    from django.contrib.contenttypes.models import ContentType

    from django_dbperf.capture import ignoring_queries

    try:
        with ignoring_queries():  # the content type cache may need filling
            return int(ContentType.objects.get_for_model(model, for_concrete_model).pk)
    except Exception:
        return None


def _content_type_given(model: type[Model], for_concrete_model: bool, values: set[Any]) -> bool:
    """The statement's parameters name ``model``'s content type, by id or by its natural key."""
    opts = (model._meta.concrete_model or model)._meta if for_concrete_model else model._meta
    if opts.app_label in values and opts.model_name in values:
        return True
    return _content_type_id(model, for_concrete_model) in values


def _matches(candidate: _Candidate, main: str | None, filtered: set[tuple[str, str]]) -> bool:
    if candidate.main_table is not None and candidate.main_table != main:
        return False
    return not candidate.also or any(required <= filtered for required in candidate.also)


def from_sql(shape: str, params: Any = None) -> Relation | None:
    """The relation a statement of this shape loads for one instance, when it reads as one."""
    source = _FROM.search(shape)
    where = shape.split(" WHERE ", 1)
    if source is None or len(where) < 2:
        return None
    main = source["table"]
    conditions = [(match["table"], match["column"]) for match in _CONDITION.finditer(where[1])]
    filtered = set(conditions)
    index = _index().by_column
    candidates = [
        candidate
        for condition in conditions
        for candidate in index.get(condition, ())
        if _matches(candidate, main, filtered)
    ]
    if not candidates:
        return None
    # The most specific readings: a generic relation (content type *and* object id) before the
    # plain foreign key to ContentType; a filter on the FROM table before a joined one.
    best = min(map(_rank, candidates))
    return _choose([c for c in candidates if _rank(c) == best], params)


def _rank(candidate: _Candidate) -> tuple[bool, bool]:
    return not candidate.also, candidate.main_table is None


def _choose(candidates: Iterable[_Candidate], params: Any) -> Relation | None:
    candidates = list(candidates)
    if not candidates:
        return None
    generic = [c for c in candidates if c.content_type_of is not None]
    if len(generic) <= 1 or len(generic) != len(candidates):
        return candidates[0].relation
    # Several models hold a generic relation to this table: the content type tells which.
    values = _flat(params)
    holders = [
        c
        for c in generic
        if c.content_type_of is not None
        and _content_type_given(c.content_type_of, c.for_concrete_model, values)
    ]
    return holders[0].relation if len(holders) == 1 else None


__all__ = [
    "DEFERRED",
    "EAGER_KINDS",
    "FORWARD",
    "GENERIC_FOREIGN_KEY",
    "GENERIC_RELATION",
    "MANY_TO_MANY",
    "PARENT_LINK",
    "PK_LOOKUP",
    "REVERSE_FK",
    "REVERSE_ONE_TO_ONE",
    "SINGLE_VALUED",
    "Relation",
    "from_lazy_load",
    "from_sql",
]
