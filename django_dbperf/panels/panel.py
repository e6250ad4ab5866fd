"""``DbPerfPanel``: this request's N+1 findings, duplicates, budgets, cached querysets and slow
statements, in django-debug-toolbar.

It captures only the requests the toolbar is shown for, from its ``process_request`` (which
the toolbar calls for those alone), beside the toolbar's own SQL panel: both count the same
queries. Other requests pay nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from debug_toolbar.panels import Panel
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponseBase
from django.template.loader import render_to_string

from django_dbperf.cache.observing import CacheEvent, observe_cache_events
from django_dbperf.inspection import capture_queries
from django_dbperf.panels.links import with_links
from django_dbperf.panels.summary import summarise


class DbPerfPanel(Panel):
    """The toolbar calls ``process_request`` around the view, then ``generate_stats``."""

    is_async = True
    template = "django_dbperf/panel.html"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._captured: capture_queries | None = None
        self._events: list[CacheEvent] = []

    @property
    def title(self) -> str:
        return "Database performance (django-dbperf)"

    @property
    def nav_title(self) -> str:
        return "DbPerf"

    @property
    def nav_subtitle(self) -> str:
        stats = self.get_stats()  # type: ignore[no-untyped-call]
        if "queries" not in stats:
            return ""
        count = stats["queries"]
        return f"{count} quer{'y' if count == 1 else 'ies'}, {len(stats['n_plus_one'])} N+1"

    def process_request(self, request: HttpRequest) -> Any:
        if isinstance(request, ASGIRequest):  # the toolbar awaits what this returns
            return self._aprocess_request(request)
        with self._capturing():
            return self.get_response(request)

    async def _aprocess_request(self, request: HttpRequest) -> Any:
        with self._capturing():
            response: Any = self.get_response(request)  # a coroutine in the async chain
            return await response

    @contextmanager
    def _capturing(self) -> Iterator[None]:
        with capture_queries() as captured, observe_cache_events() as events:
            self._captured, self._events = captured, events
            yield

    def generate_stats(self, request: HttpRequest, response: HttpResponseBase) -> None:
        if self._captured is not None:
            stats = summarise(self._captured, self._events, request)
            self.record_stats(stats)  # type: ignore[no-untyped-call]

    @property
    def content(self) -> str:
        stats = self.get_stats()  # type: ignore[no-untyped-call]
        slow = stats.get("slow") or {"threshold_ms": None, "shapes": []}
        context = {**stats, "slow": {**slow, "shapes": with_links(slow["shapes"])}}
        return render_to_string(self.template, context)
