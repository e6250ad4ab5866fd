"""Entries narrowed to rows (``django_dbperf/cache/narrow.py``): a ``save()`` invalidates the
queries of its own primary key and foreign key values, not every query of its table, and
nothing is ever stale (rows moved between values, stale instances saved back, inserts, bulk
writes, raw SQL, transactions, concurrent writers).

Narrowing by foreign key needs Lua on the server, so the tests that count hits on other values
run against real Valkey/Redis; correctness is checked on every backend.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction

from django_dbperf import cache as dbperf_cache
from django_dbperf import capture_queries
from django_dbperf.cache.narrow import Narrowing, narrowing
from tests.helpers import make_library, queries, run_in_threads
from tests.testapp.models import Author, Book, Publisher

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("cache_alias")]


@pytest.fixture
def on_redis(cache_alias: str) -> None:
    if cache_alias != "redis":
        pytest.skip("narrowing by foreign key needs Valkey/Redis (the server pass runs this)")


@pytest.fixture
def authors() -> list[Author]:
    make_library(authors=3, books_per_author=2)
    return list(Author.objects.order_by("pk"))


def books_of(author: Author) -> list[tuple[int, str, int]]:
    qs = Book.cache.plain().filter(author_id=author.pk).order_by("pk").cached()
    return [(book.pk, book.title, book.author_id) for book in qs]


def fresh_books_of(author: Author) -> list[tuple[int, str, int]]:
    qs = Book.objects.filter(author_id=author.pk).order_by("pk")
    return [(book.pk, book.title, book.author_id) for book in qs]


def warm(*authors: Author) -> None:
    for author in authors:
        books_of(author)
        assert queries(lambda a=author: books_of(a))[1] == 0


# --- what narrows ---------------------------------------------------------------------------


def narrowed(queryset: Any) -> Narrowing | None:
    from django_dbperf.cache.prefetch import prefetch_tables

    sql = queryset.query.get_compiler(using="default").as_sql()[0]
    return narrowing(queryset, sql, prefetch_tables(queryset))


def test_which_queries_are_narrowed(authors: list[Author]) -> None:
    first = authors[0]
    by_author = narrowed(Book.objects.filter(author=first, pages__gt=1))
    assert by_author == Narrowing("testapp_book", "author_id", False, (str(first.pk),))
    by_pk = narrowed(Book.objects.filter(pk__in=[3, 1], author=first))
    assert by_pk == Narrowing("testapp_book", "id", True, ("1", "3"))  # the primary key wins
    joined = narrowed(Book.objects.select_related("author").filter(author_id__in=[2, 1]))
    assert joined == Narrowing("testapp_book", "author_id", False, ("1", "2"), ("testapp_author",))
    # Not narrowed: OR, negation, other columns, a self-join, a subquery reading the table.
    assert narrowed(Book.objects.filter(author=first) | Book.objects.filter(pages=3)) is None
    assert narrowed(Book.objects.exclude(author=first)) is None
    assert narrowed(Book.objects.filter(title="x")) is None
    assert narrowed(Book.objects.filter(author=first, author__books__title="x")) is None
    assert narrowed(Book.objects.filter(author=first, pk__in=Book.objects.values("pk"))) is None
    assert narrowed(Book.objects.prefetch_related("author__books").filter(author=first)) is None


# --- hits kept ----------------------------------------------------------------------------


def test_saving_a_book_keeps_other_authors_entries(authors: list[Author], on_redis: None) -> None:
    first, second = authors[:2]
    warm(first, second)
    book = Book.objects.filter(author=second).order_by("pk")[0]
    book.title = "renamed"
    book.save()
    assert queries(lambda: books_of(first)) == (fresh_books_of(first), 0)
    assert queries(lambda: books_of(second)) == (fresh_books_of(second), 1)
    assert "renamed" in [title for _, title, _ in books_of(second)]


def test_a_primary_key_entry_outlives_saves_of_other_rows(authors: list[Author]) -> None:
    first, second = Book.objects.order_by("pk")[:2]

    def title_of(pk: int) -> str:
        return Book.cache.plain().filter(pk=pk).cached().get().title

    title_of(first.pk)
    second.title = "other"
    second.save()
    assert queries(lambda: title_of(first.pk)) == (first.title, 0)
    first.title = "itself"
    first.save()
    assert queries(lambda: title_of(first.pk)) == ("itself", 1)


def test_joined_authors_are_narrowed_to_their_rows(authors: list[Author], on_redis: None) -> None:
    first, second, _ = authors

    def names(author: Author) -> list[str]:
        qs = Book.cache.plain().select_related("author").filter(author_id=author.pk).cached()
        return [book.author.name for book in qs]

    names(first)
    second.name = "someone else"
    second.save()
    assert queries(lambda: names(first))[1] == 0
    first.name = "renamed author"
    first.save()
    assert queries(lambda: names(first)) == (["renamed author", "renamed author"], 1)


# --- never stale --------------------------------------------------------------------------


def test_a_book_moved_to_another_author_leaves_both_lists_fresh(authors: list[Author]) -> None:
    first, second = authors[:2]
    warm(first, second)
    book = Book.objects.filter(author=first).order_by("pk")[0]
    book.author = second
    book.save()
    assert books_of(first) == fresh_books_of(first)
    assert books_of(second) == fresh_books_of(second)
    assert len(books_of(first)) == 1 and len(books_of(second)) == 3


def test_a_stale_instance_saved_back_moves_the_row_out_of_where_it_was(
    authors: list[Author],
) -> None:
    # The instance still holds author 1 while the database says author 2: its save() moves the
    # row from 2 to 1, and the list of author 2, cached in between, must lose it. Nothing on
    # the instance tells the write that the row was in author 2's list: the row's own version
    # does (the entry lists its rows).
    first, second = authors[:2]
    stale = Book.objects.filter(author=first).order_by("pk")[0]
    moved = Book.objects.get(pk=stale.pk)
    moved.author = second
    moved.save()
    warm(first, second)
    assert stale.pk in [pk for pk, _, _ in books_of(second)]
    stale.title = "saved back"
    stale.save()
    assert books_of(second) == fresh_books_of(second)
    assert books_of(first) == fresh_books_of(first)
    assert stale.pk not in [pk for pk, _, _ in books_of(second)]


def test_update_fields_without_the_foreign_key_cannot_narrow(authors: list[Author]) -> None:
    # The instance's author may be stale, and save(update_fields=["pages"]) does not write it:
    # the row's real author is unknown, so every list of the table is invalidated.
    first, second = authors[:2]
    stale = Book.objects.filter(author=first).order_by("pk")[0]
    Book.objects.filter(pk=stale.pk).update(author=second, pages=1)

    def long_books(author: Author) -> list[int]:
        qs = Book.cache.plain().filter(author_id=author.pk, pages__gt=100).cached()
        return [book.pk for book in qs]

    assert stale.pk not in long_books(second)
    stale.pages = 500
    stale.save(update_fields=["pages"])
    assert stale.pk in long_books(second)


def test_inserts_and_deletes(authors: list[Author]) -> None:
    first, second = authors[:2]
    warm(first, second)
    created = Book.objects.create(title="new", author=first, publisher=Publisher.objects.first())
    assert books_of(first) == fresh_books_of(first)
    assert created.pk in [pk for pk, _, _ in books_of(first)]
    created.delete()
    assert books_of(first) == fresh_books_of(first)
    absent = Book.cache.plain().filter(pk=10_000).cached()
    assert list(absent.all()) == []
    Book.objects.create(pk=10_000, title="explicit", author=second)
    assert [book.title for book in absent.all()] == ["explicit"]


@pytest.mark.parametrize(
    "write",
    [
        lambda author: Book.objects.filter(author=author).update(title="bulk"),
        lambda author: Book.objects.bulk_update(
            [Book(pk=b.pk, title="bulk") for b in Book.objects.filter(author=author)], ["title"]
        ),
        lambda author: connection.cursor().execute(
            "UPDATE testapp_book SET title = 'bulk' WHERE author_id = %s", [author.pk]
        ),
        lambda author: Book.objects.filter(author=author).delete(),
    ],
    ids=["update", "bulk_update", "raw SQL", "delete"],
)
def test_writes_of_unknown_rows_invalidate_every_narrowed_entry(
    authors: list[Author], write: Callable[[Author], Any]
) -> None:
    first = authors[0]
    warm(first)
    write(first)
    assert books_of(first) == fresh_books_of(first)


def test_saves_in_a_transaction_invalidate_at_commit(authors: list[Author]) -> None:
    first = authors[0]
    warm(first)
    with transaction.atomic():
        book = Book.objects.filter(author=first).order_by("pk")[0]
        book.title = "in a transaction"
        book.save()
        assert books_of(first) == fresh_books_of(first)  # dirty: bypasses the cache
    assert books_of(first) == fresh_books_of(first)
    assert "in a transaction" in [title for _, title, _ in books_of(first)]


def test_no_stale_read_while_a_row_moves_between_authors(
    postgres: None, authors: list[Author], on_redis: None
) -> None:
    # One book alternates between two authors, its pages counting the moves (even: first
    # author). Readers read both authors' cached lists; a list holding the book with fewer
    # pages than the last commit, or missing it while the last commit put it there, is stale.
    first, second = authors[:2]
    book = Book.objects.filter(author=first).order_by("pk")[0]
    Book.objects.filter(pk=book.pk).update(pages=0)
    committing, committed = [0], [0]
    stale: list[tuple[str, int, int, object]] = []
    reads = [0]
    start = time.monotonic()

    def running() -> bool:
        # At least 1.5 s and enough moves and reads to mean something, however loaded the
        # machine is; at most 30 s.
        elapsed = time.monotonic() - start
        return elapsed < 30 and (elapsed < 1.5 or committed[0] < 50 or reads[0] < 300)

    before = dbperf_cache.stats().get("testapp.Book", {}).get("hit", 0)

    def writer() -> None:
        instance = Book.objects.get(pk=book.pk)
        value = 0
        while running():
            value += 1
            committing[0] = value
            instance.pages = value
            instance.author = second if value % 2 else first
            instance.save()
            committed[0] = value
            time.sleep(0.003)

    def reader() -> None:
        while running():
            for parity, author in ((0, first), (1, second)):
                floor = committed[0]
                qs = Book.cache.plain().filter(author_id=author.pk).cached()
                pages = [b.pages for b in qs if b.pk == book.pk]
                ceiling = committing[0]
                reads[0] += 1
                if pages and pages[0] < floor:
                    stale.append(("old", floor, ceiling, pages))
                if not pages and floor == ceiling and floor % 2 == parity:
                    stale.append(("missing", floor, ceiling, author.pk))

    run_in_threads(writer, reader, reader)
    hits = dbperf_cache.stats()["testapp.Book"]["hit"] - before
    assert stale == [], f"stale reads: {stale[:10]}"
    # Hits prove the cache took part (their number depends on the scheduling: a wide margin).
    assert committed[0] >= 50 and hits >= 10, (committed[0], hits, reads[0])


def test_saving_an_instance_with_deferred_fields(authors: list[Author]) -> None:
    first, second = authors[:2]
    warm(first, second)
    book = Book.objects.only("title").filter(author=first).order_by("pk")[0]
    book.title = "deferred save"
    with capture_queries() as captured:
        book.save()  # saves the loaded fields only: its author is unknown here
    assert len(captured) == 1  # no query to load the deferred foreign key
    assert books_of(first) == fresh_books_of(first)
    assert "deferred save" in [title for _, title, _ in books_of(first)]


def test_statements_a_field_sends_during_save_invalidate_the_table(
    authors: list[Author], on_redis: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An ordering field's pre_save() shifts sibling rows inside Model._save_table(): that
    # UPDATE was taken for the saved row and invalidated only its own author's entries.
    first, second = authors[:2]
    warm(first, second)
    pages = Book._meta.get_field("pages")
    original = pages.pre_save

    def shift_other_rows(instance: Book, add: bool) -> Any:
        Book.objects.filter(author=second).update(title="shifted")
        return original(instance, add)

    monkeypatch.setattr(pages, "pre_save", shift_other_rows)
    book = Book.objects.filter(author=first).order_by("pk")[0]
    book.pages = 999
    book.save()
    assert books_of(second) == fresh_books_of(second)
    assert {title for _, title, _ in books_of(second)} == {"shifted"}
    assert books_of(first) == fresh_books_of(first)
