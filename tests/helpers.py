"""Test helpers: the testapp library's data, counting queries, running threads, and finding a
marked line of a test file."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from django.db import connections

from tests.testapp.models import Author, AuthorProfile, Book, Publisher, Review, Tag


def make_library(authors: int = 5, books_per_author: int = 2) -> list[Book]:
    """``authors`` authors with profiles, each with books that have a publisher, tags, reviews."""
    publisher = Publisher.objects.create(name="Acme")
    tags = [Tag.objects.create(name=f"tag{number}") for number in range(3)]
    books = []
    for a in range(authors):
        author = Author.objects.create(name=f"Author {a}", email=f"a{a}@example.com")
        AuthorProfile.objects.create(author=author, bio=f"Bio {a}")
        for b in range(books_per_author):
            book = Book.objects.create(
                title=f"Book {a}.{b}", summary="...", pages=100 + b, author=author,
                publisher=publisher,
            )  # fmt: skip
            book.tags.set(tags[: 1 + (a + b) % 3])
            Review.objects.create(book=book, rating=1 + (a + b) % 5)
            books.append(book)
    return books


def line_of(path: str, marker: str) -> str:
    """``relative/path.py:N`` of the line in ``path`` that carries the comment ``# marker``."""
    with open(path) as source:
        for number, line in enumerate(source, 1):
            if line.rstrip().endswith(f"# {marker}"):
                return f"{os.path.relpath(path)}:{number}"
    raise AssertionError(f"no line marked {marker!r} in {path}")


def queries(func: Callable[[], Any]) -> tuple[Any, int]:
    """``func()``'s result and the number of statements it ran."""
    from django_dbperf import capture_queries

    with capture_queries() as captured:
        result = func()
    return result, len(captured)


def run_in_threads(*targets: Callable[[], None]) -> None:
    """Run each target in a thread of its own (closing its connections) and wait for all."""

    def run(target: Callable[[], None]) -> None:
        try:
            target()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def assert_served_from_the_cache(evaluate: Callable[[Any], Any]) -> None:
    """``evaluate`` of a cached Book queryset: a query the first time, none the second, and the
    uncached result both times."""

    def run() -> Any:
        return evaluate(Book.cache.plain().order_by("pk").cached())

    cold, cold_queries = queries(run)
    warm, warm_queries = queries(run)
    assert cold_queries >= 1 and warm_queries == 0
    assert warm == cold == evaluate(Book.objects.order_by("pk"))


def execute(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Raw SQL on the default connection; its rows (none for a statement without a result)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def drop_tables_starting_with(prefix: str) -> None:
    """Drop the public tables a transaction=True test made (the flush only empties models')."""
    made = execute(
        "SELECT quote_ident(tablename) FROM pg_tables "
        "WHERE schemaname = 'public' AND starts_with(tablename, %s)",
        [prefix],
    )
    if made:
        execute("DROP TABLE " + ", ".join(name for (name,) in made) + " CASCADE")
