"""EagerQuerySet / EagerManager: paths, mixed chains, Prefetch objects, profiles, counts, modes."""

from __future__ import annotations

import asyncio

import django
import pytest
from django.core.exceptions import FieldError
from django.db.models import Prefetch
from django.test import override_settings

from django_dbperf import capture_queries
from django_dbperf.managers import EagerQuerySet, plan
from tests.helpers import make_library
from tests.testapp.models import Author, Book, Note, Review, Tag

pytestmark = pytest.mark.django_db
needs_fetch_modes = pytest.mark.skipif(django.VERSION < (6, 1), reason="Django 6.1 fetch modes")


@pytest.fixture
def library() -> list[Book]:
    books = make_library(authors=4, books_per_author=3)
    for book in books[:4]:
        Note.objects.create(target=book, text=f"note on {book.title}")
    return books


def assert_no_more_queries(func: object) -> None:
    with capture_queries() as captured:
        func()  # type: ignore[operator]
    assert len(captured) == 0, [q.sql for q in captured]


# --- planning each kind of path ----------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "paths", "select", "prefetch"),
    [
        (Book, ["author"], ("author",), ()),  # forward FK
        (Author, ["profile"], ("profile",), ()),  # reverse one-to-one
        (Review, ["book__author__profile"], ("book__author__profile",), ()),  # nested single
        (Author, ["books"], (), ("books",)),  # reverse FK
        (Book, ["tags"], (), ("tags",)),  # many-to-many
        (Tag, ["books"], (), ("books",)),  # many-to-many, reverse side
        (Book, ["notes"], (), ("notes",)),  # generic relation
        (Review, ["book__tags"], ("book",), ("book__tags",)),  # mixed: select, then prefetch
        (Book, ["author", "author__profile"], ("author__profile",), ()),  # covered by a longer
        (Book, ["author", "author"], ("author",), ()),  # repeated paths collapse
    ],
)
def test_plan_chooses_per_hop(
    model: type, paths: list[str], select: tuple[str, ...], prefetch: tuple[str, ...]
) -> None:
    eager = plan(model, paths)
    assert eager.select == select
    assert eager.prefetch == prefetch


def test_hops_after_a_multi_valued_one_are_planned_on_its_model(library: list[Book]) -> None:
    eager = plan(Author, ["books__publisher", "books__tags", "profile"])
    assert eager.select == ("profile",)
    (books,) = eager.prefetch
    assert isinstance(books, Prefetch) and books.prefetch_to == "books"
    assert books.queryset.query.select_related == {"publisher": {}}
    assert books.queryset._prefetch_related_lookups == ("tags",)
    with capture_queries() as captured:
        authors = list(Author.with_profiles.including("books__publisher", "books__tags"))
    # Authors; their books joined with the publisher; the books' tags.
    assert len(captured) == 3
    assert_no_more_queries(
        lambda: [(b.publisher.name, list(b.tags.all())) for a in authors for b in a.books.all()]
    )


def test_a_prefetch_of_the_callers_own_is_kept(library: list[Book]) -> None:
    own = Prefetch("books", queryset=Book.objects.filter(pages__gt=100))
    eager = plan(Author, [own, "books__tags"])
    assert own in eager.prefetch and "books__tags" in eager.prefetch
    authors = list(Author.with_profiles.including(own, "books__tags"))
    assert all(b.pages > 100 for a in authors for b in a.books.all())


def test_unknown_path_lists_the_valid_relations() -> None:
    with pytest.raises(FieldError) as error:
        Book.eager.including("autor")
    message = str(error.value)
    assert "Cannot include 'autor': Book has no relation 'autor'." in message
    assert "Relations of Book: author, notes, publisher, reviews, tags." in message


def test_nested_unknown_hop_names_the_model_where_it_failed() -> None:
    with pytest.raises(FieldError, match="Cannot include 'author__pen_name': Author has no"):
        Book.eager.including("author__pen_name")
    with pytest.raises(FieldError, match="Cannot include 'tags__bookz': Tag has no"):
        Book.eager.including("tags__bookz")


def test_plain_field_is_not_a_relation() -> None:
    with pytest.raises(FieldError, match="'title' is a field of Book, not a relation"):
        Book.eager.including("title")


def test_bad_argument_type() -> None:
    with pytest.raises(TypeError, match="relation names or Prefetch objects, not 3"):
        Book.eager.including(3)  # type: ignore[arg-type]


# --- loading ---------------------------------------------------------------------------------


def test_forward_and_reverse_one_to_one_in_one_query(library: list[Book]) -> None:
    with capture_queries() as captured:
        books = list(Book.eager.plain().including("author__profile"))
    assert len(captured) == 1
    assert_no_more_queries(lambda: [b.author.profile.bio for b in books])


def test_reverse_fk_and_m2m_are_prefetched(library: list[Book]) -> None:
    with capture_queries() as captured:
        authors = list(Author.with_profiles.all().including("books__tags"))
    assert len(captured) == 3
    assert_no_more_queries(lambda: [[t.name for b in a.books.all() for t in b.tags.all()]
                                    for a in authors])  # fmt: skip


def test_mixed_chain_selects_then_prefetches(library: list[Book]) -> None:
    with capture_queries() as captured:
        reviews = list(Review.eager.plain().including("book__tags"))
    assert len(captured) == 2  # reviews joined with books, then the books' tags
    assert_no_more_queries(lambda: [[t.name for t in r.book.tags.all()] for r in reviews])


def test_generic_relation_is_prefetched(library: list[Book]) -> None:
    with capture_queries() as captured:
        books = list(Book.eager.plain().including("notes"))
    assert len(captured) == 2
    notes = [note.text for book in books for note in book.notes.all()]
    assert len(notes) == 4


def test_prefetch_objects_pass_through(library: list[Book]) -> None:
    good = Prefetch("reviews", queryset=Review.objects.filter(rating__gte=3), to_attr="good")
    with capture_queries() as captured:
        books = list(Book.eager.plain().including("author", good))
    assert len(captured) == 2
    assert_no_more_queries(lambda: [(b.author.name, [r.rating for r in b.good]) for b in books])
    assert all(r.rating >= 3 for b in books for r in b.good)


def test_prefetch_object_with_unknown_relation_fails_early() -> None:
    with pytest.raises(FieldError, match="Cannot include 'reveiws'"):
        Book.eager.including(Prefetch("reveiws"))


def test_results_equal_the_plain_queryset(library: list[Book]) -> None:
    eager = [(b.pk, b.author.name, sorted(t.name for t in b.tags.all()))
             for b in Book.eager.profile("detail").order_by("pk")]  # fmt: skip
    plain = [(b.pk, b.author.name, sorted(t.name for t in b.tags.all()))
             for b in Book.objects.order_by("pk")]  # fmt: skip
    assert eager == plain


# --- profiles -------------------------------------------------------------------------------


def test_default_profile_applies_to_every_queryset(library: list[Book]) -> None:
    with capture_queries() as captured:
        books = list(Book.eager.filter(pages__gte=0).order_by("title")[:5])
        first = Book.eager.first()
        one = Book.eager.get(pk=library[0].pk)
    assert len(captured) == 3
    assert first is not None
    assert_no_more_queries(lambda: [b.author.name for b in [*books, first, one]])


def test_named_profile_replaces_the_default(library: list[Book]) -> None:
    with capture_queries() as captured:
        books = list(Book.eager.profile("detail"))
    # Books joined with author, profile and publisher; then tags, reviews and notes.
    assert len(captured) == 4

    def read_all() -> list[object]:
        return [(b.author.profile.bio, list(b.tags.all()), list(b.reviews.all()),
                 list(b.notes.all())) for b in books]  # fmt: skip

    assert_no_more_queries(read_all)


def test_plain_and_profile_none_opt_out(library: list[Book]) -> None:
    for queryset in (Book.eager.plain(), Book.eager.profile(None)):
        assert queryset.query.select_related is False
        assert queryset._prefetch_related_lookups == ()


def test_unknown_profile_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="Book has no eager-loading profile 'full'; profiles: "
                                         "detail, list"):  # fmt: skip
        Book.eager.profile("full")


def test_profiles_declared_on_the_queryset_work_with_as_manager(library: list[Book]) -> None:
    with capture_queries() as captured:
        authors = list(Author.with_profiles.named("Author 1").profile("detail"))
    assert len(captured) == 3
    assert_no_more_queries(lambda: [a.profile.bio for a in authors])


def test_mixin_keeps_the_projects_own_queryset_methods(library: list[Book]) -> None:
    with capture_queries() as captured:
        reviews = list(Review.eager.good())
    assert len(captured) == 1
    assert reviews and all(r.rating >= 4 for r in reviews)
    assert_no_more_queries(lambda: [r.book.author.name for r in reviews])


def test_related_managers_do_not_apply_profiles(library: list[Book]) -> None:
    author = Author.objects.get(pk=library[0].author_id)
    assert author.books.all().query.select_related is False


# --- counts -----------------------------------------------------------------------------------


def test_including_counts_is_one_query(library: list[Book]) -> None:
    with capture_queries() as captured:
        books = list(Book.eager.plain().including_counts("tags", "reviews", "notes").order_by("pk"))
    assert len(captured) == 1
    expected = [(b.tags.count(), b.reviews.count(), b.notes.count())
                for b in Book.objects.order_by("pk")]  # fmt: skip
    assert [(b.tags_count, b.reviews_count, b.notes_count) for b in books] == expected


def test_including_counts_on_reverse_fk(library: list[Book]) -> None:
    counts = {a.name: a.books_count for a in Author.with_profiles.including_counts("books")}
    assert set(counts.values()) == {3}


def test_including_counts_rejects_single_valued_relations() -> None:
    with pytest.raises(FieldError, match=r"Book.author is not a many-valued relation"):
        Book.eager.including_counts("author")


# --- queryset methods ------------------------------------------------------------------------


def test_only_and_defer_work_with_eager_paths(library: list[Book]) -> None:
    with capture_queries() as captured:
        books = list(Book.eager.only("title", "author__name", "publisher__name"))
    assert len(captured) == 1
    assert_no_more_queries(lambda: [(b.title, b.author.name) for b in books])


def test_values_ignores_the_default_profile(library: list[Book]) -> None:
    rows = list(Book.eager.values("title", "author__name").order_by("title")[:2])
    assert rows[0] == {"title": "Book 0.0", "author__name": "Author 0"}
    assert Book.eager.values_list("title", flat=True).count() == 12


def test_values_after_explicit_prefetch_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match=r"values\(\) returns dicts or tuples, so the relations"):
        Book.eager.including("tags").values("title")


def test_iterator_prefetches_in_chunks(library: list[Book]) -> None:
    with capture_queries() as captured:
        titles = [(b.title, [t.name for t in b.tags.all()])
                  for b in Book.eager.including("tags").iterator()]  # fmt: skip
    assert len(titles) == 12 and len(captured) == 2
    with capture_queries() as chunked:
        count = sum(1 for _ in Book.eager.including("tags").iterator(chunk_size=5))
    # One statement for the books (read in chunks), then the tags of each chunk of 5.
    assert count == 12 and len(chunked) == 4


@pytest.mark.django_db(transaction=True)
def test_async_iteration(library: list[Book]) -> None:
    async def titles() -> list[str]:
        from asgiref.sync import sync_to_async
        from django.db import connections

        try:
            return [f"{b.title}/{b.author.name}" async for b in Book.eager.all()]
        finally:
            await sync_to_async(connections.close_all)()

    with capture_queries() as captured:
        result = asyncio.run(titles())
    assert len(result) == 12 and len(captured) == 1


def test_manager_needs_an_eager_queryset() -> None:
    from django.db import models

    from django_dbperf.managers import EagerManagerMixin

    class Broken(EagerManagerMixin, models.Manager):  # type: ignore[type-arg]
        pass

    manager = Broken()
    manager.model = Book
    with pytest.raises(TypeError, match="needs a QuerySet with EagerQuerySetMixin"):
        manager.get_queryset()


def test_eager_queryset_is_a_queryset() -> None:
    assert isinstance(Book.eager.all(), EagerQuerySet)


# --- fetch modes ---------------------------------------------------------------------------


@needs_fetch_modes
def test_manager_fetch_mode_batches_lazy_loads(library: list[Book]) -> None:
    with capture_queries() as captured:
        names = [b.author.name for b in Book.peers.all()]
    assert len(names) == 12 and len(captured) == 2


@needs_fetch_modes
@override_settings(DBPERF={"DEFAULT_FETCH_MODE": "FETCH_RAISE"})
def test_default_fetch_mode_setting_applies_to_eager_managers(library: list[Book]) -> None:
    from django.core.exceptions import FieldFetchBlocked

    book = Book.eager.plain().first()
    assert book is not None
    with pytest.raises(FieldFetchBlocked):
        book.author  # noqa: B018
    # A manager's own fetch mode wins over the setting.
    assert Book.peers.first().author.name  # type: ignore[union-attr]


@needs_fetch_modes
@override_settings(DBPERF={"DEFAULT_FETCH_MODE": "django_dbperf.capture.fetch_mode.FETCH_RECORD"})
def test_default_fetch_mode_by_dotted_path(library: list[Book]) -> None:
    from django_dbperf.capture.fetch_mode import FETCH_RECORD

    assert Book.eager.all()._fetch_mode is FETCH_RECORD


def test_including_counts_keeps_the_default_ordering(library: list[Book]) -> None:
    from example_project.scheduler.models import Workflow

    # A GROUP BY would drop Meta.ordering (["name"]); correlated subqueries keep it.
    assert Workflow.eager.including_counts("events").query.get_meta().ordering == ["name"]
    assert Workflow.eager.including_counts("events").ordered
    paged = list(Author.with_profiles.order_by("name").including_counts("books")[:2])
    assert [a.books_count for a in paged] == [3, 3]


def test_profile_entries_can_be_factories(library: list[Book]) -> None:
    from django_dbperf.managers import plan

    def good_reviews() -> Prefetch:  # type: ignore[type-arg]
        return Prefetch("reviews", queryset=Review.objects.filter(rating__gte=3), to_attr="good")

    eager = plan(Book, ["author", good_reviews])
    assert eager.select == ("author",)
    assert [p.to_attr for p in eager.prefetch] == ["good"]  # type: ignore[union-attr]
