"""query_shape(): equal shapes compile to equal SQL, equal (shape, params) to equal params.

A wrong "equal" would serve one queryset's cached rows for another, so the contract is checked
over every pair of a corpus of near-duplicate querysets (and of generated ones), compiled both
before and after Django has compiled them once.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import warnings
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import EmptyResultSet, FieldError
from django.db import NotSupportedError, models
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.db.models.expressions import Col, RawSQL
from django.db.models.functions import Lower
from django.db.models.sql.compiler import SQLCompiler
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_dbperf.cache.shape import query_shape
from tests.testapp.models import Author, AuthorProfile, Book, Review, Tag

# Compiling SQL for PostgreSQL asks the connection for the server version.
pytestmark = pytest.mark.django_db

EMPTY: tuple[str, tuple[Any, ...]] = ("<EmptyResultSet>", ())


@dataclass(frozen=True)
class Values:
    """The lookup values of one variant: two variants of a template differ only in these."""

    n: int
    s: str
    ids: tuple[int, ...]
    day: datetime.date
    when: datetime.datetime


A = Values(3, "ab", (1, 2, 3), datetime.date(2020, 1, 2), datetime.datetime(2020, 1, 2, 3, 4))
B = Values(7, "xyz", (4, 5, 6), datetime.date(2021, 5, 6), datetime.datetime(2021, 5, 6, 7, 8))

Template = Callable[[Values], QuerySet[Any]]


def every_relation(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """select_related() without names (deprecated in Django 6.1, still supported)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return queryset.select_related()


def page(v: Values, select: tuple[str, ...] = ("author",), **lookups: Any) -> QuerySet[Any]:
    """The page query: related rows joined, a filter on the author, ordered by id."""
    queryset = Book.objects.select_related(*select) if select else every_relation(Book.objects)
    return queryset.filter(**(lookups or {"author_id__lte": v.n})).order_by("id")


# Shapes this module must key without compiling; each template is built with A and with B.
SUPPORTED: dict[str, Template] = {
    "all": lambda v: Book.objects.all(),
    "page": page,
    "page desc": lambda v: page(v).order_by("-id"),
    "page lt": lambda v: page(v, author_id__lt=v.n),
    "page exclude": lambda v: page(v).exclude(author_id__lte=v.n + 1),
    "page reversed": lambda v: page(v).reverse(),
    "page sliced": lambda v: page(v)[:20],
    "page offset": lambda v: page(v)[20:40],
    "page no join": lambda v: Book.objects.filter(author_id__lte=v.n).order_by("id"),
    "pk": lambda v: Book.objects.filter(pk=v.n),
    "id exact": lambda v: Book.objects.filter(id__exact=v.n),
    "pk first": lambda v: Book.objects.filter(pk=v.n)[:1],
    "pk get slice": lambda v: Book.objects.filter(pk=v.n)[:21],
    "pages gt": lambda v: Book.objects.filter(pages__gt=v.n),
    "pages gte": lambda v: Book.objects.filter(pages__gte=v.n),
    "pages lt": lambda v: Book.objects.filter(pages__lt=v.n),
    "pages lte": lambda v: Book.objects.filter(pages__lte=v.n),
    "pages float": lambda v: Book.objects.filter(pages__gte=v.n + 0.5),
    "pages not": lambda v: Book.objects.exclude(pages=v.n),
    "pages range": lambda v: Book.objects.filter(pages__range=(v.n, v.n + 10)),
    "pages in": lambda v: Book.objects.filter(pages__in=v.ids),
    "id in": lambda v: Book.objects.filter(id__in=v.ids),
    "id in list": lambda v: Book.objects.filter(id__in=list(v.ids)),
    "id in set": lambda v: Book.objects.filter(id__in=set(v.ids)),
    "id in with None": lambda v: Book.objects.filter(id__in=[*v.ids, None]),
    "id in duplicates": lambda v: Book.objects.filter(id__in=[v.ids[0], v.ids[0], v.ids[1]]),
    "id not in": lambda v: Book.objects.exclude(id__in=v.ids),
    "author in": lambda v: Book.objects.filter(author__in=v.ids),
    "author instance": lambda v: Book.objects.filter(author=Author(pk=v.n)),
    "author id": lambda v: Book.objects.filter(author_id=v.n),
    "author pk across": lambda v: Book.objects.filter(author__id=v.n),
    "title": lambda v: Book.objects.filter(title=v.s),
    "title iexact": lambda v: Book.objects.filter(title__iexact=v.s),
    "title contains": lambda v: Book.objects.filter(title__contains=v.s),
    "title icontains": lambda v: Book.objects.filter(title__icontains=v.s),
    "title startswith": lambda v: Book.objects.filter(title__startswith=v.s),
    "title istartswith": lambda v: Book.objects.filter(title__istartswith=v.s),
    "title endswith": lambda v: Book.objects.filter(title__endswith=v.s),
    "title iendswith": lambda v: Book.objects.filter(title__iendswith=v.s),
    "title regex": lambda v: Book.objects.filter(title__regex=v.s),
    "title iregex": lambda v: Book.objects.filter(title__iregex=v.s),
    "title in": lambda v: Book.objects.filter(title__in=[v.s, v.s + "!"]),
    "summary contains int": lambda v: Book.objects.filter(summary__contains=v.n),
    "published": lambda v: Book.objects.filter(published=v.day),
    "published gte": lambda v: Book.objects.filter(published__gte=v.day),
    "published range": lambda v: Book.objects.filter(published__range=(v.day, v.day)),
    "published null": lambda v: Book.objects.filter(published__isnull=True),
    "published not null": lambda v: Book.objects.filter(published__isnull=False),
    "published None": lambda v: Book.objects.filter(published=None),
    "published exclude": lambda v: Book.objects.exclude(published=v.day),
    "publisher null": lambda v: Book.objects.filter(publisher__isnull=True),
    "publisher None": lambda v: Book.objects.filter(publisher=None),
    "publisher exclude": lambda v: Book.objects.exclude(publisher=v.n),
    "author name": lambda v: Book.objects.filter(author__name=v.s),
    "author name icontains": lambda v: Book.objects.filter(author__name__icontains=v.s),
    "author email": lambda v: Book.objects.filter(author__email=v.s),
    "publisher name": lambda v: Book.objects.filter(publisher__name=v.s),
    "author profile bio": lambda v: Book.objects.filter(author__profile__bio=v.s),
    "reverse fk": lambda v: Author.objects.filter(books__title=v.s),
    "reverse fk pages": lambda v: Author.objects.filter(books__pages__gt=v.n),
    "reverse one to one": lambda v: Author.objects.filter(profile__bio=v.s),
    "m2m": lambda v: Book.objects.filter(tags__name=v.s),
    "m2m reverse": lambda v: Tag.objects.filter(books__title=v.s),
    "review book author": lambda v: Review.objects.filter(book__author__name=v.s, rating__gte=v.n),
    "two filters": lambda v: Book.objects.filter(title=v.s).filter(pages=v.n),
    "one filter two lookups": lambda v: Book.objects.filter(title=v.s, pages=v.n),
    "q and": lambda v: Book.objects.filter(Q(title=v.s) & Q(pages=v.n)),
    "q or": lambda v: Book.objects.filter(Q(title=v.s) | Q(pages=v.n)),
    "q or swapped": lambda v: Book.objects.filter(Q(pages=v.n) | Q(title=v.s)),
    "q not": lambda v: Book.objects.filter(~Q(title=v.s)),
    "q not or": lambda v: Book.objects.filter(~(Q(title=v.s) | Q(pages=v.n))),
    "q xor": lambda v: Book.objects.filter(Q(title=v.s) ^ Q(pages=v.n)),
    "q nested": lambda v: Book.objects.filter(Q(title=v.s) | Q(pages__gt=v.n) & ~Q(author_id=v.n)),
    "q or across join": lambda v: Book.objects.filter(Q(author__name=v.s) | Q(publisher__name=v.s)),
    "select_related nested": lambda v: page(v, ("author__profile",)),
    "select_related two": lambda v: page(v, ("author", "publisher")),
    "select_related all": lambda v: every_relation(Book.objects).filter(pk=v.n),
    "select_related publisher": lambda v: Book.objects.select_related("publisher").filter(pk=v.n),
    "select_related reverse one": lambda v: Author.objects.select_related("profile").filter(pk=v.n),
    "order title": lambda v: Book.objects.filter(pages=v.n).order_by("title"),
    "order title desc": lambda v: Book.objects.filter(pages=v.n).order_by("-title"),
    "order two": lambda v: Book.objects.filter(pages=v.n).order_by("title", "-id"),
    "order across join": lambda v: Book.objects.filter(pages=v.n).order_by("author__name"),
    "order fk": lambda v: Book.objects.filter(pages=v.n).order_by("author"),
    "order cleared": lambda v: Book.objects.filter(pages=v.n).order_by(),
    "distinct": lambda v: Book.objects.filter(pages=v.n).distinct(),
    "distinct m2m": lambda v: Book.objects.filter(tags__name=v.s).distinct(),
    "only": lambda v: Book.objects.only("title").filter(pk=v.n),
    "only two": lambda v: Book.objects.only("title", "pages").filter(pk=v.n),
    "only related": lambda v: page(v).only("title", "author__name"),
    "defer": lambda v: Book.objects.defer("title").filter(pk=v.n),
    "defer summary": lambda v: Book.objects.defer("summary").filter(pk=v.n),
    "values": lambda v: Book.objects.filter(pk=v.n).values(),
    "values fields": lambda v: Book.objects.filter(pk=v.n).values("title", "pages"),
    "values swapped": lambda v: Book.objects.filter(pk=v.n).values("pages", "title"),
    "values across": lambda v: Book.objects.filter(pk=v.n).values("title", "author__name"),
    "values_list": lambda v: Book.objects.filter(pk=v.n).values_list("title", "pages"),
    "values_list flat": lambda v: Book.objects.filter(pages=v.n).values_list("id", flat=True),
    "values id": lambda v: Book.objects.filter(pages=v.n).values("id"),
    "values distinct": lambda v: Book.objects.filter(pages=v.n).values("title").distinct(),
    "user active": lambda v: User.objects.filter(is_active=True, username=v.s),
    "user inactive": lambda v: User.objects.filter(is_active=False, username=v.s),
    "user joined": lambda v: User.objects.filter(date_joined__gte=v.when.astimezone(datetime.UTC)),
    "user last login range": lambda v: User.objects.filter(
        last_login__range=(v.when.replace(tzinfo=datetime.UTC), v.when.replace(tzinfo=datetime.UTC))
    ),
    "profile author": lambda v: AuthorProfile.objects.filter(author=v.n).select_related("author"),
    "meta ordering": lambda v: Permission.objects.filter(codename=v.s),
    "meta ordering cleared": lambda v: Permission.objects.filter(codename=v.s).order_by(),
    "meta ordering reversed": lambda v: Permission.objects.filter(codename=v.s).reverse(),
}

# Near-duplicates whose SQL, or whose params for the same values, differ from a supported one
# in one small way; they may or may not have a shape.
NEAR: dict[str, Template] = {
    "id in empty": lambda v: Book.objects.filter(id__in=[]),
    "id in only None": lambda v: Book.objects.filter(id__in=[None]),
    "id in one": lambda v: Book.objects.filter(id__in=[v.n]),
    "id in two": lambda v: Book.objects.filter(id__in=[v.n, v.n + 1]),
    "id in same twice": lambda v: Book.objects.filter(id__in=[v.n, v.n]),
    "or with empty in": lambda v: Book.objects.filter(Q(id__in=[]) | Q(pages=v.n)),
    "title in bool": lambda v: Book.objects.filter(summary__in=[True, 1]),
    "summary contains str": lambda v: Book.objects.filter(summary__contains=str(v.n)),
    "summary contains decimal": lambda v: Book.objects.filter(summary__contains=Decimal("1.0")),
    "summary contains decimal 2": lambda v: Book.objects.filter(summary__contains=Decimal("1.00")),
    "pages exact float": lambda v: Book.objects.filter(pages=float(v.n)),
    "pages exact str": lambda v: Book.objects.filter(pages=str(v.n)),
    "pages gt negative": lambda v: Book.objects.filter(pages__gt=-1),
    "pages lt negative": lambda v: Book.objects.filter(pages__lt=-1),
    "pages gt huge": lambda v: Book.objects.filter(pages__gt=2**70),
    "id exact huge": lambda v: Book.objects.filter(id=2**64),
    "pages gt zero": lambda v: Book.objects.filter(pages__gt=0),
    "title None": lambda v: Book.objects.filter(title=None),
    "page select_related publisher": lambda v: page(v, ("publisher",)),
    "page select_related all": lambda v: page(v, ()),
    "page order author id": lambda v: page(v).order_by("author_id"),
    "page offset 10": lambda v: page(v)[10:40],
    "page author lte via join": lambda v: page(v, author__id__lte=v.n),
    "page author name": lambda v: page(v, author__name__lte=v.s),
    "page only": lambda v: page(v).only("title", "author__name"),
    "page values": lambda v: Book.objects.filter(author_id__lte=v.n).order_by("id").values("id"),
    "page distinct": lambda v: page(v).distinct(),
    "filter then order": lambda v: Book.objects.filter(author__name=v.s).order_by("author__name"),
    "order then filter": lambda v: Book.objects.order_by("author__name").filter(author__name=v.s),
    "two joins same relation": lambda v: Author.objects.filter(books__title=v.s).filter(
        books__id=1
    ),
    "one join same relation": lambda v: Author.objects.filter(books__title=v.s, books__id=1),
    "exclude m2m": lambda v: Book.objects.exclude(tags__name=v.s),
    "user active 1": lambda v: User.objects.filter(is_active=1, username=v.s),
    "user other zone": lambda v: User.objects.filter(
        date_joined__gte=v.when.replace(tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    ),
    "year": lambda v: Book.objects.filter(published__year=v.day.year),
    "annotated": lambda v: Book.objects.annotate(n=Count("reviews")).filter(pk=v.n),
    "f rhs": lambda v: Book.objects.filter(pages=F("author_id")),
    "none": lambda v: Book.objects.none(),
    "random": lambda v: Book.objects.filter(pk=v.n).order_by("?"),
}

# Querysets this module must leave to the compiler.
UNSUPPORTED: dict[str, Callable[[], QuerySet[Any]]] = {
    "annotate": lambda: Book.objects.annotate(n=Count("reviews")),
    "alias": lambda: Book.objects.alias(n=Count("reviews")).filter(n__gt=1),
    "annotate value": lambda: Book.objects.annotate(lower=Lower("title")),
    "values expression": lambda: Book.objects.values(lower=Lower("title")),
    "extra": lambda: Book.objects.extra(where=["1 = 1"]),
    "extra select": lambda: Book.objects.extra(select={"one": "1"}),
    "raw sql filter": lambda: Book.objects.filter(pages=RawSQL("1", [])),
    "f rhs": lambda: Book.objects.filter(pages=F("author_id")),
    "lhs transform": lambda: Book.objects.filter(published__month=1),
    "year transform": lambda: Book.objects.filter(published__year=2020),
    "subquery rhs": lambda: Book.objects.filter(author__in=Author.objects.filter(name="x")),
    "exists": lambda: Book.objects.filter(Exists(Review.objects.filter(book=OuterRef("pk")))),
    "exclude across m2m": lambda: Book.objects.exclude(tags__name="x"),
    "union": lambda: Book.objects.filter(pk=1).union(Book.objects.filter(pk=2)),
    "select_for_update": lambda: Book.objects.select_for_update().filter(pk=1),
    "order random": lambda: Book.objects.order_by("?"),
    "order expression": lambda: Book.objects.order_by(F("title").desc()),
    "order lower": lambda: Book.objects.order_by(Lower("title")),
    "none": lambda: Book.objects.none(),
    "generic relation join": lambda: Book.objects.filter(notes__text="x"),
    "dates": lambda: Book.objects.dates("published", "year"),
    "integer out of range": lambda: Book.objects.filter(pages__gt=2**70),
    "negative positive integer": lambda: Book.objects.filter(pages__gte=-1),
    "id huge": lambda: Book.objects.filter(pk=2**64),
    "decimal in pattern": lambda: Book.objects.filter(title__contains=Decimal("1")),
    "model instance in pattern": lambda: Book.objects.filter(title__contains=Author(pk=1)),
}


def compiled(queryset: QuerySet[Any]) -> tuple[str, tuple[Any, ...]]:
    """The SQL and params; a query Django refuses to compile stands for its refusal."""
    try:
        sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    except EmptyResultSet:
        return EMPTY
    except (FieldError, NotSupportedError, ValueError, TypeError) as error:
        return f"<{type(error).__name__}>", ()
    return sql, tuple(params)


@dataclass(frozen=True)
class Entry:
    name: str
    result: tuple[Any, tuple[object, ...]] | None
    sql: str
    params: tuple[Any, ...]


def entries(queryset: QuerySet[Any], name: str) -> Iterator[Entry]:
    """The shape before Django compiles the query, and again once it has (joins it adds stay)."""
    first = query_shape(queryset.query)
    sql, params = compiled(queryset)
    yield Entry(name, first, sql, params)
    again = query_shape(queryset.query)
    sql_again, params_again = compiled(queryset)
    yield Entry(f"{name} (compiled)", again, sql_again, params_again)


def corpus() -> list[Entry]:
    found = []
    for name, template in itertools.chain(SUPPORTED.items(), NEAR.items()):
        for label, values in (("A", A), ("B", B)):
            found.extend(entries(template(values), f"{name} [{label}]"))
    for name, make in UNSUPPORTED.items():
        if name != "generic relation join":  # its ON clause reads content types
            found.extend(entries(make(), name))
    return found


def assert_contract(found: list[Entry]) -> int:
    """Every pair: equal shapes, equal SQL; equal (shape, params), equal (SQL, params)."""
    equal_shapes = 0
    for first, second in itertools.combinations(found, 2):
        if first.result is None or second.result is None:
            continue
        if first.result[0] == second.result[0]:
            equal_shapes += 1
            assert first.sql == second.sql, (first.name, second.name)
            if first.result[1] == second.result[1]:
                assert first.params == second.params, (first.name, second.name)
    return equal_shapes


def test_equal_shapes_compile_to_equal_sql_over_every_pair() -> None:
    found = corpus()
    assert len({(entry.sql, entry.params) for entry in found}) >= 150
    # Not vacuous: many pairs share a shape (the A and B variants at least).
    assert assert_contract(found) >= len(SUPPORTED) * 2


@pytest.mark.parametrize("name", SUPPORTED)
def test_common_shapes_are_keyed_without_compiling(name: str) -> None:
    """Both variants have a shape, the same one, and it stands for their (equal) SQL."""
    first, second = SUPPORTED[name](A), SUPPORTED[name](B)
    first_result, second_result = query_shape(first.query), query_shape(second.query)
    assert first_result is not None and second_result is not None
    assert first_result[0] == second_result[0]
    assert compiled(first)[0] == compiled(second)[0]
    # The params are what tells the variants apart (where the template has values).
    if compiled(first)[1] != compiled(second)[1]:
        assert first_result[1] != second_result[1]


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_unsupported_shapes_are_left_to_the_compiler(name: str) -> None:
    assert query_shape(UNSUPPORTED[name]().query) is None


def test_near_duplicates_differing_in_sql_have_different_shapes() -> None:
    page = query_shape(SUPPORTED["page"](A).query)
    assert page is not None
    for name in ("page desc", "page lt", "page exclude", "page reversed", "page sliced",
                 "page offset", "page no join"):  # fmt: skip
        other = query_shape(SUPPORTED[name](A).query)
        assert other is not None and other[0] != page[0], name
    for name in ("page select_related publisher", "page select_related all", "page only",
                 "page values", "page distinct", "page author name"):  # fmt: skip
        other = query_shape(NEAR[name](A).query)
        assert other is not None and other[0] != page[0], name


def test_params_are_the_lookup_values_in_order() -> None:
    page = query_shape(SUPPORTED["page"](A).query)
    assert page is not None and page[1] == (3,)
    nested = query_shape(SUPPORTED["q nested"](B).query)
    assert nested is not None and nested[1] == ("xyz", 7, 7)
    ranged = query_shape(SUPPORTED["pages range"](A).query)
    assert ranged is not None and ranged[1] == ((3, 13),)
    isnull = query_shape(SUPPORTED["published null"](A).query)
    assert isnull is not None and isnull[1] == ()


def test_values_of_other_types_have_other_shapes() -> None:
    as_int = query_shape(SUPPORTED["summary contains int"](A).query)
    as_str = query_shape(NEAR["summary contains str"](A).query)
    assert as_int is not None and as_str is not None
    assert as_int[0] != as_str[0] and repr(as_int[1]) != repr(as_str[1])
    active = query_shape(SUPPORTED["user active"](A).query)
    inactive = query_shape(SUPPORTED["user inactive"](A).query)
    assert active is not None and inactive is not None and active[0] != inactive[0]


def test_in_counts_distinct_values() -> None:
    """IN drops None and duplicates, so the number of placeholders is part of the shape."""
    shapes = [query_shape(NEAR[name](A).query) for name in ("id in one", "id in same twice")]
    assert shapes[0] is not None and shapes[1] is not None
    assert compiled(NEAR["id in one"](A))[0] == compiled(NEAR["id in same twice"](A))[0]
    two = query_shape(NEAR["id in two"](A).query)
    assert two is not None and two[0] != shapes[1][0]


def promote(query: Any) -> None:
    query.promote_joins({"testapp_publisher"})


def unreference(query: Any) -> None:
    query.alias_refcount["testapp_publisher"] = 0


def rename_column_alias(query: Any) -> None:
    query.where = query.where.relabeled_clone({"testapp_publisher": "T9"})


def take_table_name(query: Any) -> None:
    query.table_map = {**query.table_map, "testapp_author": ["elsewhere"]}


def select_other_column(query: Any) -> None:
    query.select = (Col("testapp_book", Book._meta.get_field("summary")),)


@pytest.mark.parametrize(
    "change", [promote, unreference, rename_column_alias, take_table_name, select_other_column]
)
def test_the_shape_follows_state_that_querysets_rarely_differ_in(
    change: Callable[[Any], None],
) -> None:
    """Join types, unused joins, column aliases, alias naming and selected columns."""

    def make() -> QuerySet[Any]:
        queryset = Book.objects.select_related("author").filter(publisher__name="x")
        return queryset.values("title") if change is select_other_column else queryset

    original, changed = make(), make()
    change(changed.query)
    # Shapes first: compiling adds the joins of select_related() to the query.
    before, after = query_shape(original.query), query_shape(changed.query)
    assert compiled(changed) != compiled(original)
    assert before is not None
    assert after is None or after[0] != before[0]


def test_equal_aware_datetimes_of_other_instants_have_other_shapes() -> None:
    """In one zone, the two 02:30 of the end of summer time are equal, yet an hour apart."""
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    first = datetime.datetime(2021, 10, 31, 2, 30, tzinfo=paris)
    second = first.replace(fold=1)
    assert first == second
    querysets = [User.objects.filter(date_joined=when) for when in (first, second)]
    shapes = [query_shape(queryset.query) for queryset in querysets]
    assert shapes[0] is not None and shapes[1] is not None and shapes[0][0] != shapes[1][0]
    # repr: on PostgreSQL the parameters are the datetimes themselves, equal but an hour apart.
    assert repr(compiled(querysets[0])[1]) != repr(compiled(querysets[1])[1])


def test_equal_aware_datetimes_of_other_zones_have_other_shapes() -> None:
    """Equal instants, which a backend may format with their own offsets."""
    noon = datetime.datetime(2021, 6, 1, 12, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    assert noon == noon.astimezone(datetime.UTC)
    shapes = [
        query_shape(User.objects.filter(date_joined=when).query)
        for when in (noon, noon.astimezone(datetime.UTC))
    ]
    assert shapes[0] is not None and shapes[1] is not None and shapes[0][0] != shapes[1][0]


class Genre(models.TextChoices):
    NOVEL = "novel"
    ESSAY = "essay"


def test_choices_are_their_values() -> None:
    """A TextChoices member reaches the driver as its str: the params hold that str."""
    novel, essay = Book.objects.filter(title=Genre.NOVEL), Book.objects.filter(title=Genre.ESSAY)
    as_str = Book.objects.filter(title="novel")
    shapes = [query_shape(queryset.query) for queryset in (novel, essay, as_str)]
    assert shapes[0] is not None and shapes[1] is not None and shapes[2] is not None
    assert shapes[0][0] == shapes[1][0] and shapes[0][1] == ("novel",)
    assert repr(shapes[0][1]) == repr(shapes[2][1]) and compiled(novel) == compiled(as_str)


@pytest.mark.django_db
def test_an_evaluated_queryset_still_has_a_shape() -> None:
    queryset = SUPPORTED["page"](A)
    before = query_shape(queryset.query)
    assert list(queryset) == [] and queryset.count() == 0 and not queryset.exists()
    after = query_shape(queryset.query)
    assert before is not None and after is not None and after[1] == before[1]


def test_page_query_shape_does_not_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = SQLCompiler.as_sql

    def counting(self: SQLCompiler, *args: Any, **kwargs: Any) -> Any:
        calls.append(self.query)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counting)
    queryset = SUPPORTED["page"](A)
    assert query_shape(queryset.query) is not None
    assert calls == []
    compiled(queryset)  # the wrapper does count
    assert len(calls) == 1


def test_shape_does_not_change_the_query() -> None:
    queryset = SUPPORTED["page"](A)
    before = compiled(SUPPORTED["page"](A))
    query_shape(queryset.query)
    assert compiled(queryset) == before


# --- generated querysets ----------------------------------------------------------------

# Small pools, so that generated queries often share a shape: a collision with different SQL
# is what the property looks for.
FILTERS: list[tuple[str, list[Any]]] = [
    ("pages", [1, 2, True, 1.5, "3", None, -1, 2**70]),
    ("pages__gt", [1, 2, 0, -1]),
    ("pages__in", [[1], [1, 1], [1, 2], [None, 1], [], (1, 2), {2, 1}]),
    ("pages__range", [(1, 2), [2, 3]]),
    ("title", ["a", "b", None, 1]),
    ("title__icontains", ["a", "%", 1, Decimal("1.0"), Decimal("1.00")]),
    ("title__startswith", ["a", "_"]),
    ("published", [datetime.date(2020, 1, 1), None, "2020-01-02"]),
    ("published__isnull", [True, False]),
    ("author", [1, 2, None]),
    ("author_id__lte", [1, 5]),
    ("author__name", ["a", "b"]),
    ("author__profile__bio", ["a"]),
    ("publisher__name", ["a", None]),
    ("publisher__isnull", [True, False]),
    ("tags__name", ["a"]),
    ("reviews__rating__gte", [1, 4]),
]
ORDERINGS: list[tuple[str, ...]] = [
    (), ("id",), ("-id",), ("title", "-pages"), ("author__name",), ("publisher",)
]  # fmt: skip
RELATED: list[tuple[str, ...] | None] = [None, (), ("author",), ("author__profile", "publisher")]


COLUMNS: list[str | None] = [None, "only", "defer", "values", "values_list"]
SLICES: list[tuple[int | None, int | None]] = [(None, None), (0, 1), (0, 20), (10, 20), (20, 40)]

# A condition tree: ("leaf", filter index, negated) or ("node", connector, negated, left, right).
Tree = tuple[Any, ...]


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> Tree:
    if depth < 2 and draw(st.integers(0, 2)) == 0:
        connector = draw(st.sampled_from("&|^"))
        return ("node", connector, draw(st.booleans()), draw(trees(depth + 1)),
                draw(trees(depth + 1)))  # fmt: skip
    return ("leaf", draw(st.integers(0, len(FILTERS) - 1)), draw(st.booleans()))


@st.composite
def edited(draw: st.DrawFn, tree: Tree) -> Tree:
    """The tree with one small change: a negation, a connector, a lookup, or a subtree."""
    if tree[0] == "node" and draw(st.booleans()):
        _, connector, negated, left, right = tree
        if draw(st.booleans()):
            return ("node", connector, negated, draw(edited(left)), right)
        return ("node", connector, negated, left, draw(edited(right)))
    change = draw(st.sampled_from(["negation", "connector", "lookup", "subtree"]))
    if change == "negation":
        return (*tree[:2], not tree[2], *tree[3:])
    if change == "connector" and tree[0] == "node":
        return ("node", draw(st.sampled_from("&|^")), *tree[2:])
    if change == "lookup" and tree[0] == "leaf":
        return ("leaf", draw(st.integers(0, len(FILTERS) - 1)), tree[2])
    return draw(trees(1))


@dataclass(frozen=True)
class Recipe:
    filters: tuple[Tree, ...]
    related: tuple[str, ...] | None
    ordering: tuple[str, ...]
    reverse: bool
    distinct: bool
    columns: str | None
    window: tuple[int | None, int | None]


@st.composite
def recipes(draw: st.DrawFn) -> Recipe:
    return Recipe(
        filters=tuple(draw(st.lists(trees(), max_size=2))),
        related=draw(st.sampled_from(RELATED)),
        ordering=draw(st.sampled_from(ORDERINGS)),
        reverse=draw(st.booleans()),
        distinct=draw(st.booleans()),
        columns=draw(st.sampled_from(COLUMNS)),
        window=draw(st.sampled_from(SLICES)),
    )


@st.composite
def variants(draw: st.DrawFn, recipe: Recipe) -> Recipe:
    """The recipe, or the recipe with one part changed: near-duplicates of one query."""
    # Mostly the conditions, where most of the ways to be wrongly equal are.
    part = draw(st.sampled_from(["none", "none", "filters", "filters", "filters", "filters",
                                 "related", "ordering", "reverse", "distinct", "columns",
                                 "window"]))  # fmt: skip
    if part == "filters" and recipe.filters:
        index = draw(st.integers(0, len(recipe.filters) - 1))
        filters = list(recipe.filters)
        filters[index] = draw(edited(filters[index]))
        return dataclasses.replace(recipe, filters=tuple(filters))
    if part in ("reverse", "distinct"):
        return dataclasses.replace(recipe, **{part: not getattr(recipe, part)})
    pools: dict[str, list[Any]] = {
        "related": RELATED,
        "ordering": ORDERINGS,
        "columns": COLUMNS,
        "window": SLICES,
    }
    if part in pools:
        return dataclasses.replace(recipe, **{part: draw(st.sampled_from(pools[part]))})
    return recipe


def condition(tree: Tree, draw: st.DrawFn) -> Q:
    """The Q of a tree, with lookup values drawn afresh: equal trees, other values."""
    if tree[0] == "leaf":
        name, values = FILTERS[tree[1]]
        q = Q(**{name: draw(st.sampled_from(values))})
    else:
        left, right = condition(tree[3], draw), condition(tree[4], draw)
        q = {"&": left & right, "|": left | right, "^": left ^ right}[tree[1]]
    return ~q if tree[2] else q


def cook(recipe: Recipe, draw: st.DrawFn) -> QuerySet[Any]:
    queryset = Book.objects.all()
    for tree in recipe.filters:
        q = condition(tree, draw)
        filtered = built(queryset.filter, q)
        queryset = queryset if filtered is None else filtered
    if recipe.related is not None:
        related = recipe.related
        queryset = queryset.select_related(*related) if related else every_relation(queryset)
    if recipe.ordering:
        queryset = queryset.order_by(*recipe.ordering)
    if recipe.reverse:
        queryset = queryset.reverse()
    if recipe.distinct:
        queryset = queryset.distinct()
    if recipe.columns == "only":
        queryset = queryset.only("title")
    elif recipe.columns == "defer":
        queryset = queryset.defer("summary")
    elif recipe.columns == "values":
        queryset = queryset.values("title", "author__name")
    elif recipe.columns == "values_list":
        queryset = queryset.values_list("id", flat=True)
    low, high = recipe.window
    if high is not None:
        queryset = queryset[low:high]
    return queryset


def built(make: Callable[..., QuerySet[Any]], *args: Any, **kwargs: Any) -> QuerySet[Any] | None:
    try:
        return make(*args, **kwargs)
    except (FieldError, ValueError, TypeError):  # Django refuses to build it
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_generated_near_duplicates_keep_the_contract(data: st.DataObject) -> None:
    recipe = data.draw(recipes())
    found = []
    for index in range(data.draw(st.integers(2, 24))):
        queryset = cook(data.draw(variants(recipe)), data.draw)
        found.extend(entries(queryset, f"#{index}"))
    assert_contract(found)


def test_every_generated_filter_value_builds_or_is_refused() -> None:
    """The pools hold values Django accepts for some lookups, so the property has material."""
    accepted = sum(
        built(Book.objects.filter, **{name: value}) is not None
        for name, values in FILTERS
        for value in values
    )
    assert accepted >= 40


def filtered_on(field: models.Field[Any, Any], value: object) -> QuerySet[Any]:
    """Book filtered on a field it does not declare (compiling is not needed)."""
    field.set_attributes_from_name("summary")
    field.model = Book
    lookup = field.get_lookup("exact")
    assert lookup is not None
    queryset = Book.objects.all()
    queryset.query.where.add(lookup(field.get_col("testapp_book"), value), "AND")
    return queryset


def test_a_field_of_an_unknown_type_is_left_to_the_compiler() -> None:
    class Custom(models.TextField):  # type: ignore[type-arg]
        """Might prepare values into SQL of its own."""

    assert query_shape(filtered_on(models.TextField(), "x").query) is not None
    assert query_shape(filtered_on(Custom(), "x").query) is None


def test_aware_times_are_left_to_the_compiler() -> None:
    """Equal aware times of other offsets are different values to a time column."""
    naive, aware = datetime.time(1), datetime.time(1, tzinfo=datetime.UTC)
    assert query_shape(filtered_on(models.TimeField(), naive).query) is not None
    assert query_shape(filtered_on(models.TimeField(), aware).query) is None
