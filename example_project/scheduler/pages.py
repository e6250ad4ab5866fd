"""The pages a report can request: each naive page or JSON endpoint, and its optimized twin."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Model
from django.urls import reverse

from example_project.scheduler.models import Event, Workflow


class PageUnavailable(LookupError):
    """A detail page needs a row to show, and there is none yet."""


@dataclass(frozen=True)
class Page:
    label: str
    url_name: str
    kwargs: Callable[[], dict[str, Any]] | None = None

    def path(self) -> str:
        """The URL path to request; detail pages look up their row at call time."""
        kwargs = self.kwargs() if self.kwargs else {}
        return reverse(f"scheduler:{self.url_name}", kwargs=kwargs)


def _first(model: type[Model]) -> Callable[[], dict[str, Any]]:
    def kwargs() -> dict[str, Any]:
        pk = model._default_manager.order_by("pk").values_list("pk", flat=True).first()
        if pk is None:
            name = model._meta.verbose_name
            raise PageUnavailable(f"No {name} exists yet; run `manage.py seed_demo` first.")
        return {"pk": pk}

    return kwargs


NAIVE_PAGES: list[Page] = [
    Page("Dashboard", "dashboard"),
    Page("Event list", "event_list"),
    Page("Event detail", "event_detail", _first(Event)),
    Page("Workflow detail", "workflow_detail", _first(Workflow)),
    Page("Log list", "log_list"),
    Page("API: events", "api_events"),
    Page("API: event detail", "api_event_detail", _first(Event)),
    Page("API: dashboard", "api_dashboard"),
]


def optimized(page: Page) -> Page:
    """The twin of a naive page: same label and row, URL name ``fast_<name>``."""
    return Page(page.label, f"fast_{page.url_name}", page.kwargs)


OPTIMIZED_PAGES: list[Page] = [optimized(page) for page in NAIVE_PAGES]
# (naive, optimized) per page, in NAIVE_PAGES order: the rows of the before/after table.
PAGE_PAIRS: list[tuple[Page, Page]] = list(zip(NAIVE_PAGES, OPTIMIZED_PAGES, strict=True))
