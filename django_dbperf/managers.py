"""Declared eager loading: ``EagerQuerySet.including()``, manager profiles, counts, fetch modes.

``including("server__tags")`` decides per hop: single-valued hops (forward foreign keys,
one-to-ones) become ``select_related``, and a path with a multi-valued hop (reverse foreign
keys, many-to-many, generic relations) becomes ``prefetch_related``, with its leading
single-valued hops still joined (``"server__tags"``: select ``server``, prefetch its tags).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

import django
from django.core.exceptions import FieldDoesNotExist, FieldError
from django.db import models
from django.db.models import (
    Count,
    ForeignObjectRel,
    IntegerField,
    Model,
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.utils.module_loading import import_string

from django_dbperf.conf import get_config

HAS_FETCH_MODES = django.VERSION >= (6, 1)
FETCH_MODE_NAMES = ("FETCH_ONE", "FETCH_PEERS", "FETCH_RAISE")
# Django's own default for iterator() with prefetch_related (it requires a chunk size).
DEFAULT_CHUNK_SIZE = 2000

if TYPE_CHECKING:
    Path = str | Prefetch[Any]
    _QuerySetBase = QuerySet[Any]
else:
    Path = str | Prefetch  # Prefetch is generic for type checkers only
    _QuerySetBase = object


def relations_of(model: type[Model]) -> dict[str, Any]:
    """The model's relations by the name ``prefetch_related`` uses (reverse ones by accessor)."""
    found: dict[str, Any] = {}
    for field in model._meta.get_fields(include_hidden=False):
        if not field.is_relation:
            continue
        if field.auto_created and not field.concrete:
            accessor = field.get_accessor_name()  # type: ignore[union-attr]
            if accessor:
                found[accessor] = field
        else:
            found[field.name] = field
    return found


def is_single_valued(field: Any) -> bool:
    """Whether ``select_related`` can follow the relation: forward FK/one-to-one, reverse O2O."""
    if field.one_to_one:
        return True
    return bool(field.many_to_one and field.concrete)


def _relation(model: type[Model], name: str, path: str) -> Any:
    relations = relations_of(model)
    field = relations.get(name)
    if field is not None:
        return field
    try:
        model._meta.get_field(name)
        problem = f"'{name}' is a field of {model.__name__}, not a relation"
    except FieldDoesNotExist:
        problem = f"{model.__name__} has no relation '{name}'"
    choices = ", ".join(sorted(relations)) or "none"
    raise FieldError(
        f"Cannot include {path!r}: {problem}. Relations of {model.__name__}: {choices}."
    )


@dataclass(frozen=True)
class EagerPlan:
    select: tuple[str, ...]
    prefetch: tuple[Path, ...]


def _validated(model: type[Model], path: str) -> tuple[list[str], str | None, Any, list[str]]:
    """Check every hop of ``path``; split it at its first multi-valued hop.

    Returns the single-valued hops before it, the prefix up to and including it (None when
    every hop is single-valued), the model it leads to (None for a generic foreign key) and
    the hops after it.
    """
    hops = path.split("__")
    current: Any = model
    for index, name in enumerate(hops):
        field = _relation(current, name, path)
        related = field.related_model
        if not is_single_valued(field):
            prefix = "__".join(hops[: index + 1])
            rest = hops[index + 1 :]
            if related is not None:  # check the rest too, from the model it leads to
                _validate_rest(related, rest, path)
            return hops[:index], prefix, related, rest
        current = related
    return hops, None, current, []


def _validate_rest(model: type[Model], rest: list[str], path: str) -> None:
    current: Any = model
    for name in rest:
        related = _relation(current, name, path).related_model
        if related is None:
            return
        current = related


def plan(model: type[Model], paths: Iterable[Path]) -> EagerPlan:
    """Split ``paths`` into ``select_related`` and ``prefetch_related`` lookups; validate them.

    Single-valued hops are joined. Past the first multi-valued hop, the rest of the paths that
    go through it are planned again on the model it leads to and become the queryset of one
    ``Prefetch``: ``"nodes__event__owner"`` is two queries (the nodes joined with their event
    and its owner), not four.
    """
    select: list[str] = []
    prefetch: list[Path] = []
    given: list[Prefetch[Any]] = []
    groups: dict[str, tuple[Any, list[str]]] = {}
    for path in paths:
        if callable(path):
            # A factory, evaluated when the profile is applied: it may name models defined
            # later in models.py, or settings read at request time.
            path = path()
        if isinstance(path, Prefetch):
            # Django validates the rest of a Prefetch; its first hop is checked here, early.
            _relation(model, path.prefetch_through.split("__")[0], path.prefetch_through)
            given.append(path)
            continue
        if not isinstance(path, str) or not path:
            raise TypeError(f"including() takes relation names or Prefetch objects, not {path!r}.")
        joined, prefix, related, rest = _validated(model, path)
        if joined:
            select.append("__".join(joined))
        if prefix is not None:
            group = groups.setdefault(prefix, (related, []))
            if rest:
                group[1].append("__".join(rest))
    taken = {lookup.prefetch_to for lookup in given}
    for prefix, (related, rests) in groups.items():
        if not rests or related is None or prefix in taken:
            # Nothing to push down, a generic relation, or a Prefetch of the caller's own.
            prefetch += [prefix] if not rests else [f"{prefix}__{rest}" for rest in rests]
            continue
        inner = plan(related, rests)
        queryset = related._default_manager.all()
        if inner.select:
            queryset = queryset.select_related(*inner.select)
        if inner.prefetch:
            queryset = queryset.prefetch_related(*inner.prefetch)
        prefetch.append(Prefetch(prefix, queryset=queryset))
    unique = tuple(dict.fromkeys(select))
    # "author" adds nothing when "author__profile" is joined anyway.
    longest = tuple(path for path in unique if not any(o.startswith(f"{path}__") for o in unique))
    # The caller's Prefetch objects first: Django needs them before the paths that go through.
    return EagerPlan(longest, (*given, *prefetch))


def _rows_of(model: type[Model], field: Any) -> tuple[QuerySet[Any], str]:
    """The related rows of one ``OuterRef("pk")`` instance, and the column they share."""
    if field.many_to_many:
        reverse = isinstance(field, ForeignObjectRel)
        m2m: Any = field.field if reverse else field
        through = m2m.remote_field.through
        # The through model's foreign key pointing at this side of the relation.
        source = m2m.m2m_reverse_field_name() if reverse else m2m.m2m_field_name()
        return through._base_manager.filter(**{source: OuterRef("pk")}), source
    if isinstance(field, ForeignObjectRel):  # a reverse foreign key
        name = field.field.name
        return field.related_model._base_manager.filter(**{name: OuterRef("pk")}), name
    # A generic relation: rows of this content type pointing at the instance.
    from django.contrib.contenttypes.models import ContentType

    content_type = ContentType.objects.get_for_model(
        model, for_concrete_model=field.for_concrete_model
    )
    rows = field.related_model._base_manager.filter(
        **{field.content_type_field_name: content_type, field.object_id_field_name: OuterRef("pk")}
    )
    return rows, field.object_id_field_name


def count_subquery(model: type[Model], field: Any) -> Coalesce:
    """``COUNT(*)`` of the related rows as a correlated subquery (0 when there are none)."""
    rows, column = _rows_of(model, field)
    counted = rows.order_by().values(column).annotate(n=Count("*")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def resolve_fetch_mode(mode: Any) -> Any:
    """A fetch mode from an instance, ``"FETCH_PEERS"``-style name or dotted path; None if none."""
    if mode is None or not HAS_FETCH_MODES:
        return None
    if not isinstance(mode, str):
        return mode
    if mode in FETCH_MODE_NAMES:
        return getattr(models, mode)
    return import_string(mode)


class EagerQuerySetMixin(_QuerySetBase):
    """Adds ``including()``, ``profile()``, ``plain()`` and ``including_counts()`` to a QuerySet.

    A QuerySet class may declare ``eager_profiles`` and ``default_profile``; an ``EagerManager``'s
    own arguments take precedence.
    """

    eager_profiles: ClassVar[Mapping[str, Sequence[Path]]] = {}
    default_profile: ClassVar[str | None] = None

    _eager_profile_map: Mapping[str, Sequence[Path]] | None = None
    _eager_explicit = False  # including()/profile() was asked for (not just a default)

    def _clone(self) -> Self:
        clone = super()._clone()  # type: ignore[misc]
        clone._eager_profile_map = self._eager_profile_map
        clone._eager_explicit = self._eager_explicit
        return clone  # type: ignore[no-any-return]

    @property
    def profiles(self) -> Mapping[str, Sequence[Path]]:
        if self._eager_profile_map is not None:
            return self._eager_profile_map
        return self.eager_profiles

    def _apply(self, paths: Iterable[Path]) -> Self:
        eager = plan(self.model, paths)
        queryset = self
        if eager.select:
            queryset = queryset.select_related(*eager.select)
        if eager.prefetch:
            queryset = queryset.prefetch_related(*eager.prefetch)
        return queryset

    def including(self, *paths: Path) -> Self:
        """Load these relations eagerly: each hop the way its relation needs."""
        queryset = self._apply(paths)
        queryset._eager_explicit = True
        return queryset

    def plain(self) -> Self:
        """No eager loading at all (also drops the manager's default profile)."""
        queryset = self.select_related(None).prefetch_related(None)
        queryset._eager_explicit = False
        return queryset

    def profile(self, name: str | None) -> Self:
        """Replace the eager loading with the declared profile ``name`` (``None``: none)."""
        if name is None:
            return self.plain()
        try:
            paths = self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none declared"
            raise ValueError(
                f"{self.model.__name__} has no eager-loading profile {name!r}; profiles: {known}."
            ) from None
        queryset = self.plain()._apply(paths)
        queryset._eager_explicit = True
        return queryset

    def including_counts(self, *names: str) -> Self:
        """Annotate ``<name>_count`` for each multi-valued relation, in the same query.

        Each count is a correlated subquery: it is computed for the rows returned (a page of
        50 costs 50 counts, not the whole table's), and the queryset keeps its ordering.
        """
        annotations = {}
        for name in names:
            field = _relation(self.model, name, name)
            if is_single_valued(field) or field.related_model is None:
                raise FieldError(
                    f"including_counts({name!r}): {self.model.__name__}.{name} is not a "
                    "many-valued relation (reverse foreign key or many-to-many)."
                )
            annotations[f"{name}_count"] = count_subquery(self.model, field)
        return self.annotate(**annotations)

    def _has_prefetches(self) -> bool:
        return bool(getattr(self, "_prefetch_related_lookups", ()))

    def _without_default_prefetches(self, method: str) -> Self:
        if self._has_prefetches() and self._eager_explicit:
            raise TypeError(
                f"{method}() returns dicts or tuples, so the relations passed to including() or "
                f"profile() cannot be attached to them. Name the related fields in {method}() "
                "(e.g. 'server__name') instead, or drop including()."
            )
        # A manager's default profile does not apply to values(): they carry no instances.
        return self.select_related(None).prefetch_related(None)

    def values(self, *fields: Any, **expressions: Any) -> Any:
        return super(EagerQuerySetMixin, self._without_default_prefetches("values")).values(
            *fields, **expressions
        )

    def values_list(self, *fields: Any, flat: bool = False, named: bool = False) -> Any:
        queryset = self._without_default_prefetches("values_list")
        return super(EagerQuerySetMixin, queryset).values_list(*fields, flat=flat, named=named)

    def iterator(self, chunk_size: int | None = None) -> Iterator[Any]:
        """Like Django's, but prefetching in chunks of 2000 when no chunk size is given."""
        if chunk_size is None and self._has_prefetches():
            chunk_size = DEFAULT_CHUNK_SIZE
        return super().iterator(chunk_size=chunk_size)


class EagerQuerySet(EagerQuerySetMixin, QuerySet[Any]):
    """A QuerySet with ``including()``, ``profile()``, ``plain()`` and ``including_counts()``."""


class EagerManagerMixin:
    """Applies the default profile and fetch mode to every queryset the manager creates."""

    def __init__(
        self,
        *args: Any,
        profiles: Mapping[str, Sequence[Path]] | None = None,
        default: str | None = None,
        fetch_mode: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.profiles = profiles
        self.default_profile = default
        self.fetch_mode = fetch_mode

    def get_queryset(self) -> Any:
        queryset = super().get_queryset()  # type: ignore[misc]
        # Related managers (event.tags, prefetches) subclass this one; profiles apply to the
        # manager's own querysets only, so two models' profiles can never prefetch each other
        # in a loop. Django gives related querysets the instance's fetch mode itself.
        if hasattr(self, "instance"):
            return queryset
        if not isinstance(queryset, EagerQuerySetMixin):
            raise TypeError(
                f"{type(self).__name__} needs a QuerySet with EagerQuerySetMixin, not "
                f"{type(queryset).__name__}: build it with "
                "Manager.from_queryset(YourQuerySet) where YourQuerySet extends EagerQuerySet."
            )
        if self.profiles is not None:
            queryset._eager_profile_map = self.profiles
        default = self.default_profile or queryset.default_profile
        if default is not None:
            queryset = queryset._apply(queryset.profiles[default])
        mode = resolve_fetch_mode(self.fetch_mode or get_config()["DEFAULT_FETCH_MODE"])
        if mode is not None:
            queryset = queryset.fetch_mode(mode)
        return queryset


class EagerManager(EagerManagerMixin, models.Manager.from_queryset(EagerQuerySet)):  # type: ignore[misc]
    """``objects = EagerManager(profiles={"list": ["owner"]}, default="list")``."""
