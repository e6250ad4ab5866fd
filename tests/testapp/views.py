"""Views for the middleware tests: clean, N+1, duplicate, budgeted, slow and async."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from django_dbperf import query_budget
from tests.testapp.models import Author, Book


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
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_sleep(0.03)")
        else:
            # A recursive count that takes tens of milliseconds on SQLite.
            cursor.execute(
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 300000)"
                " SELECT count(*) FROM n"
            )
    return HttpResponse("slow")


async def async_n_plus_one(request: HttpRequest) -> JsonResponse:
    names = [
        (await Author.objects.aget(pk=book.author_id)).name async for book in Book.objects.all()
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
