"""Every GET route of the URLconf, as a crawler would reach it: each pattern with its arguments
filled from real rows where a converter and a model make that possible, or the reason it was
skipped.

Arguments are filled when the view names its model (class-based views' ``model`` or
``queryset``, DRF's ``queryset``), or when the argument or the route's name names a model of
the view's app (``<int:event_id>``, ``event_detail`` with ``<int:pk>``): the first row's key
(or slug) is used, if the converter accepts it. Admin and debug routes are left out unless
asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import models
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse
from django.urls.resolvers import RoutePattern

ADMIN_NAMESPACES = frozenset({"admin"})
DEBUG_NAMESPACES = frozenset({"djdt", "silk", "debug_toolbar"})
_FILES = ("django.views.static.serve", "django.contrib.staticfiles.views.serve")


@dataclass(frozen=True)
class Route:
    pattern: str  # as written in the URLconf, prefixes included: "events/<int:pk>/"
    name: str | None  # "scheduler:event_detail"
    url: str | None  # the path to request; None when skipped
    skipped: str | None = None  # why it could not be requested


@dataclass(frozen=True)
class _Found:
    pattern: str
    name: str | None
    namespaces: tuple[str, ...]
    callback: Any
    converters: dict[str, Any]
    regex: bool  # a regular-expression pattern (re_path)


def _walk(
    patterns: list[Any], prefix: str = "", namespaces: tuple[str, ...] = (), regex: bool = False,
    converters: dict[str, Any] | None = None,
) -> Iterator[_Found]:  # fmt: skip
    for entry in patterns:
        pattern = entry.pattern
        text = prefix + str(pattern)
        is_regex = regex or not isinstance(pattern, RoutePattern)
        found = {**(converters or {}), **getattr(pattern, "converters", {})}
        if isinstance(entry, URLResolver):
            spaces = namespaces + ((entry.namespace,) if entry.namespace else ())
            yield from _walk(entry.url_patterns, text, spaces, is_regex, found)
        elif isinstance(entry, URLPattern):
            name = ":".join([*namespaces, entry.name]) if entry.name else None
            yield _Found(text, name, namespaces, entry.callback, found, is_regex)


def _view_model(callback: Any) -> type[models.Model] | None:
    for holder in (getattr(callback, "view_class", None), getattr(callback, "cls", None)):
        if holder is None:
            continue
        model = getattr(holder, "model", None)
        queryset = getattr(holder, "queryset", None)
        if model is None and queryset is not None:
            model = getattr(queryset, "model", None)
        if isinstance(model, type) and issubclass(model, models.Model):
            return model
    return None


def _app_models(callback: Any) -> list[type[models.Model]]:
    module = getattr(callback, "__module__", "") or ""
    config = apps.get_containing_app_config(module)
    return list(config.get_models()) if config is not None else list(apps.get_models())


def _model_named(word: str, callback: Any) -> type[models.Model] | None:
    for model in _app_models(callback):
        if model._meta.model_name == word.replace("_", ""):
            return model
    return None


def _argument_model(
    argument: str, found: _Found, arguments: int
) -> tuple[type[models.Model] | None, str]:
    """The model behind ``argument``, and the field whose value fills it."""
    for suffix, field in (("_id", "pk"), ("_pk", "pk"), ("_slug", "slug")):
        if argument.endswith(suffix):
            return _model_named(argument.removesuffix(suffix), found.callback), field
    field = "slug" if argument == "slug" else "pk"
    if argument not in ("pk", "id", "slug") or arguments != 1:
        return None, field
    model = _view_model(found.callback)
    # A route named like "api_event_detail": the first word that names a model of the app.
    for word in found.name.split(":")[-1].split("_") if found.name and model is None else ():
        model = _model_named(word, found.callback) or _model_named(word.rstrip("s"), found.callback)
        if model is not None:
            break
    return model, field


def _value(model: type[models.Model], field: str, converter: Any) -> tuple[Any, str | None]:
    import re

    if field != "pk" and field not in {f.name for f in model._meta.get_fields()}:
        return None, f"{model._meta.label} has no field {field!r}"
    value = model._default_manager.order_by("pk").values_list(field, flat=True).first()
    if value is None:
        return None, f"{model._meta.label} has no rows to fill it with"
    if not re.fullmatch(converter.regex, str(converter.to_url(value))):
        return None, f"{model._meta.label}'s {field} {value!r} does not fit the converter"
    return value, None


def _arguments(found: _Found) -> tuple[dict[str, Any], str | None]:
    kwargs: dict[str, Any] = {}
    for argument, converter in found.converters.items():
        model, field = _argument_model(argument, found, len(found.converters))
        if model is None:
            return {}, (
                f"no model to fill <{argument}> from (name the model in the view, or give the "
                f"URL explicitly)"
            )
        value, why = _value(model, field, converter)
        if why:
            return {}, why
        kwargs[argument] = value
    return kwargs, None


def _url(found: _Found, kwargs: dict[str, Any]) -> str | None:
    if found.name:
        try:
            return reverse(found.name, kwargs=kwargs or None)
        except NoReverseMatch:
            return None
    if kwargs:
        return None
    return "/" + found.pattern.lstrip("^").rstrip("$")


def _excluded(found: _Found, include_admin: bool, include_debug: bool) -> str | None:
    spaces = set(found.namespaces)
    callback = (
        f"{getattr(found.callback, '__module__', '')}.{getattr(found.callback, '__name__', '')}"
    )
    if callback in _FILES:
        return "serves files"
    if not include_admin and (spaces & ADMIN_NAMESPACES or found.pattern.startswith("admin/")):
        return "an admin route (--include-admin to audit them)"
    if not include_debug and (spaces & DEBUG_NAMESPACES or found.pattern.startswith("__debug__")):
        return "a debug route (--include-debug to audit them)"
    return None


def routes(
    urlconf: str | None = None, *, include_admin: bool = False, include_debug: bool = False
) -> list[Route]:
    """Every route of ``urlconf`` (default ROOT_URLCONF), requestable or with why not."""
    found_routes: list[Route] = []
    seen: set[str] = set()
    for found in _walk(get_resolver(urlconf).url_patterns):
        excluded = _excluded(found, include_admin, include_debug)
        if excluded:
            found_routes.append(Route(found.pattern, found.name, None, excluded))
            continue
        if found.regex and ("(?P<" in found.pattern or "(" in found.pattern):
            why = "a regular-expression route with groups: give its URL explicitly"
            found_routes.append(Route(found.pattern, found.name, None, why))
            continue
        kwargs, problem = _arguments(found)
        url = None if problem else _url(found, kwargs)
        if url is None:
            why = problem or "cannot be built"
            found_routes.append(Route(found.pattern, found.name, None, why))
        elif url not in seen:
            seen.add(url)
            found_routes.append(Route(found.pattern, found.name, url))
    return found_routes
