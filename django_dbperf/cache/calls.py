"""``@cached_as(Model, ...)``: a function's result, cached under its arguments and invalidated
by every write to the models it declares.

The keyed form of ``qs.cached()``: a hit builds no queryset and computes no SQL key, so it
costs one round trip and the result's rebuild (less than a hand-written ``cache.get()`` of the
same pickled list, see ``docs/performance.rst``). It is as safe as ``cached()``: the function
runs under a capture, and its result is stored only if every table its statements read belongs
to the declared models. A function that reads another table is served uncached, with a warning
naming the table.

    @cached_as(Book, Author, ttl=60)
    def top_books(author_id):
        return list(Book.objects.filter(author_id=author_id).select_related("author")[:20])
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from django.apps import apps
from django.db import connections
from django.db.models import Model

from django_dbperf.cache.dependencies import read_dependencies
from django_dbperf.cache.encode import Unencodable, encode
from django_dbperf.cache.invalidation import DIRTY_READ, dirty_tables, model_tables
from django_dbperf.cache.namespace import all_databases
from django_dbperf.cache.queryset import (
    _fields_signature,
    can_store_in_transaction,
    require_configuration,
    run_recorded,
    serve,
    ttl_for,
    validate_options,
)
from django_dbperf.cache.skipped import skipped_reason
from django_dbperf.cache.store import STORE, Lookup, entry_name, logger

P = ParamSpec("P")
R = TypeVar("R")


def _argument_key(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    try:
        return encode((args, sorted(kwargs.items())))
    except Unencodable:
        pass
    for position, value in [*enumerate(args), *kwargs.items()]:
        try:
            encode(value)
        except Unencodable:
            raise TypeError(
                f"cached_as: argument {position!r} of {name}() is {type(value).__name__} "
                f"{value!r:.60}, which cannot be part of a cache key. Pass numbers, strings, "
                "dates, UUIDs, None, or tuples and lists of them (e.g. author.pk, not author)."
            ) from None
    raise AssertionError("unreachable: some argument is not encodable")


def _closure_names(func: Callable[..., Any]) -> list[str]:
    """The names of the variables ``func`` closes over: inputs its arguments do not show."""
    if not getattr(func, "__closure__", None):
        return []
    return list(func.__code__.co_freevars)


class _CachedFunction:
    """The state of one decorated function: its models, resolved at its first call."""

    def __init__(
        self,
        func: Callable[..., Any],
        models: tuple[type[Model] | str, ...],
        ttl: int | None,
        tags: tuple[str, ...],
        lock: bool,
        key: str,
    ) -> None:
        self.func, self.declared, self.ttl, self.tags, self.lock = func, models, ttl, tags, lock
        # key= tells apart functions of one qualname (closures made by one factory).
        self.name = f"{func.__module__}.{func.__qualname__}"
        self.variant = key
        self.models: list[type[Model]] = []
        self.tables: frozenset[str] = frozenset()
        self.signature = ""  # the models' labels and columns: a migration makes a new key
        self.warned = False

    def resolve(self) -> None:
        if self.models:
            return
        models = [apps.get_model(m) if isinstance(m, str) else m for m in self.declared]
        self.tables = frozenset().union(*(model_tables(model) for model in models))
        self.signature = ";".join(
            f"{model._meta.label}({_fields_signature(model)})" for model in models
        )
        self.models = models

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        require_configuration()
        self.resolve()
        arguments = _argument_key(self.name, args, kwargs)

        def compute() -> Any:
            return self.func(*args, **kwargs)

        if not STORE.available:
            return compute()
        # DEPENDS_ON adds what a declared view reads; an undeclared one is refused (logged).
        tables, refusal = read_dependencies(self.tables)
        if refusal is not None:
            STORE.count(self.label, "bypass", reason=refusal)
            return compute()
        skipped = skipped_reason(self.tables)
        if skipped is not None:
            STORE.bypass(self.label, skipped)
            return compute()
        if any(self.tables & dirty_tables(c.alias) for c in connections.all(initialized_only=True)):
            STORE.count(self.label, "bypass", reason=DIRTY_READ)
            return compute()
        entry = entry_name("call", self.name, encode(self.variant), self.signature, arguments)

        def compute_and_store(lookup: Lookup) -> Any:
            return self._compute_and_store(entry, lookup, compute)

        # Its queries may run on any database: it depends on the tables in each of them.
        versioned = all_databases(tables)
        return serve(
            entry, versioned, self.tags, None, self.label, self.lock, compute, compute_and_store
        )

    @property
    def label(self) -> str:
        return f"call:{self.name}"

    def _compute_and_store(self, entry: str, lookup: Lookup, compute: Callable[[], Any]) -> Any:
        result, read, aliases = run_recorded(compute)
        undeclared = read - self.tables
        if undeclared:
            if not self.warned:
                self.warned = True
                logger.warning(
                    "django_dbperf cache: %s() read %s, which no model given to cached_as() "
                    "owns; its results are not cached. Add the model to cached_as(...).",
                    self.name, ", ".join(sorted(undeclared)),
                )  # fmt: skip
            return result
        if all(can_store_in_transaction(alias) for alias in aliases):
            ttl = ttl_for(self.models[0], self.ttl)
            STORE.store(entry, lookup, result, ttl, subject=self.label)
        return result


def cached_as(
    *models: type[Model] | str,
    ttl: int | None = None,
    tags: Iterable[str] = (),
    lock: bool = False,
    key: str | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Cache the decorated function's results per arguments until one of ``models`` changes.

    ``models``: model classes or ``"app_label.Model"`` labels, every one whose table the
    function reads. ``ttl`` defaults to the first model's ``DBPERF["CACHE"]["TTL"]`` policy;
    ``tags`` as for ``cached()``; ``lock=True`` lets one process recompute a missing result
    while the others wait for it. Arguments must be plain values (numbers, strings, dates,
    UUIDs, None, tuples and lists of them): anything else raises ``TypeError``.

    Results are keyed by the function's qualified name and its arguments, nothing else: a
    function that reads other inputs (the current user, tenant, language, the time, a
    variable it closes over) must take them as arguments. A closure is refused unless
    ``key`` names what it closed over (e.g. ``key=f"threshold={threshold}"``): closures made
    by one factory share a qualified name.
    """
    if key is not None and (not isinstance(key, str) or not key):
        raise TypeError(f"cached_as(key=...) must be a non-empty str, not {key!r}.")
    if not models:
        raise TypeError("cached_as() needs the models whose tables the function reads.")
    for model in models:
        if not isinstance(model, str | type) or (
            isinstance(model, type) and not issubclass(model, Model)
        ):
            raise TypeError(f"cached_as() takes model classes or 'app_label.Model', not {model!r}.")
    checked_tags = validate_options(ttl, tags, "cached_as")

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        free = _closure_names(func)
        if free and key is None:
            raise TypeError(
                f"cached_as: {func.__module__}.{func.__qualname__}() closes over "
                f"{', '.join(free)}, which its cache key cannot see: closures made by one "
                "factory would share results. Pass them as arguments, or give "
                "cached_as(..., key=...) a string naming their values."
            )
        state = _CachedFunction(func, models, ttl, checked_tags, lock, key or "")

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            result: R = state(args, kwargs)
            return result

        return wrapper

    return decorate
