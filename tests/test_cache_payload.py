"""The cache's payload format: every result comes back as the queryset returned it.

``loads(dumps(result))`` is compared with the original attribute by attribute, relation by
relation (select_related caches, prefetched querysets, ``to_attr`` lists), including which
objects are the same object, and used like a fresh result: relations without queries,
``save()``, deferred fields.
"""

from __future__ import annotations

import datetime
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import django
import pytest
from django.apps import apps
from django.db import connection, models
from django.db.models import Avg, Count, F, Max, Model, Prefetch, QuerySet

from django_dbperf.cache import payload
from django_dbperf.cache.payload import dumps, loads
from tests.helpers import make_library
from tests.testapp.models import Author, AuthorProfile, Book, Note, Publisher, Review, Tag

pytestmark = pytest.mark.django_db


@pytest.fixture
def library() -> list[Book]:
    books = make_library(authors=3, books_per_author=2)
    # The cases the made library lacks: a null foreign key, a missing reverse one-to-one, dates.
    loner = Author.objects.create(name="No profile", email="loner@example.com")
    Book.objects.create(title="Self-published", author=loner, publisher=None, pages=7)
    Book.objects.filter(pk=books[0].pk).update(published=datetime.date(2020, 2, 29))
    Note.objects.create(target=books[0], text="first")
    return books


def kind(blob: bytes) -> str:
    """The form a blob took: "L" lean, "P" a whole pickle."""
    return chr(blob[len(payload._PREFIX)])


def round_trip(result: Any) -> Any:
    blob = dumps(result)
    assert isinstance(blob, bytes)
    return loads(blob)


def assert_same(original: Any, loaded: Any, pairs: dict[int, Any] | None = None) -> None:
    """``loaded`` looks like ``original`` in every way a user sees, down every relation; an
    object met twice in the original is one object in ``loaded`` too (``pairs``)."""
    pairs = {} if pairs is None else pairs
    if id(original) in pairs:
        assert pairs[id(original)] is loaded
        return
    assert type(loaded) is type(original)
    if isinstance(original, Model):
        pairs[id(original)] = loaded
        assert list(vars(loaded)) == list(vars(original))
        assert loaded.get_deferred_fields() == original.get_deferred_fields()
        for name, value in vars(original).items():
            if name == "_state":
                _assert_same_state(value, loaded._state, pairs)
            else:
                assert_same(value, vars(loaded)[name], pairs)
    elif isinstance(original, QuerySet):
        pairs[id(original)] = loaded
        assert loaded._prefetch_done == original._prefetch_done
        assert_same(original._result_cache, loaded._result_cache, pairs)
        assert_same(original._hints, loaded._hints, pairs)
        assert_same(original._known_related_objects, loaded._known_related_objects, pairs)
        assert loaded.db == original.db
        assert str(loaded.query) == str(original.query)  # the query a chained call builds on
    elif isinstance(original, list | tuple):
        assert len(loaded) == len(original)
        for item, loaded_item in zip(original, loaded, strict=True):
            assert_same(item, loaded_item, pairs)
    elif isinstance(original, dict):
        assert list(loaded) == list(original)
        for key, value in original.items():
            assert_same(value, loaded[key], pairs)
    else:
        assert loaded == original


def _assert_same_state(original: Any, loaded: Any, pairs: dict[int, Any]) -> None:
    assert type(loaded) is type(original)
    assert list(vars(loaded)) == list(vars(original))
    assert loaded.adding is False
    for name, value in vars(original).items():
        if name == "fields_cache":  # the select_related tree, one-to-one back references
            assert_same(value, loaded.fields_cache, pairs)
        elif name == "peers":  # Django 6.1: weak references to the instances fetched together
            assert_same([ref() for ref in value], [ref() for ref in loaded.peers], pairs)
        else:  # db, adding, fetch_mode
            assert vars(loaded)[name] == value


# --- model instances --------------------------------------------------------------------------


def test_plain_list(library: list[Book]) -> None:
    books = list(Book.objects.order_by("pk"))
    blob = dumps(books)
    assert kind(blob) == "L"
    assert len(blob) < len(pickle.dumps(books, protocol=pickle.HIGHEST_PROTOCOL))
    loaded = loads(blob)
    assert_same(books, loaded)
    assert loaded == list(Book.objects.order_by("pk"))
    assert loaded[0].published == datetime.date(2020, 2, 29)


def test_select_related_two_levels_with_a_null_foreign_key(
    library: list[Book], django_assert_num_queries: Any
) -> None:
    reviews = list(Review.objects.select_related("book__author", "book__publisher").order_by("pk"))
    Review.objects.create(book=Book.objects.get(title="Self-published"), rating=2)
    reviews += Review.objects.select_related("book__author", "book__publisher").filter(
        book__publisher=None
    )
    loaded = round_trip(reviews)
    assert_same(reviews, loaded)
    with django_assert_num_queries(0):
        described = [(r.book.title, r.book.author.name, r.book.publisher) for r in loaded]
    assert described[-1] == ("Self-published", "No profile", None)
    assert described[0][2] == Publisher.objects.get()


def test_reverse_one_to_one(library: list[Book], django_assert_num_queries: Any) -> None:
    authors = list(Author.objects.select_related("profile").order_by("pk"))
    loaded = round_trip(authors)
    assert_same(authors, loaded)
    with django_assert_num_queries(0):
        bios = [getattr(author.profile, "bio", None) for author in loaded[:3]]
        assert loaded[0].profile.author is loaded[0]  # Django's back reference, kept
        with pytest.raises(AuthorProfile.DoesNotExist):
            loaded[-1].profile  # noqa: B018 (the cached "no profile")
    assert bios == ["Bio 0", "Bio 1", "Bio 2"]


def test_prefetched_reverse_foreign_key_and_many_to_many(
    library: list[Book], django_assert_num_queries: Any
) -> None:
    authors = list(Author.objects.prefetch_related("books__tags").order_by("pk"))
    loaded = round_trip(authors)
    assert_same(authors, loaded)
    with django_assert_num_queries(0):
        shelves = {
            author.name: sorted((book.title, sorted(tag.name for tag in book.tags.all()))
                                for book in author.books.all())
            for author in loaded
        }  # fmt: skip
        # Prefetching a reverse foreign key sets each book's author: the same loaded object.
        assert all(book.author is author for author in loaded for book in author.books.all())
    expected = {
        author.name: sorted((book.title, sorted(tag.name for tag in book.tags.all()))
                            for book in author.books.all())
        for author in Author.objects.order_by("pk")
    }  # fmt: skip
    assert shelves == expected


def test_prefetched_querysets_still_chain(library: list[Book]) -> None:
    loaded = round_trip(list(Author.objects.prefetch_related("books").order_by("pk")))
    first = loaded[0]
    assert list(first.books.filter(pages=101)) == list(Book.objects.filter(author=first, pages=101))
    assert first.books.count() == 2


def test_prefetch_objects_with_to_attr_and_queryset(
    library: list[Book], django_assert_num_queries: Any
) -> None:
    books = list(
        Book.objects.prefetch_related(
            Prefetch("reviews", queryset=Review.objects.filter(rating__gte=3), to_attr="good"),
            Prefetch("tags", queryset=Tag.objects.order_by("-name")),
            "notes",
        ).order_by("pk")
    )
    loaded = round_trip(books)
    assert_same(books, loaded)
    with django_assert_num_queries(0):
        good = [[review.rating for review in book.good] for book in loaded]
        tags = [[tag.name for tag in book.tags.all()] for book in loaded]
        notes = [[note.text for note in book.notes.all()] for book in loaded]
    assert good == [[r.rating for r in b.reviews.filter(rating__gte=3)] for b in books]
    assert tags == [[t.name for t in b.tags.order_by("-name")] for b in books]
    assert notes[0] == ["first"]


def test_prefetched_forward_foreign_key_shares_instances(library: list[Book]) -> None:
    books = list(Book.objects.prefetch_related("author", "publisher").order_by("pk"))
    assert books[0].author is books[1].author
    loaded = round_trip(books)
    assert_same(books, loaded)
    assert loaded[0].author is loaded[1].author


def test_generic_foreign_key(library: list[Book], django_assert_num_queries: Any) -> None:
    notes = list(Note.objects.prefetch_related("target"))
    loaded = round_trip(notes)
    assert_same(notes, loaded)
    with django_assert_num_queries(0):
        assert loaded[0].target.title == library[0].title


def test_only_and_defer(library: list[Book], django_assert_num_queries: Any) -> None:
    titles = list(Book.objects.only("title").order_by("pk"))
    assert_same(titles, round_trip(titles))
    books = list(Book.objects.defer("summary", "pages").select_related("author").order_by("pk"))
    loaded = round_trip(books)
    assert_same(books, loaded)
    with django_assert_num_queries(1):  # a deferred field loads on access, as on the original
        assert loaded[0].pages == 100
    assert loaded[0].get_deferred_fields() == {"summary"}


def test_annotations_and_extra(library: list[Book]) -> None:
    authors = list(
        Author.objects.annotate(book_count=Count("books"), longest=Max("books__pages"))
        .extra(select={"shout": "UPPER(name)"})
        .order_by("pk")
    )
    loaded = round_trip(authors)
    assert_same(authors, loaded)
    assert (loaded[0].book_count, loaded[0].longest, loaded[0].shout) == (2, 101, "AUTHOR 0")


def test_mixed_classes_and_repeats(library: list[Book]) -> None:
    book = Book.objects.select_related("author").order_by("pk")[0]
    mixed: list[Model] = [book, Tag.objects.first(), book.author, book, Author.objects.last()]
    loaded = round_trip(mixed)
    assert_same(mixed, loaded)
    assert loaded[0] is loaded[3]
    assert loaded[0].author is loaded[2]


def test_other_attributes_round_trip_without_falling_back(library: list[Book]) -> None:
    books = list(Book.objects.order_by("pk"))
    books[0].marker = {"label": "json-like", "data": {"a": [1, 2]}}
    books[0].neighbour = books[1]  # an instance of the result held by a plain attribute
    books[1].shelf = [books[2], books[3]]
    books[2]._state.db = "other"
    books[3]._state.note = "an attribute Django does not set"
    books[4]._state.note = "another value of it"
    blob = dumps(books)
    assert kind(blob) == "L"
    loaded = loads(blob)
    assert_same(books, loaded)
    assert loaded[0].neighbour is loaded[1]
    assert loaded[1].shelf[0] is loaded[2]


def test_a_project_class_on_an_instance_is_refused_when_stored(library: list[Book]) -> None:
    # The unpickler rebuilds models and value types only, so dumps() refuses what it would
    # refuse to load: the result is served uncached instead of stored and rejected each read.
    books = list(Book.objects.order_by("pk"))
    books[0].marker = Marker("json-like", {"a": [1, 2]})
    with pytest.raises(pickle.PicklingError):
        dumps(books)


def test_unusual_values_fall_back_to_a_whole_pickle(library: list[Book]) -> None:
    books = list(Book.objects.order_by("pk"))
    books[0].raw = memoryview(b"bytes")  # Model.__getstate__ knows these; the lean form does not
    blob = dumps(books)
    assert kind(blob) == "P"
    loaded = loads(blob)
    assert bytes(loaded[0].raw) == b"bytes"
    assert loaded == books


def test_tool_state_on_prefetched_querysets_is_left_out(library: list[Book]) -> None:
    authors = list(Author.objects.prefetch_related("books").order_by("pk"))
    prefetched = authors[0]._prefetched_objects_cache["books"]
    prefetched.tool_hook = lambda: None  # as nplusone does: pickle would refuse it
    loaded = round_trip(authors)
    assert not hasattr(loaded[0]._prefetched_objects_cache["books"], "tool_hook")
    assert list(loaded[0].books.all()) == list(prefetched)


def test_loaded_instances_save(library: list[Book]) -> None:
    book = round_trip(list(Book.objects.select_related("author").order_by("pk")))[0]
    book.title = "Renamed"
    book.author.name = "Renamed author"
    book.save()
    book.author.save()
    fresh = Book.objects.select_related("author").get(pk=book.pk)
    assert (fresh.title, fresh.author.name) == ("Renamed", "Renamed author")

    partial = round_trip(list(Book.objects.only("title").order_by("pk")))[1]
    partial.title = "Only the title"
    partial.save()  # saves the loaded fields only, as for a fresh only() instance
    fresh = Book.objects.get(pk=partial.pk)
    assert (fresh.title, fresh.summary, fresh.pages) == ("Only the title", "...", 101)


@pytest.mark.skipif(django.VERSION < (6, 1), reason="fetch modes are new in Django 6.1")
def test_fetch_peers_still_batches_after_loading(
    library: list[Book], django_assert_num_queries: Any
) -> None:
    books = list(Book.peers.order_by("pk"))
    loaded = round_trip(books)
    assert_same(books, loaded)
    with django_assert_num_queries(1):  # one query for every book's author, as before caching
        names = [book.author.name for book in loaded]
    assert names == [book.author.name for book in books]


# --- proxy and multi-table inheritance: models defined for these tests only --------------------


@pytest.fixture
def inherited_models(transactional_db: None) -> Iterator[dict[str, type[Book]]]:
    """Proxies of Book and a multi-table child, registered (and removed) around one test."""

    class BookProxy(Book):
        class Meta:
            proxy = True
            app_label = "testapp"

    class DiscreetBook(Book):
        """Pickles without its ``secret``: a class's own pickling is kept."""

        class Meta:
            proxy = True
            app_label = "testapp"

        def __getstate__(self) -> dict[str, Any]:
            state = super().__getstate__()
            state.pop("secret", None)
            return state

    class Novel(Book):
        genre = models.CharField(max_length=20)

        class Meta:
            app_label = "testapp"

    with connection.schema_editor() as editor:
        editor.create_model(Novel)
    try:
        yield {"proxy": BookProxy, "discreet": DiscreetBook, "child": Novel}
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(Novel)
        for name in ("bookproxy", "discreetbook", "novel"):
            del apps.all_models["testapp"][name]
        del Book.novel  # the parent link's reverse accessor
        apps.clear_cache()


def test_proxy_and_multi_table_children(inherited_models: dict[str, type[Book]]) -> None:
    proxy, child = inherited_models["proxy"], inherited_models["child"]
    author = Author.objects.create(name="Writer")
    plain = Book.objects.create(title="Plain", author=author)
    child.objects.create(title="Novel", author=author, genre="crime")
    result = [*proxy.objects.order_by("pk"), *child.objects.select_related("author")]
    blob = dumps(result)
    assert kind(blob) == "L"
    loaded = loads(blob)
    assert_same(result, loaded)
    assert [type(obj) for obj in loaded] == [proxy, proxy, child]
    assert loaded[0] == plain and loaded[2].genre == "crime"
    loaded[2].genre = "noir"
    loaded[2].save()
    assert child.objects.get().genre == "noir"


def test_classes_with_their_own_pickling_keep_it(inherited_models: dict[str, type[Book]]) -> None:
    Book.objects.create(title="Diary", author=Author.objects.create(name="Writer"))
    books = list(inherited_models["discreet"].objects.all())
    books[0].secret = "not for the cache"
    blob = dumps(books)
    assert kind(blob) == "P"
    loaded = loads(blob)
    assert loaded == books and not hasattr(loaded[0], "secret")


# --- results that are not instances ----------------------------------------------------------


def test_values_counts_and_aggregates(library: list[Book]) -> None:
    queryset = Book.objects.order_by("pk")
    results: list[Any] = [
        list(queryset.values()),
        list(queryset.values("title", "published", doubled=F("pages") * 2)),
        list(queryset.values_list("title", "published")),
        list(queryset.values_list("pk", flat=True)),
        list(queryset.values_list("title", "pages", named=True)),
        queryset.count(),
        queryset.exists(),
        queryset.aggregate(Avg("pages"), Max("published")),
        [],
    ]
    for result in results:
        loaded = round_trip(result)
        assert loaded == result
        assert type(loaded) is type(result)
        if isinstance(result, list):
            assert list(map(type, loaded)) == list(map(type, result))
    assert type(round_trip(results[4])[0]).__name__ == "Row"


# --- refusing what is not ours, or no longer fits ----------------------------------------------


@pytest.mark.parametrize(
    "make_blob",
    [
        lambda blob: b"",
        lambda blob: b"garbage",
        lambda blob: pickle.dumps([1, 2, 3]),  # a pickle, but not this format
        lambda blob: bytes([blob[0] + 1]) + blob[1:],  # another format version
        lambda blob: blob.replace(django.__version__.encode(), b"1.0", 1),  # another Django
        lambda blob: payload._PREFIX + b"Z" + blob[len(payload._PREFIX) + 1 :],  # unknown kind
        lambda blob: blob[:-20],  # truncated
    ],
    ids=["empty", "garbage", "pickle", "version", "django", "kind", "truncated"],
)
def test_foreign_or_damaged_blobs_raise(
    library: list[Book], make_blob: Callable[[bytes], bytes]
) -> None:
    blob = dumps(list(Book.objects.select_related("author")))
    loads(blob)  # the undamaged one loads
    with pytest.raises(Exception):  # noqa: B017 (the store turns any exception into a miss)
        loads(make_blob(blob))


def test_blob_of_other_columns_raises(library: list[Book]) -> None:
    blob = dumps(list(Book.objects.all()))
    assert b"publisher_id" in blob
    with pytest.raises(ValueError, match=r"testapp\.Book.*columns"):
        loads(blob.replace(b"publisher_id", b"publisher_xx"))


def test_model_changed_since_dump_raises(
    library: list[Book], monkeypatch: pytest.MonkeyPatch
) -> None:
    blob = dumps(list(Book.objects.all()))
    # As after a migration that dropped a column: the model's fields are not the blob's.
    monkeypatch.setattr(Book._meta, "concrete_fields", Book._meta.concrete_fields[:-1])
    with pytest.raises(ValueError, match="stored before a migration"):
        loads(blob)
    monkeypatch.undo()
    assert loads(blob) == list(Book.objects.all())


class Marker:
    """A value of a class of the project's own (importable, so pickle can find it)."""

    def __init__(self, label: str, data: object) -> None:
        self.label = label
        self.data = data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Marker) and (other.label, other.data) == (self.label, self.data)

    __hash__ = None  # type: ignore[assignment]
