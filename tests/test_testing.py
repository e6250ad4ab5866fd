"""DbPerfTestMixin: each assertion passes on good code and fails, with a useful message, on bad."""

from __future__ import annotations

import hashlib
import re
import warnings

import pytest
from django.db import connection, transaction
from django.test import TestCase, TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext

from django_dbperf import capture_queries
from django_dbperf.analysis.summary import fingerprint_id, group_by_shape, shorten_sql
from django_dbperf.exceptions import NPlusOneError, NPlusOneWarning
from django_dbperf.testing import DbPerfTestMixin
from tests.helpers import line_of, make_library
from tests.testapp.models import Author, Book, DiffNote, DiffOwner, DiffSpecialItem

MIDDLEWARE = [
    "django_dbperf.middleware.QueryCountMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]


def titles_with_authors() -> list[str]:
    return [f"{book.title}/{book.author.name}" for book in Book.objects.all()]  # lazy-authors


def titles_with_authors_eager() -> list[str]:
    return [f"{b.title}/{b.author.name}" for b in Book.objects.select_related("author")]


def titles_query_shapes() -> list[str]:
    """The fingerprints of the books query and of the per-book author query, in that order."""
    with capture_queries() as captured:
        titles_with_authors()
    return [captured[0].fingerprint, captured[1].fingerprint]


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
        lazy = line_of(__file__, "lazy-authors")
        assert message.startswith(
            "7 queries executed, at most 3 expected\n"
            f"Findings:\n1. N+1 on testapp.Book.author: 6 queries of the same shape from {lazy}\n"
            '  fix: add .select_related("author")'
        )
        assert (
            "Queries by shape, most frequent first:\n"
            '  6x SELECT "testapp_author"."id", "testapp_author"."name", "testapp_author"."email"'
            ' FROM "testapp_author" WHERE "testapp_author"."id" = %s LIMIT 21\n'
            f"     shape {fingerprint_id(titles_query_shapes()[1])}; from {lazy}\n"
            '  1x SELECT "testapp_book"."id", "testapp_book"."title", ... (7 columns)'
            ' FROM "testapp_book"\n'
            f"     shape {fingerprint_id(titles_query_shapes()[0])}; from {lazy}\n"
            "Total: 7 queries of 2 shapes, "
        ) in message
        assert message.endswith(" ms.")

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
        assert message.startswith(
            "1 N+1 query found\nFindings:\n1. N+1 on testapp.Book.author: 6 queries of the same "
            f"shape from {line_of(__file__, 'lazy-authors')}\n"
        )
        assert message.count("N+1 on testapp.Book.author") == message.count("fix:") == 1

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
            "The number of queries grows with the data (2 rows: 9 queries, 10 rows: 17 queries)\n"
            "At 10 rows:\nFindings:\n1. N+1 on testapp.Book.author: 16 queries"
        )
        assert message.count("N+1 on testapp.Book.author") == 1
        # The shape that grew is marked with its growth; the one that did not is not.
        lazy = line_of(__file__, "lazy-authors")
        author, book = (fingerprint_id(shape) for shape in reversed(titles_query_shapes()))
        assert '\n  16x SELECT "testapp_author"' in message
        assert f"\n      +8 between 2 and 10 rows; shape {author}; from {lazy}\n" in message
        assert f"\n      shape {book}; from {lazy}\n" in message
        assert message.count("between 2 and 10 rows") == 1
        assert "Total: 17 queries of 2 shapes" in message

    def test_assert_queries_constant_rolls_back_each_size(self) -> None:
        before = Book.objects.count()
        self.assertQueriesConstant(Book.objects.count, sizes=(3, 5), setup=add_books)
        assert Book.objects.count() == before

    def test_assert_queries_constant_needs_setup_and_two_sizes(self) -> None:
        with pytest.raises(ValueError, match="needs setup="):
            self.assertQueriesConstant(Book.objects.count)
        with pytest.raises(ValueError, match="at least two sizes"):
            self.assertQueriesConstant(Book.objects.count, sizes=(3,), setup=add_books)

    def test_failure_groups_queries_by_shape_most_frequent_first(self) -> None:
        with self.assertRaises(AssertionError) as failure, self.assertMaxQueries(0):
            Author.objects.count()
            titles_with_authors()
            Author.objects.count()
        message = str(failure.exception)
        counts = re.findall(r"^ +(\d+)x (SELECT \S+)", message, re.MULTILINE)
        assert counts == [
            ("6", 'SELECT "testapp_author"."id",'),
            ("2", "SELECT COUNT(*)"),
            ("1", 'SELECT "testapp_book"."id",'),
        ]
        assert "\nTotal: 9 queries of 3 shapes, " in message

    def test_callsites_of_a_shape_are_listed_up_to_three(self) -> None:
        with self.assertRaises(AssertionError) as failure, self.assertMaxQueries(0):
            Author.objects.count()  # count-1
            Author.objects.count()  # count-2
            Author.objects.count()  # count-3
            Author.objects.count()  # count-4
            Author.objects.count()  # count-5
        lines = ", ".join(line_of(__file__, f"count-{n}") for n in (1, 2, 3))
        assert f"; from {lines} and 2 more\n" in str(failure.exception)


class WideQueryTests(DbPerfTestMixin, TestCase):
    def test_a_long_query_is_shortened_and_the_message_stays_short(self) -> None:
        owner = DiffOwner.objects.create(name="owner")
        for number in range(40):
            item = DiffSpecialItem.objects.create(name=str(number), owner=owner)
            DiffNote.objects.create(special=item, text=str(number))
        names = [str(number) for number in range(200)]
        notes = DiffNote.objects.select_related("special__owner", "special__sponsor")

        def load_each_note() -> None:
            for pk in DiffNote.objects.values_list("pk", flat=True):
                notes.filter(special__name__in=names).get(pk=pk)

        with capture_queries() as captured:
            load_each_note()
        assert len(captured) == 41 and len(captured[1].sql) > 2000
        with self.assertRaises(AssertionError) as failure:
            self.assertNoNPlusOne(load_each_note)
        message = str(failure.exception)
        assert len(message) < 1500  # the 41 queries in full are over 80,000 characters
        assert message.count("fix:") == 1
        (line,) = [line for line in message.splitlines() if line.startswith("  40x ")]
        assert len(line) <= len("  40x ") + 200
        assert line.startswith(
            '  40x SELECT "testapp_diffnote"."id", "testapp_diffnote"."special_id"'
        )
        assert '... (30 columns) FROM "testapp_diffnote"' in line
        assert ' ... WHERE ("testapp_diffitem"."name" IN (%s, %s, ... (200 values))' in line
        assert "\nTotal: 41 queries of 2 shapes, " in message


@override_settings(MIDDLEWARE=MIDDLEWARE)
class MiddlewareInsideAssertionTests(DbPerfTestMixin, TestCase):
    """The middleware leaves to an enclosing assertion the findings that assertion prints."""

    @classmethod
    def setUpTestData(cls) -> None:
        make_library(authors=3, books_per_author=2)

    def test_findings_are_logged_outside_an_assertion(self) -> None:
        with self.assertLogs("django_dbperf", "WARNING") as logs:
            self.client.get("/testapp/n-plus-one/")
        assert ["N+1 on testapp.Book.author" in line for line in logs.output] == [True]

    def test_findings_the_assertion_prints_are_not_logged_too(self) -> None:
        no_logs, fails = self.assertNoLogs("django_dbperf"), self.assertRaises(AssertionError)
        with no_logs, fails as failure, self.assertNoNPlusOne():
            self.client.get("/testapp/n-plus-one/")
        assert str(failure.exception).count("N+1 on testapp.Book.author") == 1
        with self.assertNoLogs("django_dbperf"), self.assertRaises(AssertionError):
            self.assertMaxQueries(3, self.client.get, "/testapp/n-plus-one/")
        with self.assertNoLogs("django_dbperf"), self.assertRaises(AssertionError):
            self.assertQueriesConstant(
                lambda: self.client.get("/testapp/n-plus-one/"), setup=add_books
            )

    def test_findings_the_assertion_would_not_print_are_still_logged(self) -> None:
        # assertNoNPlusOne does not print duplicates: the middleware still logs them.
        with self.assertLogs("django_dbperf", "WARNING") as logs, self.assertNoNPlusOne():
            self.client.get("/testapp/duplicates/")
        assert ["Duplicate query" in line for line in logs.output] == [True]

    @override_settings(DBPERF={"ON_NPLUSONE": "warn"})
    def test_warn_mode_does_not_warn_inside_the_assertion(self) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with self.assertRaises(AssertionError), self.assertNoNPlusOne():
                self.client.get("/testapp/n-plus-one/")
            assert not [w for w in caught if issubclass(w.category, NPlusOneWarning)]
            self.client.get("/testapp/n-plus-one/")
        assert [w for w in caught if issubclass(w.category, NPlusOneWarning)]

    @override_settings(DBPERF={"ON_NPLUSONE": "raise"})
    def test_raise_mode_still_fails_the_request(self) -> None:
        with self.assertRaises(NPlusOneError), self.assertNoNPlusOne():
            self.client.get("/testapp/n-plus-one/")


class CountsLikeDjangoTests(TestCase):
    """What docs/testing.rst says about counts next to assertNumQueries."""

    def test_savepoints_are_counted_by_both(self) -> None:
        with CaptureQueriesContext(connection) as django, capture_queries() as captured:
            with transaction.atomic():
                Author.objects.create(name="A")
            with self.assertRaises(ValueError), transaction.atomic():
                raise ValueError
        verbs = [query.sql.split()[0] for query in captured]
        assert verbs == ["SAVEPOINT", "INSERT", "RELEASE", "SAVEPOINT", "ROLLBACK", "RELEASE"]
        assert [query["sql"].split()[0] for query in django.captured_queries] == verbs


class CountsOutsideATransactionTests(TransactionTestCase):
    def test_begin_and_commit_are_counted_by_django_only(self) -> None:
        django, captured = CaptureQueriesContext(connection), capture_queries()
        with django, captured, transaction.atomic():
            Author.objects.create(name="A")
        assert [query["sql"].split()[0] for query in django.captured_queries] == [
            "BEGIN", "INSERT", "COMMIT",
        ]  # fmt: skip
        # SQLite's BEGIN is a statement Django executes; other backends begin in the driver.
        begin = ["BEGIN"] if connection.vendor == "sqlite" else []
        assert [query.sql.split()[0] for query in captured] == [*begin, "INSERT"]


# --- django_dbperf.analysis.summary ------------------------------------------------------------


def test_fingerprint_id_is_a_stable_short_hash() -> None:
    shape = 'SELECT "t"."id" FROM "t" WHERE "t"."id" = ?'
    assert fingerprint_id(shape) == hashlib.sha1(shape.encode()).hexdigest()[:12]


def test_short_sql_is_kept_as_it_is() -> None:
    sql = 'SELECT "a"."id", "a"."name", "a"."email" FROM "a" WHERE "a"."id" = %s LIMIT 21'
    assert shorten_sql(sql) == sql
    assert shorten_sql("SELECT  1\n  FROM t") == "SELECT 1 FROM t"


def test_long_select_lists_and_in_lists_are_collapsed() -> None:
    columns = ", ".join(f'"t"."c{n}"' for n in range(23))
    values = ", ".join(["%s"] * 300)
    sql = f'SELECT {columns} FROM "t" WHERE ("t"."a" = %s AND "t"."b" IN ({values}))'
    assert shorten_sql(sql) == (
        'SELECT "t"."c0", "t"."c1", ... (23 columns) FROM "t" '
        'WHERE ("t"."a" = %s AND "t"."b" IN (%s, %s, ... (300 values)))'
    )


def test_joins_give_way_before_from_and_where() -> None:
    columns = ", ".join(f'"t"."c{n}"' for n in range(10))
    joins = " ".join(
        f'LEFT OUTER JOIN "table_number_{n}" ON ("t"."ref_{n}_id" = "table_number_{n}"."id")'
        for n in range(3)
    )
    sql = f'SELECT {columns} FROM "t" {joins} WHERE "t"."id" = %s ORDER BY "t"."id" ASC'
    short = shorten_sql(sql)
    assert short.startswith('SELECT "t"."c0", "t"."c1", ... (10 columns) FROM "t" ')
    assert 'WHERE "t"."id" = %s' in short
    assert " ... " in short and len(short) <= 200


def test_insert_and_update_lists_are_collapsed() -> None:
    columns = ", ".join(f'"c{n}"' for n in range(20))
    row = "(" + ", ".join(["%s"] * 20) + ")"
    insert = f'INSERT INTO "t" ({columns}) VALUES {row}, {row}, {row} RETURNING "t"."id"'
    assert shorten_sql(insert) == (
        'INSERT INTO "t" ("c0", "c1", ... (20 columns)) VALUES (%s, %s, ... (20 values)), '
        '... (3 rows) RETURNING "t"."id"'
    )
    assignments = ", ".join(f'"c{n}" = %s' for n in range(20))
    update = f'UPDATE "t" SET {assignments} WHERE "t"."id" = %s'
    assert shorten_sql(update) == (
        'UPDATE "t" SET "c0" = %s, "c1" = %s, ... (20 columns) WHERE "t"."id" = %s'
    )


def test_what_is_still_too_long_is_cut_at_a_word() -> None:
    where = " OR ".join(f'"t"."column_{n}" = %s' for n in range(40))
    short = shorten_sql(f'SELECT "t"."id" FROM "t" WHERE {where}')
    assert len(short) <= 200 and short.endswith("= %s OR ...")
    assert short.startswith('SELECT "t"."id" FROM "t" WHERE "t"."column_0" = %s OR')


def test_keywords_inside_strings_and_names_are_not_clauses() -> None:
    columns = ", ".join(f'"t"."c{n}"' for n in range(30))
    sql = f'SELECT {columns}, \'a, FROM b\' AS "where" FROM "t" WHERE "t"."x" = \'y, z\''
    assert shorten_sql(sql) == (
        'SELECT "t"."c0", "t"."c1", ... (31 columns) FROM "t" WHERE "t"."x" = \'y, z\''
    )


@pytest.mark.django_db
def test_group_by_shape_counts_and_keeps_distinct_callsites() -> None:
    make_library(authors=3, books_per_author=2)
    with capture_queries() as captured:
        titles_with_authors()
        Book.objects.count()
    groups = group_by_shape(captured.queries)
    assert [group.count for group in groups] == [6, 1, 1]
    assert groups[0].example == captured[1].sql
    assert groups[0].callsites == (line_of(__file__, "lazy-authors"),)
    assert groups[0].id == fingerprint_id(captured[1].fingerprint)
    assert [group.fingerprint for group in groups[1:]] == [
        captured[0].fingerprint,
        captured[-1].fingerprint,
    ]
