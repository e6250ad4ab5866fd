"""DbPerfTestMixin: each assertion passes on good code and fails, with a useful message, on bad."""

from __future__ import annotations

import re

import pytest
from django.test import TestCase

from django_dbperf.testing import DbPerfTestMixin
from tests.helpers import make_library
from tests.testapp.models import Author, Book


def titles_with_authors() -> list[str]:
    return [f"{book.title}/{book.author.name}" for book in Book.objects.all()]  # lazy-authors


def titles_with_authors_eager() -> list[str]:
    return [f"{b.title}/{b.author.name}" for b in Book.objects.select_related("author")]


def add_books(count: int) -> None:
    author = Author.objects.create(name="Setup")
    Book.objects.bulk_create(Book(title=f"b{n}", author=author) for n in range(count))


class MixinTests(DbPerfTestMixin, TestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        make_library(authors=3, books_per_author=2)

    def test_assert_max_queries_as_context_manager(self) -> None:
        with self.assertMaxQueries(1):
            titles_with_authors_eager()
        with self.assertRaises(AssertionError) as failure, self.assertMaxQueries(3):
            titles_with_authors()
        message = str(failure.exception)
        assert message.startswith(
            "7 queries executed, at most 3 expected\nCaptured queries were:\n1. SELECT"
        )
        assert re.search(r"\n7\. SELECT .*\(tests/test_testing.py:\d+\)", message)
        assert "Findings:\n1. N+1 on testapp.Book.author: 6 queries" in message
        assert 'fix: add .select_related("author")' in message

    def test_assert_max_queries_with_a_callable(self) -> None:
        self.assertMaxQueries(1, titles_with_authors_eager)
        with self.assertRaises(AssertionError):
            self.assertMaxQueries(6, titles_with_authors)

    def test_assert_max_queries_passes_arguments(self) -> None:
        self.assertMaxQueries(1, Book.objects.filter, title="Book 0.0")  # lazy: no query
        self.assertMaxQueries(1, list, Book.objects.filter(title="Book 0.0"))

    def test_assert_no_n_plus_one(self) -> None:
        self.assertNoNPlusOne(titles_with_authors_eager)
        with self.assertRaises(AssertionError) as failure:
            self.assertNoNPlusOne(titles_with_authors)
        message = str(failure.exception)
        assert message.startswith("1 N+1 query found\nCaptured queries were:")
        assert (
            "N+1 on testapp.Book.author: 6 queries of the same shape from tests/test_testing.py:"
            in message
        )

    def test_assert_no_duplicate_queries(self) -> None:
        with self.assertNoDuplicateQueries():
            Author.objects.count()
            Book.objects.count()
        with self.assertRaises(AssertionError) as failure, self.assertNoDuplicateQueries():
            Author.objects.count()
            Author.objects.count()
        assert "1 duplicated query found" in str(failure.exception)
        assert "ran 2 times" in str(failure.exception)

    def test_assert_queries_constant_passes_for_eager_code(self) -> None:
        self.assertQueriesConstant(titles_with_authors_eager, sizes=(2, 10), setup=add_books)

    def test_assert_queries_constant_fails_when_queries_grow(self) -> None:
        with self.assertRaises(AssertionError) as failure:
            self.assertQueriesConstant(titles_with_authors, sizes=(2, 10), setup=add_books)
        message = str(failure.exception)
        # setup runs in a rolled-back transaction per size: 6 books + 2, then 6 + 10.
        assert message.startswith(
            "The number of queries grows with the data (2 rows: 9 queries, 10 rows: 17 queries)"
        )
        assert "N+1 on testapp.Book.author" in message

    def test_assert_queries_constant_rolls_back_each_size(self) -> None:
        before = Book.objects.count()
        self.assertQueriesConstant(Book.objects.count, sizes=(3, 5), setup=add_books)
        assert Book.objects.count() == before

    def test_assert_queries_constant_needs_setup_and_two_sizes(self) -> None:
        with pytest.raises(ValueError, match="needs setup="):
            self.assertQueriesConstant(Book.objects.count)
        with pytest.raises(ValueError, match="at least two sizes"):
            self.assertQueriesConstant(Book.objects.count, sizes=(3,), setup=add_books)
