"""Views for the middleware tests: clean, N+1, duplicate, budgeted, slow and async."""

from __future__ import annotations

import time

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import View

from django_dbperf import query_budget
from tests.testapp.models import Author, Book

# The slow view's query takes this long; tests set SLOW_QUERY_MS far below it and far above
# what a cheap query can take on a loaded machine.
SLOW_VIEW_SECONDS = 1.0


def clean(request: HttpRequest) -> JsonResponse:
    titles = [f"{b.title} by {b.author.name}" for b in Book.objects.select_related("author")]
    return JsonResponse({"books": titles})


def n_plus_one(request: HttpRequest) -> JsonResponse:
    titles = [f"{b.title} by {b.author.name}" for b in Book.objects.all()]
    return JsonResponse({"books": titles})


def duplicates(request: HttpRequest) -> JsonResponse:
    first = Author.objects.filter(name="Author 0").count()
    second = Author.objects.filter(name="Author 0").count()
    return JsonResponse({"counts": [first, second]})


@query_budget(max_queries=2)
def budgeted(request: HttpRequest) -> JsonResponse:
    counts = [Author.objects.count(), Book.objects.count(), Book.objects.filter(pages=1).count()]
    return JsonResponse({"counts": counts})


@query_budget(max_queries=10)
def generous(request: HttpRequest) -> JsonResponse:
    counts = [Author.objects.count(), Book.objects.count(), Book.objects.filter(pages=1).count()]
    return JsonResponse({"counts": counts})


def slow(request: HttpRequest) -> HttpResponse:
    """One query that sleeps SLOW_VIEW_SECONDS in the database: far above any test's threshold."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_sleep(%s)", [SLOW_VIEW_SECONDS])
        else:
            # SQLite has no sleep(): register one on this connection (idempotent).
            connection.connection.create_function("dbperf_test_sleep", 1, time.sleep)
            cursor.execute("SELECT dbperf_test_sleep(%s)", [SLOW_VIEW_SECONDS])
    return HttpResponse("slow")


async def async_n_plus_one(request: HttpRequest) -> JsonResponse:
    names = [
        (await Author.objects.aget(pk=book.author_id)).name  # async-n-plus-one
        async for book in Book.objects.all()
    ]
    return JsonResponse({"names": names})


def timed_elsewhere(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("ok")
    response.headers["Server-Timing"] = "app;dur=1.0"
    Author.objects.count()
    return response


def html(request: HttpRequest) -> HttpResponse:
    titles = "".join(f"<li>{b.title} by {b.author.name}</li>" for b in Book.objects.all())
    return HttpResponse(f"<html><body><ul>{titles}</ul></body></html>")


def broken(request: HttpRequest) -> JsonResponse:
    """Crashes: an audit reports it for its URL and goes on."""
    list(Book.objects.all())
    raise ValueError("the report template is missing")


class BookDetail(View):
    """A class-based view that names its model: an audit fills <pk> from a real row."""

    model = Book

    def get(self, request: HttpRequest, pk: int) -> JsonResponse:
        book = Book.objects.get(pk=pk)
        return JsonResponse({"title": book.title, "author": book.author.name})
