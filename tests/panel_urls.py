"""URLs for the toolbar panel's tests (test_panel.py): small HTML pages, each with a known
problem, in front of the suite's own URLs (the example project, the admin and the toolbar)."""

from __future__ import annotations

from django.contrib.sessions.models import Session
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.http import require_safe

from django_dbperf import query_budget
from django_dbperf.cache import CachingQuerySet
from django_dbperf.cache.observing import OBSERVERS
from django_dbperf.capture import is_capturing
from tests.testapp.models import Author, Book

SCRIPT_SQL = "SELECT '<script>alert(1)</script>'"


def page(*items: object) -> HttpResponse:
    """An HTML page, so the toolbar inserts itself (and its request id) before ``</body>``."""
    listed = "".join(f"<li>{item}</li>" for item in items)
    return HttpResponse(f"<html><body><ul>{listed}</ul></body></html>")


def books(request: HttpRequest) -> HttpResponse:
    """An N+1 on Book.author and one duplicate count."""
    titles = [f"{b.title} by {b.author.name}" for b in Book.objects.all()]  # panel-n-plus-one
    first = Author.objects.filter(name="Author 0").count()  # panel-duplicate
    second = Author.objects.filter(name="Author 0").count()  # panel-duplicate
    return page(*titles, first, second)


def script(request: HttpRequest) -> HttpResponse:
    """The same statement twice, with markup in a string literal of its SQL."""
    with connection.cursor() as cursor:
        for _ in range(2):
            cursor.execute(SCRIPT_SQL)
    return page("ran")


@require_safe
@query_budget(max_queries=2, max_duplicates=0)
def budgeted(request: HttpRequest) -> HttpResponse:
    return page(Author.objects.count(), Book.objects.count(), Book.objects.count())


def cached(request: HttpRequest) -> HttpResponse:
    """A miss, then a hit, a read served uncached (sessions are NOT_CACHED) and a write."""
    names = [author.name for author in Author.cache.order_by("pk").cached(tags=["panel"])]
    again = [author.name for author in Author.cache.order_by("pk").cached(tags=["panel"])]
    sessions = list(CachingQuerySet(model=Session).cached())
    Author.objects.filter(name="Author 0").update(name="Author 0")
    return page(*names, *again, len(sessions))


def capturing(request: HttpRequest) -> HttpResponse:
    """Whether a query capture or a cache observer is active while the view runs."""
    return page(f"capturing={is_capturing()}", f"observing={bool(OBSERVERS.get())}")


async def async_books(request: HttpRequest) -> HttpResponse:
    titles = [
        (await Author.objects.aget(pk=book.author_id)).name  # panel-async-n-plus-one
        async for book in Book.objects.all()
    ]
    return page(*titles)


urlpatterns = [
    path("panel/books/", books, name="panel_books"),
    path("panel/script/", script, name="panel_script"),
    path("panel/budgeted/", budgeted, name="panel_budgeted"),
    path("panel/cached/", cached, name="panel_cached"),
    path("panel/capturing/", capturing, name="panel_capturing"),
    path("panel/async/", async_books, name="panel_async"),
    path("", include("tests.urls")),
]
