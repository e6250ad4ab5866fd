"""Findings that hold on real projects: repeats are duplicates, names are eager-loadable, fixes
extend the queryset the user wrote (with the full path) and are valid Python."""

from __future__ import annotations

import ast
import re

import django
import pytest
from django.contrib.contenttypes.models import ContentType
from django.db.models import Prefetch
from django.test import override_settings

from django_dbperf import capture_queries
from django_dbperf.analysis import DUPLICATE, Finding
from django_dbperf.analysis.fixes import suggest
from django_dbperf.analysis.relations import PARENT_LINK, REVERSE_FK, Relation, from_lazy_load
from django_dbperf.analysis.sql_text import fingerprint_id
from django_dbperf.capture import LazyLoad
from tests import helpers
from tests.helpers import make_library
from tests.testapp.models import (
    Author,
    AuthorProfile,
    Book,
    Chef,
    DiffItem,
    DiffOwner,
    Dish,
    Note,
    Place,
    Publisher,
    Restaurant,
)

pytestmark = pytest.mark.django_db


def line_of(marker: str) -> str:
    return helpers.line_of(__file__, marker)


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, "\n".join(str(finding) for finding in findings)
    return findings[0]


_CALL = re.compile(r"\.(?:select_related|prefetch_related)\((?:[^()]|\([^()]*\))*\)")


def assert_valid_python(finding: Finding) -> None:
    """Every eager-loading call a fix prints parses as Python."""
    for call in _CALL.findall(finding.suggestion):
        ast.parse(f"queryset{call}")


# --- repeats are duplicates, never N+1 ---------------------------------------------------


def test_identical_repeats_from_one_line_are_a_duplicate_not_an_n_plus_one() -> None:
    author = make_library(authors=1, books_per_author=1)[0].author
    with capture_queries() as captured:
        for _ in range(6):
            Author.objects.get(pk=author.pk)  # same-query
    assert captured.n_plus_one == []
    finding = only(captured.duplicates)
    assert finding.count == 6
    assert str(finding.callsite) == line_of("same-query")
    # What ran: the statement, shortened, and its fingerprint id.
    assert fingerprint_id(finding.fingerprint) in finding.title
    assert 'SELECT "testapp_author"."id"' in finding.title


def test_a_duplicate_names_every_line_that_ran_it() -> None:
    author = make_library(authors=1, books_per_author=1)[0].author
    with capture_queries() as captured:
        Author.objects.get(pk=author.pk)  # first-line
        Author.objects.get(pk=author.pk)  # second-line
    finding = only(captured.duplicates)
    assert [str(site) for site in finding.callsites] == [
        line_of("first-line"),
        line_of("second-line"),
    ]
    assert line_of("second-line") in finding.title


def test_two_users_loaded_three_times_are_not_an_n_plus_one() -> None:
    """request.user loaded twice plus the edited user: a duplicate, not an N+1 on a pk."""
    first, second = make_library(authors=2, books_per_author=1)
    with capture_queries() as captured:
        for pk in (first.author_id, first.author_id, second.author_id):
            Author.objects.get(pk=pk)
    assert captured.n_plus_one == []
    assert only(captured.duplicates).count == 2


def test_a_relation_loaded_per_row_is_an_n_plus_one_even_when_rows_share_targets() -> None:
    make_library(authors=2, books_per_author=5)
    with capture_queries() as captured:
        [book.author.name for book in Book.objects.all()]
    finding = only(captured.n_plus_one)
    assert finding.relation == "testapp.Book.author" and finding.count == 10
    assert captured.duplicates == []  # the repeats inside the loop are the N+1's


def test_a_few_lazy_loads_of_one_row_suggest_the_eager_load_too() -> None:
    make_library(authors=1, books_per_author=2)
    with capture_queries() as captured:
        [book.author.name for book in Book.objects.all()]  # two-books
    finding = only(captured.findings)
    assert finding.kind == DUPLICATE and finding.count == 2
    assert 'add .select_related("author") to the Book queryset' in finding.suggestion


# --- names a developer can type ------------------------------------------------------------


def test_hidden_accessors_and_primary_keys_are_never_named() -> None:
    hidden = Relation(REVERSE_FK, ContentType, "+", Note)
    assert hidden.label is None
    fix = suggest(hidden, 'SELECT ... FROM "testapp_note" WHERE "testapp_note"."x" = ?')
    assert '"+"' not in fix and "+_" not in fix
    make_library(authors=1, books_per_author=4)
    with capture_queries() as captured:
        [Book.objects.get(pk=book.pk) for book in Book.objects.all()]
    finding = only(captured.n_plus_one)
    assert finding.relation is None and finding.model == "testapp.Book"


def test_a_parent_link_is_never_named() -> None:
    relation = from_lazy_load(LazyLoad("forward", Restaurant, "place_ptr"))
    assert relation.kind == PARENT_LINK and relation.label is None
    fix = suggest(relation, 'SELECT ... FROM "testapp_place" WHERE "testapp_place"."id" = ?')
    assert "_ptr" not in fix and "parent" in fix


def test_generic_relations_are_named() -> None:
    books = make_library(authors=2, books_per_author=2)
    for book in books:
        Note.objects.create(target=book, text="n")
    with capture_queries() as captured:
        [list(book.notes.all()) for book in Book.objects.all()]
    finding = only(captured.n_plus_one)
    assert finding.relation == "testapp.Book.notes"
    assert 'add .prefetch_related("notes") to the Book queryset' in finding.suggestion
    assert_valid_python(finding)


def test_generic_foreign_keys_are_named() -> None:
    books = make_library(authors=2, books_per_author=2)
    for book in books:
        Note.objects.create(target=book, text="n")
    ContentType.objects.clear_cache()
    with capture_queries() as captured:
        [note.target for note in Note.objects.all()]
    finding = only(captured.n_plus_one)
    assert finding.relation == "testapp.Note.target"
    assert 'add .prefetch_related("target") to the Note queryset' in finding.suggestion
    if django.VERSION >= (5, 0):
        assert 'GenericPrefetch("target", [querysets])' in finding.suggestion


def test_relations_reached_through_multi_table_inheritance() -> None:
    for number in range(4):
        chef = Chef.objects.create(name=f"C{number}")
        restaurant = Restaurant.objects.create(name=f"R{number}", chef=chef)
        Dish.objects.create(restaurant=restaurant, name="d")
    with capture_queries() as captured:
        for place in Place.objects.all():  # places
            place.restaurant.chef.name  # noqa: B018
    relations = {finding.relation: finding for finding in captured.n_plus_one}
    assert set(relations) == {"testapp.Place.restaurant", "testapp.Restaurant.chef"}
    assert 'add .select_related("restaurant__chef") to the Place queryset' in (
        relations["testapp.Restaurant.chef"].suggestion
    )
    with capture_queries() as captured:
        [list(restaurant.dishes.all()) for restaurant in Restaurant.objects.all()]
    finding = only(captured.n_plus_one)
    assert finding.relation == "testapp.Restaurant.dishes"


# --- fixes on the queryset the user wrote ---------------------------------------------------


def test_select_related_chain_is_extended_on_the_root_queryset() -> None:
    make_library(authors=4, books_per_author=1)
    with capture_queries() as captured:
        for book in Book.objects.select_related("author"):  # root-queryset
            book.author.profile.bio  # noqa: B018
    finding = only(captured.n_plus_one)
    assert finding.relation == "testapp.Author.profile"
    assert (
        f'add .select_related("author__profile") to the Book queryset evaluated at '
        f"{line_of('root-queryset')}"
    ) in finding.suggestion
    assert "Author queryset" not in finding.suggestion


def test_prefetch_chain_is_extended_on_the_root_queryset() -> None:
    make_library(authors=2, books_per_author=2)
    for number, book in enumerate(Book.objects.all()):
        book.publisher = Publisher.objects.create(name=f"P{number}")
        book.save()
    with capture_queries() as captured:
        for author in Author.objects.prefetch_related("books"):  # prefetch-root
            [book.publisher.name for book in author.books.all()]
    finding = only(captured.n_plus_one)
    assert finding.relation == "testapp.Book.publisher"
    assert (
        f'add .prefetch_related("books__publisher") to the Author queryset evaluated at '
        f"{line_of('prefetch-root')}"
    ) in finding.suggestion
    assert_valid_python(finding)


def test_prefetch_object_chain_is_extended_on_the_root_queryset() -> None:
    make_library(authors=2, books_per_author=2)
    lookup = Prefetch("books", queryset=Book.objects.all())
    with capture_queries() as captured:
        for author in Author.objects.prefetch_related(lookup):
            [list(book.reviews.all()) for book in author.books.all()]
    finding = only(captured.n_plus_one)
    assert finding.relation == "testapp.Book.reviews"
    assert 'add .prefetch_related("books__reviews") to the Author queryset' in (finding.suggestion)


def test_applied_fixes_make_the_count_constant() -> None:
    """The printed fix, applied as printed, removes the N+1."""
    make_library(authors=4, books_per_author=2)
    with capture_queries() as captured:
        [book.author.profile.bio for book in Book.objects.select_related("author")]
    fix = only(captured.n_plus_one).suggestion
    (path,) = re.findall(r'select_related\("([^"]+)"\)', fix)
    with capture_queries() as fixed:
        [book.author.profile.bio for book in Book.objects.select_related(path)]
    assert len(fixed) == 1 and fixed.findings == []
    assert AuthorProfile.objects.count() == 4


def test_two_relations_sending_the_same_sql_from_one_line_are_two_findings() -> None:
    """item.owner and item.sponsor run the same statement from one line: two fixes."""
    for number in range(4):
        owner = DiffOwner.objects.create(name=f"o{number}")
        sponsor = DiffOwner.objects.create(name=f"s{number}")
        DiffItem.objects.create(name=f"i{number}", owner=owner, sponsor=sponsor)
    with capture_queries() as captured:
        [(item.owner.name, item.sponsor.name) for item in DiffItem.objects.all()]  # both
    relations = {finding.relation: finding for finding in captured.n_plus_one}
    assert set(relations) == {"testapp.DiffItem.owner", "testapp.DiffItem.sponsor"}
    assert relations["testapp.DiffItem.owner"].count == 4
    assert 'select_related("sponsor")' in relations["testapp.DiffItem.sponsor"].suggestion


def test_values_per_row_says_a_prefetch_would_not_be_read() -> None:
    make_library(authors=2, books_per_author=2)
    with capture_queries() as captured:
        [list(book.tags.values_list("name", flat=True)) for book in Book.objects.all()]
    finding = only(captured.n_plus_one)
    assert finding.relation == "testapp.Book.tags"
    assert "prefetch_related() cache never serves" in finding.suggestion
    assert ".prefetch_related(" not in finding.suggestion  # no call that would change nothing


def test_rows_built_by_a_framework_iterable_say_to_query_the_concrete_model() -> None:
    """select_related on the Place queryset cannot reach rows another queryset loaded."""
    from tests.dataaccess import SpecificPlaces

    for number in range(4):
        Restaurant.objects.create(name=f"R{number}", chef=Chef.objects.create(name=f"C{number}"))
    places = Place.objects.all()
    places._iterable_class = SpecificPlaces
    hidden = override_settings(DBPERF={"HIDE_IN_CALLSITES": ["tests.dataaccess"]})
    with hidden, capture_queries() as captured:
        [place.chef.name for place in places]  # framework-built
    finding = only(captured.n_plus_one)
    assert finding.relation == "testapp.Restaurant.chef"
    assert (
        "the Restaurant rows were loaded by the framework while iterating the Place queryset "
        f"evaluated at {line_of('framework-built')}"
    ) in finding.suggestion
    assert 'Restaurant.objects.filter(...).select_related("chef")' in finding.suggestion
