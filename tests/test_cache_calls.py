"""``@cached_as(Model, ...)``: results cached per arguments, invalidated by the declared models'
writes, and never stored when the function reads a table it did not declare."""

from __future__ import annotations

import logging
import threading

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import override_settings

from django_dbperf import cache as dbperf_cache
from django_dbperf.cache import cached_as
from tests.helpers import make_library, queries, run_in_threads
from tests.testapp.models import Author, Book, Tag

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("cache_alias")]


@pytest.fixture
def library() -> list[Book]:
    return make_library(authors=3, books_per_author=2)


@cached_as(Book, "testapp.Author")
def titles_of(author_id: int, *, with_author: bool = False) -> list[str]:
    books = Book.objects.filter(author_id=author_id).select_related("author").order_by("pk")
    return [f"{b.title} by {b.author.name}" if with_author else b.title for b in books]


@cached_as(Book)
def tag_names() -> list[str]:
    return sorted({tag.name for book in Book.objects.all() for tag in book.tags.all()})


def test_results_are_served_per_arguments(library: list[Book]) -> None:
    first, second = Author.objects.order_by("pk")[:2]
    assert queries(lambda: titles_of(first.pk)) == (["Book 0.0", "Book 0.1"], 1)
    assert queries(lambda: titles_of(first.pk)) == (["Book 0.0", "Book 0.1"], 0)
    assert queries(lambda: titles_of(second.pk)) == (["Book 1.0", "Book 1.1"], 1)
    named = ["Book 0.0 by Author 0", "Book 0.1 by Author 0"]
    assert queries(lambda: titles_of(first.pk, with_author=True)) == (named, 1)
    assert queries(lambda: titles_of(author_id=first.pk, with_author=True))[1] == 1
    assert queries(lambda: titles_of(with_author=True, author_id=first.pk))[1] == 0


def test_writes_to_declared_models_invalidate(library: list[Book]) -> None:
    author = Author.objects.order_by("pk")[0]
    titles_of(author.pk, with_author=True)
    author.name = "Renamed"
    author.save()
    assert titles_of(author.pk, with_author=True) == [
        "Book 0.0 by Renamed",
        "Book 0.1 by Renamed",
    ]
    Book.objects.filter(author=author).update(title="Updated")
    assert titles_of(author.pk) == ["Updated", "Updated"]


def test_an_undeclared_table_is_never_cached(
    library: list[Book], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="django_dbperf"):
        first = tag_names()
        assert queries(tag_names)[1] > 1  # recomputed: it reads the tags it did not declare
    assert "tag_names() read testapp_book_tags, testapp_tag" in caplog.text
    assert first == ["tag0", "tag1", "tag2"]
    Tag.objects.filter(name="tag0").update(name="renamed")
    assert tag_names() == ["renamed", "tag1", "tag2"]


def test_arguments_that_cannot_be_keyed_are_refused(library: list[Book]) -> None:
    author = Author.objects.order_by("pk")[0]
    with pytest.raises(TypeError, match=r"argument 0 of .*titles_of\(\) is Author .*author\.pk"):
        titles_of(author)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs the models"):
        cached_as()
    with pytest.raises(TypeError, match=r"model classes or 'app_label\.Model'"):
        cached_as(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"cached_as\(ttl=...\)"):
        cached_as(Book, ttl=0)


def test_needs_the_cache_setting(library: list[Book]) -> None:
    with override_settings(DBPERF={}), pytest.raises(ImproperlyConfigured, match="CACHE"):
        titles_of(1)


def test_a_transaction_that_wrote_the_tables_bypasses(library: list[Book]) -> None:
    author = Author.objects.order_by("pk")[0]
    titles_of(author.pk)
    with transaction.atomic():
        Book.objects.filter(author=author).update(title="uncommitted")
        assert queries(lambda: titles_of(author.pk)) == (["uncommitted", "uncommitted"], 1)
    assert titles_of(author.pk) == ["uncommitted", "uncommitted"]


def test_tags_and_counters(library: list[Book], cache_alias: str) -> None:
    @cached_as(Book, tags=["home"])
    def count_books() -> int:
        return Book.objects.count()

    assert (count_books(), count_books()) == (6, 6)
    dbperf_cache.invalidate_tags("home")
    assert queries(count_books) == (6, 1)
    counters = dbperf_cache.stats()
    name = f"call:{count_books.__module__}.{count_books.__qualname__}"
    assert (counters[name]["hit"], counters[name]["miss"]) == (1, 2)
    assert counters["tag:home"]["miss"] == 2


def test_switched_off_it_computes_every_time(library: list[Book], cache_alias: str) -> None:
    with override_settings(DBPERF={"CACHE": {"ALIAS": cache_alias, "ENABLED": False}}):
        titles_of(1)
        assert queries(lambda: titles_of(1))[1] == 1


def test_lock_lets_one_caller_compute(
    postgres: None, library: list[Book], on_redis: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_dbperf.cache import queryset

    # Waiters give up after WAIT_SECONDS and compute too; on a loaded machine the holder can
    # take longer than that. This test is about the lock, so they wait as long as it takes.
    monkeypatch.setattr(queryset, "WAIT_SECONDS", 60.0)
    computed: list[int] = []
    results: list[int] = []
    gate = threading.Barrier(4)

    @cached_as(Book, lock=True, key="slow count")  # closes over computed: named by key=
    def slow_count() -> int:
        computed.append(1)
        import time

        time.sleep(0.3)
        return Book.objects.count()

    def call() -> None:
        gate.wait()
        results.append(slow_count())

    run_in_threads(call, call, call, call)
    assert results == [6, 6, 6, 6] and len(computed) == 1


@pytest.fixture
def on_redis(cache_alias: str) -> None:
    if cache_alias != "redis":
        pytest.skip("several threads share the cache only on Valkey/Redis (the server pass)")


def counter(minimum: int, key: str | None = None) -> object:
    @cached_as(Book, key=key)
    def count() -> int:
        return Book.objects.filter(pages__gte=minimum).count()

    return count


def test_closures_need_a_key_naming_what_they_close_over(library: list[Book]) -> None:
    # Two closures of one factory share a qualified name: they shared entries.
    with pytest.raises(TypeError, match=r"closes over minimum.*key="):
        counter(0)
    everything, long_ones = counter(0, key="minimum=0"), counter(101, key="minimum=101")
    assert [everything(), long_ones(), everything()] == [6, 3, 6]  # type: ignore[operator]


def test_key_must_be_a_non_empty_string() -> None:
    with pytest.raises(TypeError, match=r"key=\.\.\.\) must be a non-empty str"):
        cached_as(Book, key="")


def test_a_result_stored_just_before_the_lock_is_served_not_recomputed(
    library: list[Book], on_redis: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving that made two callers compute: B looks (miss), A computes, stores and
    releases, then B takes the free lock. B must look again under the lock."""
    from django_dbperf.cache.store import STORE

    computed: list[int] = []

    @cached_as(Book, lock=True, key="count before the lock")
    def count() -> int:
        computed.append(1)
        return Book.objects.count()

    real_acquire = STORE.acquire
    interleaved: list[int] = []

    def acquire_after_another_caller(entry: str, seconds: float) -> bool:
        if not interleaved:  # B, after its miss: A runs start to finish first
            interleaved.append(0)
            interleaved.append(count())
        return real_acquire(entry, seconds)

    monkeypatch.setattr(STORE, "acquire", acquire_after_another_caller)
    assert count() == 6 and interleaved == [0, 6]
    assert len(computed) == 1  # A computed; B found A's result under the lock
