"""Where a query came from: the first frame in the project's own code, found without a stack dump.

Peers capture a full stack per query, which is what makes them slow. Here a walk up the frames
stops at the first file that is not Django, django_dbperf, an installed package or the standard
library; each file is classified once. On the way it notes two things Django's own frames tell
for free: the lazy-load descriptor that ran the query (which relation) and the template node
being rendered (which template line).
"""

from __future__ import annotations

import inspect
import os
import sys
import sysconfig
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

import django

import django_dbperf


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


@dataclass(frozen=True, slots=True)
class LazyLoad:
    """A relation or deferred field that Django loaded on attribute access."""

    kind: str  # "forward", "reverse_one_to_one" or "deferred"
    model: type[Any]  # the model whose attribute was accessed
    name: str  # the attribute: field name or reverse accessor

    @property
    def label(self) -> str:
        return f"{self.model._meta.label}.{self.name}"


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"]}
    roots |= {os.path.dirname(django.__file__), os.path.dirname(django_dbperf.__file__)}
    roots |= {path for path in sys.path if path.endswith(("site-packages", "dist-packages"))}
    return tuple(sorted(os.path.join(root, "") for root in roots if root))


_LIBRARY_ROOTS = _library_roots()
_is_library_cache: dict[str, bool] = {}


def is_library_file(filename: str) -> bool:
    """True for Django, django_dbperf, installed packages, the stdlib and frozen modules."""
    known = _is_library_cache.get(filename)
    if known is None:
        known = filename.startswith(_LIBRARY_ROOTS) or filename.startswith("<")
        _is_library_cache[filename] = known
    return known


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


def _lazy_load_codes() -> dict[CodeType, Any]:
    from django.db.models.fields.related_descriptors import (
        ForwardManyToOneDescriptor,
        ReverseOneToOneDescriptor,
    )
    from django.db.models.query_utils import DeferredAttribute

    # unwrap(): tools such as nplusone wrap these methods; Django's own frame is the one below.
    return {
        inspect.unwrap(ForwardManyToOneDescriptor.__get__).__code__: _forward,
        inspect.unwrap(ReverseOneToOneDescriptor.__get__).__code__: _reverse_one_to_one,
        inspect.unwrap(DeferredAttribute.__get__).__code__: _deferred,
    }


def _template_code() -> CodeType:
    from django.template.base import Node

    return Node.render_annotated.__code__


# Keyed by id(): hashing a code object hashes its bytecode, microseconds per Django frame.
# The code objects are kept referenced, so their ids stay theirs.
_LAZY_LOAD_CODES: dict[int, tuple[CodeType, Any]] = {}
_TEMPLATE_CODE: list[CodeType] = []


def _ensure_codes() -> None:
    # Imported on first use: django.db.models must not be imported before apps are ready.
    if not _TEMPLATE_CODE:
        codes = _lazy_load_codes()
        _LAZY_LOAD_CODES.update({id(code): (code, extract) for code, extract in codes.items()})
        _TEMPLATE_CODE.append(_template_code())


_CALLSITE_CACHE_SIZE = 4096
_callsites: dict[tuple[str, int, str], Callsite] = {}


def _callsite(frame: FrameType) -> Callsite:
    """One shared ``Callsite`` per line: a loop makes the same one thousands of times."""
    code = frame.f_code
    key = (code.co_filename, frame.f_lineno, code.co_name)
    callsite = _callsites.get(key)
    if callsite is None:
        if len(_callsites) >= _CALLSITE_CACHE_SIZE:
            _callsites.clear()
        module = frame.f_globals.get("__name__")
        callsite = _callsites[key] = Callsite(*key, module if isinstance(module, str) else None)
    return callsite


def _template_site(frame: FrameType) -> TemplateSite | None:
    node = frame.f_locals.get("self")
    origin = getattr(node, "origin", None)
    token = getattr(node, "token", None)
    if origin is None or token is None:
        return None
    return TemplateSite(str(origin.template_name or origin.name), int(token.lineno))


def inspect_stack(
    skip: int = 1,
) -> tuple[Callsite | None, LazyLoad | None, TemplateSite | None]:
    """The caller's callsite, and the lazy load and template line on the way there, if any."""
    if not _TEMPLATE_CODE:
        _ensure_codes()
    frame: FrameType | None = sys._getframe(skip + 1)
    lazy_load: LazyLoad | None = None
    template: TemplateSite | None = None
    template_code = _TEMPLATE_CODE[0]
    lazy_load_codes = _LAZY_LOAD_CODES
    classified = _is_library_cache
    while frame is not None:
        code = frame.f_code
        filename = code.co_filename
        library = classified.get(filename)
        if library is None:
            library = is_library_file(filename)
        if not library:
            return _callsite(frame), lazy_load, template
        if lazy_load is None:
            known = lazy_load_codes.get(id(code))
            if known is not None and known[0] is code:
                lazy_load = known[1](frame)
        if template is None and code is template_code:
            template = _template_site(frame)
        frame = frame.f_back
    return None, lazy_load, template


def short_path(path: str) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative
