"""The querysets a project marks as hot, and warming them: each is evaluated so that its result
is in the cache before the first request asks (``dbperf_cache warm``, e.g. after a deploy).

Hot querysets are zero-argument functions returning a cached queryset (or any callable whose
call fills the cache, such as a ``@cached_as`` function), registered with ``@hot_queryset``
when their module is imported, or listed as dotted paths in ``DBPERF["CACHE"]["WARM"]``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass, field
from typing import Any, overload

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model, QuerySet
from django.utils.module_loading import import_string

from django_dbperf.conf import get_config


@dataclass(frozen=True)
class HotQueryset:
    name: str  # the function's dotted path, as reports print it
    function: Callable[[], Any]
    model: str | None = None  # "app_label.Model", as declared
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Warmed:
    name: str
    model: str | None  # as declared, else the returned queryset's
    tags: tuple[str, ...]
    rows: int | None  # None: the function returned neither a queryset nor a list
    ms: float
    error: str | None = None


@dataclass(frozen=True)
class WarmReport:
    results: list[Warmed]
    registered: int  # hot querysets known, selected or not
    # Not selected because they declare no model (or tags) for --model (--tag) to match.
    undeclared: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Warmed]:
        return [result for result in self.results if result.error is not None]

    @property
    def ms(self) -> float:
        return sum(result.ms for result in self.results)


# Keyed by the function itself: a path in the WARM setting finds the same entry.
_registry: dict[Callable[[], Any], HotQueryset] = {}


@overload
def hot_queryset[F: Callable[[], Any]](function: F, /) -> F: ...


@overload
def hot_queryset[F: Callable[[], Any]](
    *, model: type[Model] | str | None = None, tags: Iterable[str] = ()
) -> Callable[[F], F]: ...


def hot_queryset[F: Callable[[], Any]](
    function: F | None = None,
    /,
    *,
    model: type[Model] | str | None = None,
    tags: Iterable[str] = (),
) -> F | Callable[[F], F]:
    """Register a zero-argument function whose result (a cached queryset) ``warm()`` evaluates.

    ``model`` and ``tags`` are what ``dbperf_cache warm --model/--tag`` select it by.
    """
    label = model._meta.label if isinstance(model, type) else model
    checked = (tags,) if isinstance(tags, str) else tuple(tags)
    if any(not isinstance(tag, str) or not tag for tag in checked):
        raise ValueError(f"hot_queryset(tags=...) must be non-empty strings, not {checked!r}.")

    def register(function: F) -> F:
        if _needs_arguments(function):
            raise TypeError(
                f"hot_queryset: {_name(function)}() takes arguments, but warming calls it with "
                "none. Decorate a function without arguments that calls it."
            )
        _registry[function] = HotQueryset(_name(function), function, label, checked)
        return function

    return register if function is None else register(function)


def _name(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", None) or "?"
    return f"{module}.{getattr(function, '__qualname__', repr(function))}"


def _needs_arguments(function: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature: let the call tell
        return False
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return any(p.default is p.empty and p.kind not in variadic for p in parameters)


def setting_problem(path: object) -> str | None:
    """What is wrong with an entry of ``DBPERF["CACHE"]["WARM"]`` (``"which ..."``), or None."""
    if not isinstance(path, str) or not path:
        return f"is {type(path).__name__}, not a dotted path"
    try:
        function = import_string(path)
    except ImportError as error:
        return f"cannot be imported ({error})"
    if not callable(function):
        return f"is {type(function).__name__}, not a callable"
    if _needs_arguments(function):
        return "takes arguments, but warming calls it with none"
    return None


def hot_querysets() -> list[HotQueryset]:
    """Every hot queryset: those decorated (in the order their modules were imported), then
    those of the ``WARM`` setting. A setting entry that cannot be used fails when warmed."""
    found = dict(_registry)
    for path in get_config()["CACHE"]["WARM"]:
        problem = setting_problem(path)
        if problem is not None:
            fail = _failing(f'DBPERF["CACHE"]["WARM"] has {path!r}, which {problem}.')
            found[fail] = HotQueryset(str(path), fail)
            continue
        function = import_string(path)
        found.setdefault(function, HotQueryset(path, function))
    return list(found.values())


def _failing(message: str) -> Callable[[], Any]:
    def fail() -> Any:
        raise ImproperlyConfigured(message)

    return fail


def warm(model: str | None = None, tag: str | None = None) -> WarmReport:
    """Evaluate every hot queryset (those declaring ``model`` and ``tag``, when given), each on
    its own: one that raises is reported with its error and the others still run."""
    known = hot_querysets()
    selected = [entry for entry in known if _matches(entry, model, tag)]
    undeclared = [
        entry.name
        for entry in known
        if (model is not None and entry.model is None) or (tag is not None and not entry.tags)
    ]
    return WarmReport([_warm_one(entry) for entry in selected], len(known), undeclared)


def _matches(entry: HotQueryset, model: str | None, tag: str | None) -> bool:
    if tag is not None and tag not in entry.tags:
        return False
    return model is None or (entry.model is not None and _label(entry.model) == model)


def _label(declared: str) -> str:
    try:
        return str(apps.get_model(declared)._meta.label)
    except (LookupError, ValueError):
        return declared  # reported when warmed


def _warm_one(entry: HotQueryset) -> Warmed:
    from django_dbperf.cache.store import STORE

    errors = STORE.errors
    started = time.perf_counter()
    model, rows, error = entry.model and _label(entry.model), None, None
    try:
        _check_declared(entry)
        model, rows = _evaluate(entry.function(), model)
    except Exception as failure:  # reported for this entry; the others still run
        error = f"{type(failure).__name__}: {failure}"
    if error is None and (STORE.errors > errors or not STORE.available):
        error = (
            "the cache server failed, so the result was not cached (see the django_dbperf "
            "log; the cache is tried again after CACHE['RETRY_AFTER'] seconds)"
        )
    ms = (time.perf_counter() - started) * 1000
    return Warmed(entry.name, model, entry.tags, rows, ms, error)


def _check_declared(entry: HotQueryset) -> None:
    if entry.model is None:
        return
    try:
        apps.get_model(entry.model)
    except (LookupError, ValueError):
        raise ImproperlyConfigured(
            f"it declares model={entry.model!r}, which is not an installed model: use "
            '"app_label.ModelName" or the model class.'
        ) from None


def _evaluate(result: Any, model: str | None) -> tuple[str | None, int | None]:
    """The model and row count of a function's result, evaluating a queryset through the cache."""
    if isinstance(result, QuerySet):
        label = result.model._meta.label
        if getattr(result, "_dbperf_cache", None) is None:
            raise ValueError(
                f"it returned a {label} queryset that is not cached, so warming would not fill "
                "the cache: end it with .cached() (on a CachingManager's queryset)."
            )
        return model or label, len(result)
    return model, len(result) if isinstance(result, Sized) else None
