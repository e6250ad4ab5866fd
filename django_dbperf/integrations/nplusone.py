"""The nplusone integration: its unused-eager-load reports as findings, and its Django 6.1 fix.

nplusone (the ``nplusone`` extra) is the one tool that sees ``select_related()`` and
``prefetch_related()`` results nobody used. Projects opt in the way nplusone documents, with
``"nplusone.ext.django"`` in ``INSTALLED_APPS``; until then nothing here imports nplusone, whose
Django module patches the ORM globally as it is imported.

How nplusone reports: once ``nplusone.ext.django`` is imported, the patched ORM *sends* blinker
signals on every eager load (``eager_load``), every read of a relation (``touch``) and every lazy
load (``lazy_load``), whether anyone listens or not. Its ``NPlusOneMiddleware`` and ``Profiler``
only connect listeners for the current thread. Here two receivers are connected once, for every
sender, and do nothing unless a context variable names an active capture: that is what "nplusone
is on" means for the duration of a ``capture_queries()``, in the right thread or asyncio task,
without nplusone's middleware.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import ModuleType, TracebackType
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db.models import Model
from django.db.models.fields.related_descriptors import (
    ForwardManyToOneDescriptor,
    ReverseOneToOneDescriptor,
)
from django.db.models.query import RelatedPopulator

from django_dbperf.analysis import UNUSED_EAGER_LOAD, Finding
from django_dbperf.capture import Callsite
from django_dbperf.capture.callsite import inspect_stack
from django_dbperf.inspection import FINDING_SOURCES

APP = "nplusone.ext.django"
MIDDLEWARE = (
    "nplusone.ext.django.NPlusOneMiddleware",
    "nplusone.ext.django.middleware.NPlusOneMiddleware",
)
_PATCH_MODULE = "nplusone.ext.django.patch"
_SIGNALS_MODULE = "nplusone.core.signals"

# nplusone 1.0 reads a select_related populator's arguments as exactly (klass_info, select, db).
_NPLUSONE_POPULATOR_ARGS = 3
_FIXED = "_dbperf_nplusone_fix"

# Related managers whose prefetched results nplusone sees being read (its patched _fetch_all and
# __getitem__); results of other prefetchers (GenericForeignKey, generic relations) would always
# look unused.
_TOUCH_TRACKED_MANAGERS = frozenset({"RelatedManager", "ManyRelatedManager"})


# --- The Django 6.1 compatibility fix ------------------------------------------------------


def _patch_module() -> ModuleType | None:
    """nplusone's Django patches, if something has imported (and so applied) them."""
    return sys.modules.get(_PATCH_MODULE)


def _positional_count(init: Callable[..., Any]) -> int:
    parameters = list(inspect.signature(init).parameters.values())[1:]  # without self
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(parameter.kind in kinds for parameter in parameters)


def _django_populator_init() -> Callable[..., Any]:
    """Django's own ``RelatedPopulator.__init__``, from under nplusone's wrapper if it is there."""
    patch = _patch_module()
    if patch is not None:
        return patch.original_related_populator_init  # type: ignore[no-any-return]
    return RelatedPopulator.__init__


def compat_fix_applied() -> bool:
    return bool(getattr(RelatedPopulator.__init__, _FIXED, False))


def compat_fix_needed() -> bool:
    """nplusone's populator patch is installed on a Django that passes it more than it reads."""
    patch = _patch_module()
    return (
        patch is not None
        and RelatedPopulator.__init__ is patch.related_populator_init
        and _positional_count(patch.original_related_populator_init) > _NPLUSONE_POPULATOR_ARGS
    )


def apply_compat_fix() -> bool:
    """Let nplusone 1.0 read Django 6.1's ``RelatedPopulator``; True if it patched just now.

    Django 6.1 added a fourth argument (``fetch_mode``). nplusone's wrapper stores all of them
    and its ``eager_load`` parser unpacks three, so every ``select_related()`` row raises
    ``ValueError`` while anything listens to nplusone. The replacement stores the three it reads.
    Does nothing on Django 5.2, without nplusone's patches, or when already applied.
    """
    patch = _patch_module()
    if patch is None or not compat_fix_needed():
        return False
    django_init = patch.original_related_populator_init

    def related_populator_init(self: RelatedPopulator, *args: Any, **kwargs: Any) -> None:
        django_init(self, *args, **kwargs)
        self.__nplusone__ = {"args": args[:_NPLUSONE_POPULATOR_ARGS], "kwargs": kwargs}  # type: ignore[attr-defined]

    setattr(related_populator_init, _FIXED, True)
    setattr(RelatedPopulator, "__init__", related_populator_init)  # noqa: B010 (mypy: a method)
    return True


def is_configured() -> bool:
    """nplusone is switched on in settings: its app in INSTALLED_APPS or its middleware."""
    middleware = getattr(settings, "MIDDLEWARE", None) or []
    return apps.is_installed(APP) or any(path in MIDDLEWARE for path in middleware)


def compat_fix_missing() -> bool:
    """For check dbperf.W002: nplusone patches (or will, once its middleware loads) a Django it
    cannot read, and the fix is not in place."""
    if not is_configured() or compat_fix_applied() or importlib.util.find_spec("nplusone") is None:
        return False
    return _positional_count(_django_populator_init()) > _NPLUSONE_POPULATOR_ARGS


# --- Unused eager loads as findings --------------------------------------------------------


@dataclass(slots=True, eq=False)
class _EagerLoad:
    """One relation eager-loaded by one queryset evaluation."""

    model: type[Model]
    name: str  # the field or accessor nplusone names
    method: str  # "select_related" or "prefetch_related"
    callsite: Callsite | None
    # Holds what nplusone's per-query key is the id() of, so the id is not reused while tracked.
    anchor: object
    keys: set[str] = field(default_factory=set)  # nplusone's "Model:pk" of the loading rows
    used: bool = False


class EagerLoads:
    """The finding source: eager loads made inside one capture, and whether they were used.

    Only unused eager loads become findings (kind ``UNUSED_EAGER_LOAD``). nplusone's
    ``lazy_load`` notifications are ignored: the SQL capture already reports lazy loads as N+1,
    with the statements, timings and a fix. A load counts as used when any of its rows has the
    relation read afterwards (nplusone's rule). Not seen as reads: ``Prefetch(to_attr=...)``
    lists and generic relations (so those are never reported), and ``.count()``/``.exists()``
    on prefetched results (reported as unused, as nplusone does).
    """

    def __init__(self) -> None:
        self._loads: dict[tuple[type[Model], str, int], _EagerLoad] = {}
        self._by_relation: dict[tuple[type[Model], str], list[_EagerLoad]] = {}

    def __enter__(self) -> EagerLoads:
        _active.set((*_active.get(), self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Not a token reset: nested captures may close out of order.
        _active.set(tuple(source for source in _active.get() if source is not self))

    def _loaded(
        self,
        relation: tuple[type[Model], str, list[str], int],
        method: str,
        anchor: object,
        callsite: Callable[[], Callsite | None],
    ) -> None:
        model, name, keys, query = relation
        load = self._loads.get((model, name, query))
        if load is None:
            load = _EagerLoad(model, name, method, callsite(), anchor)
            self._loads[model, name, query] = load
            self._by_relation.setdefault((model, name), []).append(load)
        load.keys.update(keys)

    def _touched(self, model: type[Model], name: str, keys: list[str]) -> None:
        for load in self._by_relation.get((model, name), ()):
            if not load.used and not load.keys.isdisjoint(keys):
                load.used = True

    def findings(self) -> list[Finding]:
        counts: dict[tuple[type[Model], str, str, Callsite | None], int] = {}
        for load in self._loads.values():
            if not load.used:
                key = (load.model, load.name, load.method, load.callsite)
                counts[key] = counts.get(key, 0) + 1
        return [
            Finding(
                kind=UNUSED_EAGER_LOAD,
                count=count,
                fingerprint="",
                sql="",
                callsite=callsite,
                suggestion=_suggestion(model, name, method, callsite),
                relation=f"{model._meta.label}.{name}",
            )
            for (model, name, method, callsite), count in counts.items()
        ]


def _suggestion(model: type[Model], name: str, method: str, callsite: Callsite | None) -> str:
    where = f" evaluated at {callsite}" if callsite else ""
    return (
        f'remove "{name}" from .{method}(...) on the {model.__name__} queryset{where}: '
        "it is never used"
    )


_active: ContextVar[tuple[EagerLoads, ...]] = ContextVar("dbperf_nplusone", default=())


def _callsite() -> Callsite | None:
    return inspect_stack()[0]


def _on_eager_load(
    sender: object,
    *,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    parser: Callable[..., Any],
    **rest: Any,
) -> None:
    sources = _active.get()
    if not sources:
        return
    if isinstance(args[0], RelatedPopulator):  # populate(row, from_obj), once per row
        method = "select_related"
    else:  # prefetch_one_level(instances, prefetcher, lookup, level)
        _, prefetcher, lookup, level = args
        if lookup.get_current_to_attr(level)[1] or not _touch_tracked(prefetcher):
            return
        method = "prefetch_related"
    relation = parser(args, kwargs, context)
    found: list[Callsite | None] = []

    def callsite() -> Callsite | None:  # once per queryset, not per row
        if not found:
            found.append(_callsite())
        return found[0]

    for source in sources:
        source._loaded(relation, method, args[0], callsite)


def _touch_tracked(prefetcher: object) -> bool:
    return (
        isinstance(prefetcher, ForwardManyToOneDescriptor | ReverseOneToOneDescriptor)
        or type(prefetcher).__name__ in _TOUCH_TRACKED_MANAGERS
    )


def _on_touch(
    sender: object,
    *,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    parser: Callable[..., Any],
    **rest: Any,
) -> None:
    sources = _active.get()
    if not sources:
        return
    touched = parser(args, kwargs, context)  # None for reads nplusone cannot attribute
    if touched is not None:
        model, name, keys = touched
        for source in sources:
            source._touched(model, name, keys)


def eager_loads() -> EagerLoads:
    """The factory registered in ``FINDING_SOURCES``: a fresh source for each capture."""
    return EagerLoads()


def connect() -> None:
    """Listen to nplusone's signals and add the finding source to every capture. Idempotent."""
    signals = importlib.import_module(_SIGNALS_MODULE)
    # Strong references, any sender: the receivers are module functions gated by _active.
    signals.eager_load.connect(_on_eager_load, weak=False)
    signals.touch.connect(_on_touch, weak=False)
    if eager_loads not in FINDING_SOURCES:
        FINDING_SOURCES.append(eager_loads)


def disconnect() -> None:
    """Undo ``connect()``. nplusone's own patches stay: they cannot be unimported."""
    signals = sys.modules.get(_SIGNALS_MODULE)
    if signals is not None:
        signals.eager_load.disconnect(_on_eager_load)
        signals.touch.disconnect(_on_touch)
    while eager_loads in FINDING_SOURCES:
        FINDING_SOURCES.remove(eager_loads)


def register() -> bool:
    """Called from ``ready()``: when nplusone's app is installed, fix it and collect its reports.

    Returns whether it did. Without ``"nplusone.ext.django"`` in INSTALLED_APPS nplusone is not
    imported at all.
    """
    if not apps.is_installed(APP):
        return False
    importlib.import_module(APP)  # already imported by the app registry; applies the patches
    apply_compat_fix()
    connect()
    return True
