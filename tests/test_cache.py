"""Cached querysets: hits, and invalidation on every write path (never a stale read).

On the server pass these run against real Valkey/Redis and PostgreSQL; on the SQLite pass the
same logic runs against Django's local-memory cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Count, Max, Prefetch, Q
from django.test import override_settings

from django_dbperf import cache as dbperf_cache
from django_dbperf.cache.namespace import qualified
from django_dbperf.cache.narrow import RowWrite
from tests.helpers import assert_served_from_the_cache, make_library, queries, run_in_threads
from tests.testapp.models import Author, Book, Publisher, Review, Tag

# Transactional: inside a test-case transaction every table the setup wrote would bypass.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("cache_alias")]


@pytest.fixture
def library() -> list[Book]:
    return make_library(authors=3, books_per_author=2)


def titles() -> list[str]:
    return [book.title for book in Book.cache.plain().order_by("pk").cached()]


# --- hits --------------------------------------------------------------------------------


def test_second_evaluation_is_served_from_the_cache(library: list[Book]) -> None:
    first, cold = queries(titles)
    second, warm = queries(titles)
    assert cold == 1 and warm == 0
    assert first == second == [book.title for book in Book.objects.order_by("pk")]


def test_cached_instances_equal_fresh_ones(library: list[Book]) -> None:
    list(Book.cache.order_by("pk").cached())
    cached = list(Book.cache.order_by("pk").cached())
    fresh = list(Book.objects.order_by("pk"))
    assert cached == fresh
    assert [(b.title, b.pages, b.author_id, b._state.adding, b._state.db) for b in cached] == [
        (b.title, b.pages, b.author_id, False, "default") for b in fresh
    ]


@pytest.mark.parametrize(
    "evaluate",
    [
        lambda qs: len(qs),
        lambda qs: qs.get(title="Book 1.1").pages,
        lambda qs: qs.first().title,
        lambda qs: qs.count(),
        lambda qs: qs.exists(),
        lambda qs: qs.aggregate(most=Max("pages"), n=Count("id")),
        lambda qs: list(qs.values("title", "author__name")),
        lambda qs: list(qs.values_list("title", flat=True)),
        lambda qs: [b.title for b in qs[1:3]],
    ],
    ids=["len", "get", "first", "count", "exists", "aggregate", "values", "values_list", "slice"],
)
def test_every_evaluation_is_cached(library: list[Book], evaluate: Callable[[Any], Any]) -> None:
    assert_served_from_the_cache(evaluate)


def test_select_related_and_prefetch_results_come_back_attached(library: list[Book]) -> None:
    def load() -> list[tuple[str, str, list[str], list[int]]]:
        qs = Book.cache.including("author", "tags", "reviews").order_by("pk").cached()
        return [(b.title, b.author.name, sorted(t.name for t in b.tags.all()),
                 [r.rating for r in b.reviews.all()]) for b in qs]  # fmt: skip

    cold, cold_queries = queries(load)
    warm, warm_queries = queries(load)
    assert cold_queries == 3 and warm_queries == 0
    assert warm == cold


def test_prefetch_object_querysets_are_part_of_the_key(library: list[Book]) -> None:
    def good_reviews(minimum: int) -> list[list[int]]:
        prefetch = Prefetch("reviews", Review.objects.filter(rating__gte=minimum), "good")
        qs = Book.cache.plain().prefetch_related(prefetch).order_by("pk").cached()
        return [[r.rating for r in b.good] for b in qs]

    assert good_reviews(1) != good_reviews(5)


def test_different_parameters_are_different_entries(library: list[Book]) -> None:
    first = [b.title for b in Book.cache.filter(author__name="Author 0").cached()]
    second = [b.title for b in Book.cache.filter(author__name="Author 1").cached()]
    assert first == ["Book 0.0", "Book 0.1"] and second == ["Book 1.0", "Book 1.1"]


def test_uncached_querysets_are_untouched(library: list[Book]) -> None:
    _, first = queries(lambda: list(Book.cache.all()))
    _, second = queries(lambda: list(Book.cache.all()))
    assert first == second == 1


def test_cache_all_manager_caches_every_read(library: list[Book]) -> None:
    from django_dbperf.cache import CachingManager

    manager = CachingManager(cache_all=True)
    manager.model = Tag
    _, cold = queries(lambda: list(manager.all()))
    _, warm = queries(lambda: list(manager.all()))
    assert (cold, warm) == (1, 0)


def test_disabled_flag_turns_caching_off_at_once(library: list[Book], cache_alias: str) -> None:
    titles()
    with override_settings(DBPERF={"CACHE": {"ALIAS": cache_alias, "ENABLED": False}}):
        _, count = queries(titles)
    assert count == 1


def test_without_cache_settings_cached_is_a_clear_error() -> None:
    with (
        override_settings(DBPERF={}),
        pytest.raises(ImproperlyConfigured, match=r'DBPERF\["CACHE"\]'),
    ):
        Book.cache.cached()


@pytest.mark.parametrize(("kwargs", "message"), [({"ttl": 0}, "ttl"), ({"tags": [""]}, "tags")])
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Book.cache.cached(**kwargs)


# --- invalidation on every write path -----------------------------------------------------


def book_titles() -> list[tuple[str, int]]:
    return [(b.title, b.pages) for b in Book.cache.plain().order_by("pk").cached()]


def fresh_book_titles() -> list[tuple[str, int]]:
    return [(b.title, b.pages) for b in Book.objects.order_by("pk")]


def first_book() -> Book:
    return Book.objects.order_by("pk").first()  # type: ignore[return-value]


def raw_update() -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE testapp_book SET pages = pages + 1")


WRITES: dict[str, Callable[[], Any]] = {
    "save": lambda: Book.objects.filter(pk=first_book().pk).first().save(),
    "save changed": lambda: setattr(b := first_book(), "title", "Renamed") or b.save(),
    "delete": lambda: first_book().delete(),
    "queryset update": lambda: Book.objects.update(pages=1),
    "queryset delete": lambda: Book.objects.filter(pages=100).delete(),
    "bulk_create": lambda: Book.objects.bulk_create(
        [Book(title="New", author=Author.objects.first())]
    ),
    "bulk_update": lambda: Book.objects.bulk_update(
        [setattr(b, "pages", 7) or b for b in Book.objects.all()], ["pages"]
    ),
    "update_or_create": lambda: Book.objects.update_or_create(
        title="Book 0.0", defaults={"pages": 999}
    ),
    "get_or_create": lambda: Book.objects.get_or_create(
        title="Brand new", author=Author.objects.first()
    ),
    "raw SQL": raw_update,
    "cascade": lambda: Author.objects.filter(name="Author 0").delete(),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_writes_invalidate(library: list[Book], write: Callable[[], Any]) -> None:
    assert book_titles() == fresh_book_titles()  # cached now
    write()
    assert book_titles() == fresh_book_titles()


def authors_with_books() -> list[tuple[str, list[str]]]:
    qs = Author.cache.prefetch_related("books").order_by("pk").cached()
    return [(a.name, sorted(b.title for b in a.books.all())) for a in qs]


def fresh_authors_with_books() -> list[tuple[str, list[str]]]:
    return [(a.name, sorted(b.title for b in a.books.all())) for a in Author.objects.order_by("pk")]


def test_reverse_fk_add_and_set_invalidate_the_prefetch(library: list[Book]) -> None:
    authors_with_books()
    first, last = Author.objects.order_by("pk").first(), Author.objects.order_by("pk").last()
    assert first and last
    last.books.add(first.books.order_by("pk").first())  # type: ignore[arg-type]
    assert authors_with_books() == fresh_authors_with_books()
    first.books.set(list(last.books.all()))
    assert authors_with_books() == fresh_authors_with_books()


def book_tags() -> list[list[str]]:
    qs = Book.cache.plain().prefetch_related("tags").order_by("pk").cached()
    return [sorted(t.name for t in b.tags.all()) for b in qs]


def tag_books() -> list[list[str]]:
    qs = Tag.cache.prefetch_related("books").order_by("pk").cached()
    return [sorted(b.title for b in t.books.all()) for t in qs]


def fresh() -> tuple[list[list[str]], list[list[str]]]:
    return (
        [sorted(t.name for t in b.tags.all()) for b in Book.objects.order_by("pk")],
        [sorted(b.title for b in t.books.all()) for t in Tag.objects.order_by("pk")],
    )


M2M_WRITES: dict[str, Callable[[Book, Tag], Any]] = {
    "add": lambda book, tag: book.tags.add(tag),
    "remove": lambda book, tag: book.tags.remove(*book.tags.all()),
    "clear": lambda book, tag: book.tags.clear(),
    "set": lambda book, tag: book.tags.set([tag]),
    "reverse add": lambda book, tag: tag.books.add(book),
    "reverse remove": lambda book, tag: tag.books.remove(*tag.books.all()),
    "reverse clear": lambda book, tag: tag.books.clear(),
    "reverse set": lambda book, tag: tag.books.set([book]),
}


@pytest.mark.parametrize("write", M2M_WRITES.values(), ids=M2M_WRITES.keys())
def test_many_to_many_changes_from_both_sides_invalidate(
    library: list[Book], write: Callable[[Book, Tag], Any]
) -> None:
    assert (book_tags(), tag_books()) == fresh()
    write(first_book(), Tag.objects.order_by("pk").last())  # type: ignore[arg-type]
    assert (book_tags(), tag_books()) == fresh()


def test_a_joined_table_change_invalidates(library: list[Book]) -> None:
    def names() -> list[str]:
        return [b.author.name for b in Book.cache.including("author").order_by("pk").cached()]

    names()
    Author.objects.update(name="Everyone")
    assert set(names()) == {"Everyone"}


def test_a_subquery_table_change_invalidates(library: list[Book]) -> None:
    def by_prolific_publishers() -> int:
        publishers = Publisher.objects.filter(name="Acme")
        return Book.cache.plain().filter(publisher__in=publishers).cached().count()

    assert by_prolific_publishers() == 6
    Publisher.objects.update(name="Renamed")
    assert by_prolific_publishers() == 0


def test_invalidate_by_model_label_and_tags(library: list[Book]) -> None:
    def tagged() -> int:
        return Book.cache.plain().cached(tags=["catalogue"]).count()

    tagged()
    _, warm = queries(tagged)
    assert warm == 0
    dbperf_cache.invalidate_tags("catalogue")
    _, after_tag = queries(tagged)
    dbperf_cache.invalidate("testapp.Book")
    _, after_model = queries(tagged)
    dbperf_cache.invalidate_all()
    _, after_all = queries(tagged)
    assert (after_tag, after_model, after_all) == (1, 1, 1)


# --- transactions ----------------------------------------------------------------------------


def test_reads_of_tables_written_in_the_transaction_bypass_the_cache(library: list[Book]) -> None:
    def author_names() -> list[str]:
        return [a.name for a in Author.cache.order_by("pk").cached()]

    book_titles()
    author_names()
    with transaction.atomic():
        Book.objects.update(pages=5)
        inside, count = queries(book_titles)
        assert count == 1
        assert {pages for _, pages in inside} == {5}
        # Tables the transaction did not write are still served from the cache.
        _, author_queries = queries(author_names)
        assert author_queries == 0
    assert {pages for _, pages in book_titles()} == {5}


def test_rolled_back_transaction_leaves_nothing_stale(library: list[Book]) -> None:
    before = book_titles()
    with transaction.atomic():
        Book.objects.update(pages=5)
        book_titles()
        transaction.set_rollback(True)
    assert book_titles() == before == fresh_book_titles()


def test_nested_savepoint_rollback(library: list[Book]) -> None:
    book_titles()
    with transaction.atomic():
        with transaction.atomic():
            Book.objects.update(pages=5)
            transaction.set_rollback(True)
        assert book_titles() == fresh_book_titles()
        Book.objects.update(pages=6)
    assert book_titles() == fresh_book_titles()
    assert {pages for _, pages in book_titles()} == {6}


def test_commit_after_a_rolled_back_savepoint_invalidates_a_concurrent_readers_entry(
    postgres: None, library: list[Book]
) -> None:
    # The first write's commit bump was registered in the savepoint that rolled back, and the
    # later write registered none: a READ COMMITTED reader stored the pre-commit rows under
    # the versions of the transaction's last bump and was served them after the commit.
    before = book_titles()
    with transaction.atomic():
        try:
            with transaction.atomic():
                Book.objects.update(pages=5)
                raise RuntimeError("roll the savepoint back")
        except RuntimeError:
            pass
        Book.objects.update(pages=6)
        run_in_threads(lambda: book_titles())  # another connection: it sees the old pages
    after = book_titles()
    assert after == fresh_book_titles() != before
    assert {pages for _, pages in after} == {6}


# --- statistics --------------------------------------------------------------------------------


def test_stats_count_hits_misses_and_invalidations(library: list[Book]) -> None:
    before = dbperf_cache.stats().get("testapp.Book", {"hit": 0, "miss": 0})
    book_titles()
    book_titles()
    book_titles()
    Book.objects.update(pages=3)
    after = dbperf_cache.stats()
    assert after["testapp.Book"]["hit"] - before["hit"] == 2
    assert after["testapp.Book"]["miss"] - before["miss"] == 1
    assert after["testapp.Book"]["invalidation"] >= 1


def test_stats_per_tag(library: list[Book]) -> None:
    for _ in range(3):
        Book.cache.plain().cached(tags=["shelf"]).count()
    dbperf_cache.invalidate_tags("shelf")
    Book.cache.plain().cached(tags=["shelf"]).count()
    counts = dbperf_cache.stats()["tag:shelf"]
    assert (counts["hit"], counts["miss"], counts["invalidation"]) == (2, 2, 1)


def test_signals_invalidate_where_statements_are_not_seen(library: list[Book]) -> None:
    from django_dbperf.cache import invalidation

    book_titles()
    connection.execute_wrappers.remove(invalidation.write_wrapper)
    try:
        book = first_book()
        book.title = "Seen by post_save only"
        book.save()
        assert book_titles() == fresh_book_titles()
        book.tags.add(Tag.objects.first())  # type: ignore[arg-type]
        assert book_tags() == fresh()[0]
        Book.objects.filter(pk=book.pk).delete()  # post_delete
        assert book_titles() == fresh_book_titles()
    finally:
        invalidation.install(connection)


def test_save_bumps_once(library: list[Book], monkeypatch: pytest.MonkeyPatch) -> None:
    bumps = spy_bumps(monkeypatch)
    book = first_book()
    book.save()
    # One invalidation, of the saved row (outside a transaction): see narrow.py.
    parts = (("author_id", str(book.author_id)), ("publisher_id", str(book.publisher_id)))
    (table,) = qualified("default", ["testapp_book"])  # versions are kept per database
    assert bumps == [RowWrite(table, str(book.pk), parts, False)]
    bumps.clear()
    with transaction.atomic():
        book.save()
    assert bumps == [{table}, {table}]  # at once, and at commit


def test_select_for_update_always_reaches_the_database(library: list[Book]) -> None:
    # On PostgreSQL (READ COMMITTED) results may be stored inside a transaction: the second
    # read would be a hit if select_for_update() were cached.
    with transaction.atomic():
        _, cold = queries(lambda: list(Book.cache.select_for_update().cached()))
        _, warm = queries(lambda: list(Book.cache.select_for_update().cached()))
    assert cold == warm == 1


def test_empty_prefetch_queryset_is_cached(library: list[Book]) -> None:
    def nothing_prefetched() -> list[list[int]]:
        none = Prefetch("reviews", Review.objects.filter(pk__in=[]), "none")
        return [[r.pk for r in b.none] for b in Book.cache.plain().prefetch_related(none).cached()]

    assert nothing_prefetched() == [[]] * 6
    _, warm = queries(nothing_prefetched)
    assert warm == 0


def test_entries_depend_on_the_models_columns(library: list[Book]) -> None:
    from django_dbperf.cache import queryset as cached_queryset

    book_titles()
    _, warm = queries(book_titles)
    assert warm == 0
    # As if a migration had added a column: entries pickled with the old fields are not read.
    original = cached_queryset._fields_signature
    try:
        cached_queryset._fields_signature = lambda model: original(model) + ",new_column"  # type: ignore[assignment]
        _, after = queries(book_titles)
    finally:
        cached_queryset._fields_signature = original
    assert after == 1


def test_a_column_whose_type_changes_changes_the_signature() -> None:
    from django.db import models
    from django.test.utils import isolate_apps

    from django_dbperf.cache.queryset import _fields_signature

    # A migration from IntegerField to DecimalField keeps the column's name: old entries
    # would come back with integers where the model now has decimals.
    def model(name: str, price: models.Field[Any, Any]) -> type[models.Model]:
        meta = type("Meta", (), {"app_label": "testapp"})
        attrs = {"price": price, "Meta": meta, "__module__": __name__}
        return type(name, (models.Model,), attrs)

    with isolate_apps("tests.testapp"):
        signatures = {
            _fields_signature(model("Before", models.IntegerField())),
            _fields_signature(model("After", models.DecimalField(max_digits=10, decimal_places=2))),
            _fields_signature(model("Wider", models.DecimalField(max_digits=12, decimal_places=2))),
        }
    assert len(signatures) == 3


def test_uncached_undoes_cached(library: list[Book]) -> None:
    titles()
    _, count = queries(lambda: list(Book.cache.plain().order_by("pk").cached().uncached()))
    assert count == 1


def test_a_queryset_the_analysis_cannot_key_is_served_uncached(
    library: list[Book], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from django_dbperf.cache import queryset as cached_queryset

    def broken(queryset: object) -> frozenset[str]:
        raise RuntimeError("analysis bug")

    monkeypatch.setattr(cached_queryset, "prefetch_tables", broken)
    assert titles() == [book.title for book in Book.objects.order_by("pk")]
    assert "could not key a testapp.Book queryset" in caplog.text


def test_ttl_policy_per_model_and_per_call(library: list[Book], cache_alias: str) -> None:
    import time

    from django_dbperf.cache.queryset import ttl_for

    policy = {"ALIAS": cache_alias, "TTL": {"testapp.Book": 2, "*": 600}}
    with override_settings(DBPERF={"CACHE": policy}):
        assert (ttl_for(Book, None), ttl_for(Author, None), ttl_for(Book, 30)) == (2, 600, 30)
        titles()
        _, warm = queries(titles)  # read at once: well inside the 2 s
        time.sleep(2.2)  # the entry expires in the cache server itself
        _, expired = queries(titles)
    assert (warm, expired) == (0, 1)


def test_lookups_that_compile_to_the_same_sql_are_keyed_apart(library: list[Book]) -> None:
    # contains and startswith are both "LIKE %s"; only the parameter's % signs differ.
    def matching(lookup: str) -> list[str]:
        qs = Book.cache.plain().filter(**{f"title__{lookup}": "ook"}).order_by("pk").cached()
        return [book.title for book in qs]

    assert len(matching("contains")) == len(library)
    assert matching("startswith") == []
    assert len(matching("contains")) == len(library)


def test_a_hit_does_not_compile_sql(library: list[Book], monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db.models.sql.compiler import SQLCompiler

    def page() -> list[str]:
        qs = Book.cache.select_related("author").filter(author__name__startswith="Author")
        return [book.author.name for book in qs.order_by("pk").cached()]

    page()
    compiled: list[object] = []
    as_sql = SQLCompiler.as_sql
    monkeypatch.setattr(SQLCompiler, "as_sql", lambda self, *a, **k: compiled.append(1)
                        or as_sql(self, *a, **k))  # fmt: skip
    assert queries(page) == (["Author 0", "Author 0", "Author 1", "Author 1", "Author 2",
                              "Author 2"], 0)  # fmt: skip
    assert compiled == []


# --- related managers: the caller's own instance ---------------------------------------------


def test_a_related_managers_rows_never_carry_another_callers_instance(
    library: list[Book],
) -> None:
    # author.books attaches `author` to every row: an unsaved change on one request's
    # instance was stored with the rows and served to the next request.
    pk = Author.objects.order_by("pk")[0].pk
    drafting = Author.objects.get(pk=pk)
    drafting.name = "draft"
    first = list(drafting.books(manager="cache").order_by("pk").cached())
    assert first[0].author is drafting  # the caller's own instance, as Django does

    reading = Author.objects.get(pk=pk)
    books, count = queries(lambda: list(reading.books(manager="cache").order_by("pk").cached()))
    assert count == 0
    assert all(book.author is reading for book in books)
    assert {book.author.name for book in books} == {"Author 0"}


# --- keys: values, never their repr() ----------------------------------------------------------


def test_aggregate_filters_on_instances_are_keyed_by_value(library: list[Book]) -> None:
    # Q(author=a) printed str(a): two authors of one name shared the first one's count.
    first, second = Author.objects.order_by("pk")[:2]
    Author.objects.filter(pk=second.pk).update(name=first.name)
    first, second = Author.objects.get(pk=first.pk), Author.objects.get(pk=second.pk)
    assert str(first) == str(second)
    Book.objects.create(title="Extra", author=second)

    def count_for(author: Author) -> int:
        qs = Book.cache.plain().cached()
        return int(qs.aggregate(n=Count("id", filter=Q(author=author)))["n"])

    assert [count_for(first), count_for(second), count_for(first)] == [2, 3, 2]
    assert queries(lambda: count_for(second)) == (3, 0)


def test_aggregate_over_a_join_depends_on_the_joined_table(library: list[Book]) -> None:
    def reviewed() -> int:
        qs = Book.cache.plain().cached()
        return int(qs.aggregate(n=Count("id", filter=Q(reviews__rating__gte=5)))["n"])

    before = reviewed()
    Review.objects.update(rating=5)
    assert reviewed() == Book.objects.count() != before


def test_a_parameter_without_an_exact_key_is_served_uncached(
    library: list[Book], caplog: pytest.LogCaptureFixture
) -> None:
    class Title:
        """Adapted by the driver as its text; its repr() says nothing about it."""

        def __init__(self, text: str) -> None:
            self.text = text

        def __conform__(self, protocol: object) -> str:  # sqlite3's adaptation hook
            return self.text

    if connection.vendor == "postgresql":
        pytest.skip("psycopg adapts only registered types; the SQLite driver's hook is used")

    def matching(text: str) -> list[str]:
        qs = Book.cache.plain().extra(where=["title = %s"], params=[Title(text)]).cached()
        return [book.title for book in qs]

    assert matching("Book 0.0") == ["Book 0.0"]
    assert queries(lambda: matching("Book 1.1")) == (["Book 1.1"], 1)
    assert dbperf_cache.stats()["testapp.Book"]["bypass"] == 2
    assert caplog.text.count("cannot be keyed exactly") <= 1


# --- databases: versions and entries per database, not per alias ------------------------------


def namespaces(using: str = "default") -> tuple[str, str]:
    from django_dbperf.cache.namespace import database_namespace, entry_namespace

    return database_namespace(using), entry_namespace(using)


def test_another_database_behind_the_same_alias_has_other_keys(library: list[Book]) -> None:
    # A test run on test_mysite read the development database's rows from a shared Redis.
    here = namespaces()
    elsewhere = namespaces_with(NAME=f"{connection.settings_dict['NAME']}_elsewhere")
    assert elsewhere[0] != here[0] and elsewhere[1] != here[1]
    assert namespaces() == here


def namespaces_with(**changes: str) -> tuple[str, str]:
    saved = dict(connection.settings_dict)
    try:
        connection.settings_dict.update(changes)
        return namespaces()
    finally:
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def test_a_replica_shares_the_primarys_versions_not_its_entries() -> None:
    # A replica: the same database name on another host. It must see the primary's bumps.
    replica = namespaces_with(HOST="replica.internal")
    assert replica[0] == namespaces()[0]
    assert replica[1] != namespaces()[1]


def test_the_namespace_hook_keeps_tenants_apart(library: list[Book], cache_alias: str) -> None:
    tenant = {"schema": "one"}
    hook = {"ALIAS": cache_alias, "NAMESPACE": f"{__name__}.current_schema"}
    with override_settings(DBPERF={"CACHE": hook}):
        CURRENT_SCHEMA.update(tenant)
        book_titles()
        assert queries(book_titles)[1] == 0
        CURRENT_SCHEMA["schema"] = "two"
        assert queries(book_titles)[1] == 1  # another tenant's entry is not this one's
        assert queries(book_titles)[1] == 0


CURRENT_SCHEMA = {"schema": "one"}


def current_schema(connection: object) -> str:
    return CURRENT_SCHEMA["schema"]


# --- writes nobody caches: no round trip -------------------------------------------------------


def spy_bumps(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every bump the writes below send (passed on to the real store)."""
    from django_dbperf.cache.store import STORE

    bumps: list[object] = []
    bump, bump_row = STORE.bump, STORE.bump_row
    monkeypatch.setattr(STORE, "bump", lambda tables=(), tags=(): bumps.append(set(tables))
                        or bump(tables, tags))  # fmt: skip
    monkeypatch.setattr(STORE, "bump_row", lambda row: bumps.append(row) or bump_row(row))
    return bumps


def save_a_session() -> None:
    from datetime import timedelta

    from django.contrib.sessions.models import Session
    from django.utils import timezone

    Session.objects.create(
        session_key="k" * 32, session_data="{}", expire_date=timezone.now() + timedelta(1)
    )
    Session.objects.filter(session_key="k" * 32).update(session_data="{1}")


def test_writes_to_models_nobody_caches_skip_the_cache_server(
    library: list[Book], monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db.migrations.recorder import MigrationRecorder

    bumps = spy_bumps(monkeypatch)
    save_a_session()  # sessions.Session is in NOT_CACHED by default
    MigrationRecorder(connection).record_applied("testapp", "9999_pretend")
    assert bumps == []
    first_book().save()
    assert len(bumps) == 1


def test_cached_reads_of_models_nobody_caches_are_served_uncached(
    library: list[Book], cache_alias: str
) -> None:
    from django.contrib.sessions.models import Session

    from django_dbperf.cache import CachingQuerySet

    save_a_session()

    def sessions() -> list[str]:
        return [s.session_data for s in CachingQuerySet(model=Session).cached()]

    assert queries(sessions) == (["{1}"], 1)
    assert queries(sessions) == (["{1}"], 1)  # never stored: its writes are not tracked
    assert dbperf_cache.stats()["sessions.Session"]["bypass"] == 2


def test_an_empty_not_cached_list_tracks_sessions_again(
    library: list[Book], cache_alias: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with override_settings(DBPERF={"CACHE": {"ALIAS": cache_alias, "NOT_CACHED": []}}):
        bumps = spy_bumps(monkeypatch)
        save_a_session()
    assert len(bumps) == 2


def test_bypass_reasons_read_back_from_the_server_are_text_only(cache_alias: str) -> None:
    from django.core.cache import caches

    from django_dbperf.cache.store import BYPASS_REASONS, REASON_LIMIT, STORE

    STORE.bypass("testapp.Book", "x" * (REASON_LIMIT + 50))
    key = STORE.key("meta", BYPASS_REASONS)
    redis = STORE.redis()
    if redis is not None:  # planted by something else: bytes that are not UTF-8
        client, raw = redis
        raw.hset(client.make_key(key), b"\xff\xfe planted", b"\x80")
    else:
        caches[cache_alias].set(key, {**caches[cache_alias].get(key), 3: object()}, None)
    reasons = STORE.bypass_reasons()
    assert reasons["x" * REASON_LIMIT] == "testapp.Book"
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in reasons.items())
