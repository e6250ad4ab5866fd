"""N+1 detection: each classic shape is found and named with its fix; eager-loaded code is clean."""

from __future__ import annotations

import json

import django
import pytest
from django.db.models import Count, Prefetch
from django.template import Context, Template

from django_dbperf import capture_queries
from django_dbperf.analysis import N_PLUS_ONE, Finding
from tests import helpers
from tests.helpers import make_library
from tests.testapp.models import Author, Book, Review, Tag

pytestmark = pytest.mark.django_db


@pytest.fixture
def library() -> list[Book]:
    return make_library(authors=5, books_per_author=2)


def only_finding(captured: capture_queries) -> Finding:
    found = captured.n_plus_one
    assert len(found) == 1, "\n".join(str(finding) for finding in found)
    return found[0]


def line_of(marker: str) -> str:
    return helpers.line_of(__file__, marker)


# --- N+1 shapes -------------------------------------------------------------------------


def test_forward_foreign_key(library: list[Book]) -> None:
    with capture_queries() as captured:
        names = [book.author.name for book in Book.objects.all()]  # forward-fk
    assert len(names) == 10
    finding = only_finding(captured)
    assert finding.kind == N_PLUS_ONE
    assert finding.relation == "testapp.Book.author"
    assert finding.count == 10
    assert str(finding.callsite) == line_of("forward-fk")
    assert 'add .select_related("author") to the Book queryset' in finding.suggestion
    # Where the rows came from: the same line evaluated the Book queryset.
    assert f"evaluated at {line_of('forward-fk')}" in finding.suggestion


def test_reverse_foreign_key(library: list[Book]) -> None:
    with capture_queries() as captured:
        counts = [len(author.books.all()) for author in Author.objects.all()]
    assert counts == [2] * 5
    finding = only_finding(captured)
    assert finding.relation == "testapp.Author.books"
    assert finding.count == 5
    assert 'add .prefetch_related("books") to the Author queryset' in finding.suggestion


def test_many_to_many_forward(library: list[Book]) -> None:
    with capture_queries() as captured:
        tags = [[tag.name for tag in book.tags.all()] for book in Book.objects.all()]
    assert len(tags) == 10
    finding = only_finding(captured)
    assert finding.relation == "testapp.Book.tags"
    assert 'add .prefetch_related("tags") to the Book queryset' in finding.suggestion


def test_many_to_many_reverse(library: list[Book]) -> None:
    with capture_queries() as captured:
        titles = {tag.name: [b.title for b in tag.books.all()] for tag in Tag.objects.all()}
    assert len(titles) == 3
    finding = only_finding(captured)
    assert finding.relation == "testapp.Tag.books"
    assert 'add .prefetch_related("books") to the Tag queryset' in finding.suggestion


def test_reverse_one_to_one(library: list[Book]) -> None:
    with capture_queries() as captured:
        bios = [author.profile.bio for author in Author.objects.all()]
    assert len(bios) == 5
    finding = only_finding(captured)
    assert finding.relation == "testapp.Author.profile"
    assert 'add .select_related("profile") to the Author queryset' in finding.suggestion


def test_deferred_field(library: list[Book]) -> None:
    with capture_queries() as captured:
        summaries = [book.summary for book in Book.objects.only("title")]
    assert summaries == ["..."] * 10
    finding = only_finding(captured)
    assert finding.relation == "testapp.Book.summary"
    assert 'stop deferring "summary"' in finding.suggestion


def test_nested_relation_names_the_whole_path(library: list[Book]) -> None:
    with capture_queries() as captured:
        names = [review.book.author.name for review in Review.objects.all()]  # nested
    assert len(names) == 10
    relations = {finding.relation: finding for finding in captured.n_plus_one}
    assert set(relations) == {"testapp.Review.book", "testapp.Book.author"}
    assert 'add .select_related("book__author") to the Review queryset' in (
        relations["testapp.Book.author"].suggestion
    )
    assert 'add .select_related("book") to the Review queryset' in (
        relations["testapp.Review.book"].suggestion
    )


def test_get_in_a_loop(library: list[Book]) -> None:
    ids = [book.pk for book in library]
    with capture_queries() as captured:
        titles = [Book.objects.get(pk=pk).title for pk in ids]  # get-loop
    assert len(titles) == 10
    finding = only_finding(captured)
    # A primary key is not a relation: nothing to eager-load, the model is named instead.
    assert finding.relation is None and finding.model == "testapp.Book"
    assert finding.title.startswith("N+1 query on testapp.Book: 10 queries")
    assert finding.count == 10
    assert str(finding.callsite) == line_of("get-loop")
    assert "Book.objects.in_bulk(ids)" in finding.suggestion


def test_filter_first_in_a_loop(library: list[Book]) -> None:
    authors = list(Author.objects.all())
    with capture_queries() as captured:
        latest = [Book.objects.filter(author=a).order_by("-pages").first() for a in authors]
    assert all(latest)
    finding = only_finding(captured)
    assert finding.relation == "testapp.Author.books"
    assert "Subquery(" in finding.suggestion and 'Prefetch("books"' in finding.suggestion


def test_count_in_a_loop_suggests_an_annotation(library: list[Book]) -> None:
    with capture_queries() as captured:
        counts = [author.books.count() for author in Author.objects.all()]
    assert counts == [2] * 5
    finding = only_finding(captured)
    assert finding.relation == "testapp.Author.books"
    assert '.annotate(books_count=Count("books"))' in finding.suggestion


def test_inside_a_template_names_the_template_line(library: list[Book]) -> None:
    template = Template(
        "{% for book in books %}\n{{ book.title }} by {{ book.author.name }}\n{% endfor %}"
    )
    with capture_queries() as captured:
        html = template.render(Context({"books": Book.objects.all()}))  # template-render
    assert "Book 0.0 by Author 0" in html
    finding = only_finding(captured)
    assert finding.relation == "testapp.Book.author"
    assert str(finding.callsite) == line_of("template-render")
    assert finding.template is not None and finding.template.line == 2


def serialize_book(book: Book) -> dict[str, object]:
    return {"title": book.title, "tags": [tag.name for tag in book.tags.all()]}  # serializer


def test_inside_a_json_serializer_names_the_serializer_line(library: list[Book]) -> None:
    with capture_queries() as captured:
        payload = json.dumps([serialize_book(book) for book in Book.objects.all()])
    assert "tag0" in payload
    finding = only_finding(captured)
    assert finding.relation == "testapp.Book.tags"
    assert str(finding.callsite) == line_of("serializer")


def test_repeated_inserts_suggest_bulk_create() -> None:
    author = Author.objects.create(name="A")
    with capture_queries() as captured:
        for number in range(5):
            Book.objects.create(title=f"t{number}", author=author)
    finding = only_finding(captured)
    assert finding.relation is None
    assert "bulk_create()" in finding.suggestion


def test_threshold_is_configurable(library: list[Book], settings: object) -> None:
    settings.DBPERF = {"NPLUSONE_THRESHOLD": 11}  # type: ignore[attr-defined]
    with capture_queries() as captured:
        [book.author.name for book in Book.objects.all()]
    assert captured.n_plus_one == []
    with capture_queries(threshold=10) as captured:
        [book.author.name for book in Book.objects.all()]
    assert len(captured.n_plus_one) == 1


# --- clean shapes -------------------------------------------------------------------------


def assert_clean(captured: capture_queries) -> None:
    assert captured.findings == [], "\n".join(str(finding) for finding in captured.findings)


def test_select_related_is_clean(library: list[Book]) -> None:
    with capture_queries() as captured:
        names = [book.author.name for book in Book.objects.select_related("author")]
    assert len(names) == 10 and len(captured) == 1
    assert_clean(captured)


def test_prefetch_related_is_clean(library: list[Book]) -> None:
    with capture_queries() as captured:
        for author in Author.objects.prefetch_related("books"):
            [book.title for book in author.books.all()]
    assert len(captured) == 2
    assert_clean(captured)


def test_prefetch_object_with_queryset_is_clean(library: list[Book]) -> None:
    long_books = Prefetch("books", queryset=Book.objects.filter(pages__gt=100), to_attr="long")
    with capture_queries() as captured:
        for author in Author.objects.prefetch_related(long_books):
            [book.title for book in author.long]
    assert len(captured) == 2
    assert_clean(captured)


def test_nested_prefetch_paths_are_clean(library: list[Book]) -> None:
    with capture_queries() as captured:
        for author in Author.objects.prefetch_related("books__tags", "books__reviews"):
            for book in author.books.all():
                [tag.name for tag in book.tags.all()]
                [review.rating for review in book.reviews.all()]
    assert len(captured) == 4
    assert_clean(captured)


def test_mixed_select_and_prefetch_is_clean(library: list[Book]) -> None:
    with capture_queries() as captured:
        for review in Review.objects.select_related("book__author").prefetch_related("book__tags"):
            (review.book.author.name, [tag.name for tag in review.book.tags.all()])
    assert len(captured) == 2
    assert_clean(captured)


@pytest.mark.skipif(django.VERSION < (6, 1), reason="fetch modes are new in Django 6.1")
def test_fetch_peers_is_clean(library: list[Book]) -> None:
    from django.db.models import FETCH_PEERS

    with capture_queries() as captured:
        names = [book.author.name for book in Book.objects.fetch_mode(FETCH_PEERS)]
    assert len(names) == 10 and len(captured) == 2
    assert_clean(captured)


def test_single_get_is_clean(library: list[Book]) -> None:
    with capture_queries() as captured:
        book = Book.objects.get(pk=library[0].pk)
        loaded = (book.author.name, list(book.tags.all()))
    assert loaded[0] == "Author 0"
    assert len(captured) == 3
    assert_clean(captured)


def test_annotated_counts_are_clean(library: list[Book]) -> None:
    with capture_queries() as captured:
        counts = [a.book_count for a in Author.objects.annotate(book_count=Count("books"))]
    assert counts == [2] * 5 and len(captured) == 1
    assert_clean(captured)


def test_loop_below_the_threshold_is_clean(library: list[Book]) -> None:
    with capture_queries() as captured:
        [book.author.name for book in Book.objects.all()[:2]]
    assert captured.n_plus_one == []


def test_same_shape_from_different_lines_is_not_an_n_plus_one(library: list[Book]) -> None:
    with capture_queries() as captured:
        Book.objects.get(pk=library[0].pk)
        Book.objects.get(pk=library[1].pk)
        Book.objects.get(pk=library[2].pk)
    assert captured.n_plus_one == []


# --- the recording fetch mode (Django 6.1) --------------------------------------------------

needs_fetch_modes = pytest.mark.skipif(django.VERSION < (6, 1), reason="Django 6.1 fetch modes")


@needs_fetch_modes
def test_recording_fetch_mode_announces_each_lazy_load(library: list[Book]) -> None:
    from django.db import connection

    from django_dbperf.capture.fetch_mode import FETCH_RECORD, current_lazy_load

    announced = []

    def spy(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        announced.append(current_lazy_load())
        return execute(sql, params, many, context)

    book = Book.objects.fetch_mode(FETCH_RECORD).first()
    partial = Book.objects.only("title").fetch_mode(FETCH_RECORD).first()
    assert book is not None and partial is not None
    with connection.execute_wrapper(spy):
        loaded = (book.author.name, partial.summary)
    assert loaded == ("Author 0", "...")
    assert [(a.kind, a.model, a.name) for a in announced if a] == [
        ("forward", Book, "author"),
        ("deferred", Book, "summary"),
    ]
    assert current_lazy_load() is None


@needs_fetch_modes
def test_recording_fetch_mode_finds_the_n_plus_one(library: list[Book]) -> None:
    from django_dbperf.capture.fetch_mode import FETCH_RECORD

    with capture_queries() as captured:
        names = [book.author.name for book in Book.objects.fetch_mode(FETCH_RECORD)]
    assert len(names) == 10
    assert only_finding(captured).relation == "testapp.Book.author"


@needs_fetch_modes
def test_recording_fetch_mode_can_delegate_to_fetch_peers(library: list[Book]) -> None:
    import pickle

    from django.db.models import FETCH_PEERS

    from django_dbperf.capture.fetch_mode import RecordingFetchMode

    batched = RecordingFetchMode(FETCH_PEERS)
    with capture_queries() as captured:
        names = [book.author.name for book in Book.objects.fetch_mode(batched)]
    assert len(names) == 10 and len(captured) == 2
    assert_clean(captured)
    # Querysets (and their fetch mode) survive pickling, e.g. into a cache.
    restored = pickle.loads(pickle.dumps(Book.objects.fetch_mode(batched)))
    assert restored._fetch_mode.delegate is FETCH_PEERS
