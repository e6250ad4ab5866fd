"""``RequestInfo``: which request a captured query ran for, so findings can be matched by URL.

The capture layer cannot know the request (a capture may wrap several test-client requests, or
none); ``QueryCountMiddleware`` stamps its records with one of these after the response.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_dbperf.capture import QueryRecord


@dataclass(frozen=True, slots=True)
class RequestInfo:
    path: str  # ``request.path``: the URL path with the script prefix, without the query string
    view: str | None = None  # ``resolver_match.view_name``, e.g. ``"admin:auth_user_changelist"``


def view_name(request: Any) -> str | None:
    """The resolved view's name (``"app:name"``), None before resolving or for unnamed views."""
    return getattr(getattr(request, "resolver_match", None), "view_name", None) or None


def stamp_request(request: Any, queries: Iterable[QueryRecord]) -> str | None:
    """Mark ``queries`` as run for ``request`` (path and view), before their findings are read,
    so ``DBPERF["IGNORE"]``'s path and view rules apply; returns the view name."""
    view = view_name(request)
    stamp = RequestInfo(request.path, view)
    for query in queries:
        query.request = stamp
    return view
