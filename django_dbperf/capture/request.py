"""``RequestInfo``: which request a captured query ran for, so findings can be matched by URL.

The capture layer cannot know the request (a capture may wrap several test-client requests, or
none); ``QueryCountMiddleware`` stamps its records with one of these after the response.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestInfo:
    path: str  # ``request.path``: the URL path with the script prefix, without the query string
    view: str | None = None  # ``resolver_match.view_name``, e.g. ``"admin:auth_user_changelist"``
