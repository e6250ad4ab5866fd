"""Where a query came from, found in one walk up the frames without a stack dump.

Peers capture a full stack per query, which is what makes them slow. Here a walk up the frames
stops at the first frame of the project's own code (see ``roots``); each code object is
classified once, so a frame costs one dictionary lookup. On the way the walk notes what
Django's own frames tell for free:

- the first framework frame (an installed app such as Wagtail, the admin or DRF, or Django's
  template engine) that ran the query, reported beside the project frame;
- the lazy-load descriptor that ran the query (which relation), and the template node being
  rendered (which template line);
- the querysets being evaluated and the ``prefetch_related`` lookup being followed, which tell
  where the rows came from (see ``Origin``).

The walk stops at the request handler: the code that sent the request (a test's
``client.get()``) is never a query's callsite. Async views run their ORM calls in a worker
thread whose stack ends at asgiref's thread handler; the callsite is then read from the
coroutine chain of the task that awaits the worker (see ``awaiting``).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any, NamedTuple

from django_dbperf.capture import roots
from django_dbperf.capture.awaiting import awaited_frames
from django_dbperf.capture.roots import short_path

__all__ = [
    "Callsite",
    "LazyLoad",
    "Origin",
    "PendingOrigin",
    "Stack",
    "TemplateSite",
    "inspect_stack",
    "short_path",
]


@dataclass(frozen=True, slots=True)
class Callsite:
    path: str
    line: int
    function: str
    module: str | None = None  # the frame's ``__name__``, for ignore rules by module

    def __str__(self) -> str:
        return f"{short_path(self.path)}:{self.line}"


@dataclass(frozen=True, slots=True)
class TemplateSite:
    name: str
    line: int

    def __str__(self) -> str:
        return f"{self.name}:{self.line}"


class LazyLoad(NamedTuple):
    """A relation or deferred field that Django loaded on attribute access.

    A tuple (not a frozen dataclass): one is made per lazy load, inside the query's capture.
    """

    kind: str  # "forward", "reverse_one_to_one", "deferred" or "generic_foreign_key"
    model: type[Any]  # the model whose attribute was accessed
    name: str  # the attribute: field name or reverse accessor

    @property
    def label(self) -> str:
        return f"{self.model._meta.label}.{self.name}"


class Origin(NamedTuple):
    """The queryset whose evaluation ran a query: which model's rows it loads, and how.

    ``outer`` is the queryset being evaluated around it: the root queryset of a
    ``prefetch_related`` lookup (then ``prefetch_path`` is the lookup's path from it), or the
    queryset a framework iterable (Wagtail's ``specific()``) was iterating.
    """

    model: type[Any]
    select_related: Any  # Query.select_related: a dict of paths, True or False
    prefetch_path: str | None = None
    outer: Origin | None = None
    queryset_type: type[Any] | None = None
    # Rows reshaped by .values()/.values_list(): such a queryset never reads a
    # prefetch_related cache.
    reshaped: bool = False
    # A tuple (not a frozen dataclass): one is made per SELECT a capture sees.


class PendingOrigin(NamedTuple):
    """The frames an ``Origin`` is read from, kept until the analysis asks for it.

    Reading a frame's locals costs as much as the rest of the walk, and only a few queries'
    origins are ever needed (those before an N+1), so the capture keeps the frames of
    ``QuerySet._fetch_all`` (and of ``prefetch_one_level``) and reads them later: a frame keeps
    its locals after its function returned. The frames live as long as the record, or until
    ``resolve()`` has read them.
    """

    inner: FrameType  # the queryset whose evaluation ran the query
    outer: FrameType | None  # the queryset being evaluated around it
    prefetch: FrameType | None  # the prefetch_related lookup being followed between them

    def resolve(self) -> Origin | None:
        inner = _queryset_origin(self.inner)
        if inner is None:
            return None
        if self.prefetch is not None:
            inner = inner._replace(prefetch_path=_prefetch_path(self.prefetch))
        outer = _queryset_origin(self.outer) if self.outer is not None else None
        return inner if outer is None else inner._replace(outer=outer)


class Stack(NamedTuple):
    callsite: Callsite | None  # the first frame of the project's code
    framework: Callsite | None  # the first framework frame below it, when there is one
    lazy_load: LazyLoad | None
    template: TemplateSite | None
    origin: PendingOrigin | None


# What a code object is, for the walk.
SKIP = 0  # Django's ORM and utilities, django_dbperf, the standard library, hidden modules
PROJECT = 1
FRAMEWORK = 2
LAZY_LOAD = 3
TEMPLATE = 4
FETCH_ALL = 5
PREFETCH = 6
BOUNDARY = 7  # the request handler: frames above it sent the request
THREAD = 8  # asgiref's worker-thread handler: the caller is a coroutine on the event loop


def _forward(frame: FrameType) -> LazyLoad | None:
    descriptor, instance = frame.f_locals.get("self"), frame.f_locals.get("instance")
    field = getattr(descriptor, "field", None)
    if instance is None or field is None:
        return None
    return LazyLoad("forward", type(instance), field.name)


def _reverse_one_to_one(frame: FrameType) -> LazyLoad | None:
    descriptor, instance = frame.f_locals.get("self"), frame.f_locals.get("instance")
    related = getattr(descriptor, "related", None)
    if instance is None or related is None:
        return None
    return LazyLoad("reverse_one_to_one", type(instance), related.get_accessor_name())


def _deferred(frame: FrameType) -> LazyLoad | None:
    descriptor, instance = frame.f_locals.get("self"), frame.f_locals.get("instance")
    field = getattr(descriptor, "field", None)
    if instance is None or field is None:
        return None
    return LazyLoad("deferred", type(instance), field.attname)


def _generic_foreign_key(frame: FrameType) -> LazyLoad | None:
    descriptor, instance = frame.f_locals.get("self"), frame.f_locals.get("instance")
    # Django 6.1 has a descriptor holding the field; 5.2's field is its own descriptor.
    name = getattr(getattr(descriptor, "field", descriptor), "name", None)
    if instance is None or not isinstance(name, str):
        return None
    return LazyLoad("generic_foreign_key", type(instance), name)


Extract = Callable[[FrameType], LazyLoad | None]
_MODEL_ITERABLE: type[Any] = object  # Django's ModelIterable, set with the special codes


def _learn_special_codes() -> None:
    """Classify the Django frames the walk reads (and the ones it stops at)."""
    from django.contrib.contenttypes import fields as generic
    from django.core.handlers.base import BaseHandler
    from django.db.models.fields.related_descriptors import (
        ForwardManyToOneDescriptor,
        ReverseOneToOneDescriptor,
    )
    from django.db.models.query import ModelIterable, QuerySet, prefetch_one_level
    from django.db.models.query_utils import DeferredAttribute
    from django.template.base import Node

    # unwrap(): tools such as nplusone wrap these methods; Django's own frame is the one below.
    lazy: dict[Any, Extract] = {
        ForwardManyToOneDescriptor.__get__: _forward,
        ReverseOneToOneDescriptor.__get__: _reverse_one_to_one,
        DeferredAttribute.__get__: _deferred,
    }
    descriptor = getattr(generic, "GenericForeignKeyDescriptor", generic.GenericForeignKey)
    lazy[descriptor.__get__] = _generic_foreign_key
    global _MODEL_ITERABLE
    _MODEL_ITERABLE = ModelIterable
    for function, extract in lazy.items():
        code = inspect.unwrap(function).__code__
        _kinds[id(code)], _codes[id(code)], _extractors[id(code)] = LAZY_LOAD, code, extract
    kinds: list[tuple[Any, int]] = [
        (Node.render_annotated, TEMPLATE),
        (QuerySet._fetch_all, FETCH_ALL),
        (prefetch_one_level, PREFETCH),
        (BaseHandler.get_response, BOUNDARY),
        (BaseHandler.get_response_async, BOUNDARY),
    ]
    try:
        from asgiref.sync import SyncToAsync

        kinds.append((SyncToAsync.thread_handler, THREAD))
    except ImportError:  # pragma: no cover - asgiref comes with Django
        pass
    for function, kind in kinds:
        code = inspect.unwrap(function).__code__
        _kinds[id(code)], _codes[id(code)] = kind, code


# Keyed by id(): hashing a code object hashes its bytecode, microseconds per Django frame.
# Every code object classified is kept referenced in _codes, so its id stays its own (and a
# callsite cached by a code's id stays that code's).
_kinds: dict[int, int] = {}
_codes: dict[int, CodeType] = {}
_extractors: dict[int, Extract] = {}


def forget_classification(**kwargs: object) -> None:
    """Classify code again (settings that decide what is project code changed)."""
    _kinds.clear()
    _codes.clear()
    _extractors.clear()
    _callsites.clear()
    roots.forget()


def _classify(frame: FrameType) -> int:
    if not _codes:
        _learn_special_codes()
        known = _kinds.get(id(frame.f_code))
        if known is not None:
            return known
    code = frame.f_code
    module = frame.f_globals.get("__name__")
    found = roots.classify(code.co_filename, module if isinstance(module, str) else "")
    kind = {roots.PROJECT: PROJECT, roots.FRAMEWORK: FRAMEWORK}.get(found, SKIP)
    _kinds[id(code)], _codes[id(code)] = kind, code
    return kind


_CALLSITE_CACHE_SIZE = 4096
_callsites: dict[tuple[int, int], Callsite] = {}


def _callsite(frame: FrameType) -> Callsite:
    """One shared ``Callsite`` per line: a loop makes the same one thousands of times.

    Keyed by the (classified, so kept alive) code object's id and the line: two ints hash
    faster than the file name.
    """
    code = frame.f_code
    key = (id(code), frame.f_lineno)
    callsite = _callsites.get(key)
    if callsite is None:
        if len(_callsites) >= _CALLSITE_CACHE_SIZE:
            _callsites.clear()
        module = frame.f_globals.get("__name__")
        callsite = _callsites[key] = Callsite(
            code.co_filename, key[1], code.co_name, module if isinstance(module, str) else None
        )
    return callsite


def _template_site(frame: FrameType) -> TemplateSite | None:
    node = frame.f_locals.get("self")
    origin = getattr(node, "origin", None)
    token = getattr(node, "token", None)
    if origin is None or token is None:
        return None
    return TemplateSite(str(origin.template_name or origin.name), int(token.lineno))


def _queryset_origin(frame: FrameType) -> Origin | None:
    queryset = frame.f_locals.get("self")
    # _query, not the query property: evaluating a queryset has applied its deferred filter.
    query = getattr(queryset, "_query", None)
    model = getattr(queryset, "model", None)
    if query is None or model is None:
        return None
    iterable = getattr(queryset, "_iterable_class", None)
    reshaped = isinstance(iterable, type) and not issubclass(iterable, _MODEL_ITERABLE)
    # Positional: a NamedTuple's keyword arguments cost more, once per SELECT.
    return Origin(model, query.select_related, None, None, type(queryset), reshaped)


def _prefetch_path(frame: FrameType) -> str | None:
    """The lookup path ``prefetch_one_level`` is following, from the root queryset."""
    lookup, level = frame.f_locals.get("lookup"), frame.f_locals.get("level")
    through = getattr(lookup, "prefetch_through", None)
    if not isinstance(through, str) or not isinstance(level, int):
        return None
    return "__".join(through.split("__")[: level + 1])


def inspect_stack(skip: int = 1) -> Stack:
    """The caller's callsite, and what the frames on the way there tell about the query."""
    frame: FrameType | None = sys._getframe(skip + 1)
    framework: Callsite | None = None
    lazy_load: LazyLoad | None = None
    template: TemplateSite | None = None
    inner: FrameType | None = None
    outer: FrameType | None = None
    prefetch: FrameType | None = None
    kind_of = _kinds.get
    while frame is not None:
        kind = kind_of(id(frame.f_code))
        if kind is None:
            kind = _classify(frame)
        if not kind:  # SKIP: most frames, Django's ORM
            frame = frame.f_back
            continue
        if kind == PROJECT:
            return Stack(
                _callsite(frame), framework, lazy_load, template, _pending(inner, outer, prefetch)
            )
        if kind == FRAMEWORK:
            if framework is None:
                framework = _callsite(frame)
        elif kind == FETCH_ALL:
            if inner is None:
                inner = frame
            elif outer is None:
                outer = frame
        elif kind == LAZY_LOAD:
            if lazy_load is None:
                lazy_load = _extractors[id(frame.f_code)](frame)
        elif kind == TEMPLATE:
            if template is None:
                template = _template_site(frame)
        elif kind == PREFETCH:
            if prefetch is None and inner is not None and outer is None:
                prefetch = frame
        elif kind == THREAD:
            callsite = _from_awaiting_task()
            return Stack(callsite, framework, lazy_load, template, _pending(inner, outer, prefetch))
        else:  # BOUNDARY: what sent the request is not where the query came from
            break
        frame = frame.f_back
    return Stack(None, framework, lazy_load, template, _pending(inner, outer, prefetch))


def _pending(
    inner: FrameType | None, outer: FrameType | None, prefetch: FrameType | None
) -> PendingOrigin | None:
    return None if inner is None else PendingOrigin(inner, outer, prefetch)


def _from_awaiting_task() -> Callsite | None:
    """The innermost project frame of the coroutines awaiting this worker thread's call."""
    for frame in awaited_frames():
        kind = _kinds.get(id(frame.f_code))
        if kind is None:
            kind = _classify(frame)
        if kind == PROJECT:
            return _callsite(frame)
    return None
