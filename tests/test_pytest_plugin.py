"""The pytest plugin, run on small test files in a separate pytest process."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent

HEADER = """
import pytest
from tests.helpers import make_library
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db

@pytest.fixture
def library():
    make_library(authors=3, books_per_author=2)

def lazy():
    return [book.author.name for book in Book.objects.all()]

def eager():
    return [book.author.name for book in Book.objects.select_related("author")]
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    # The inner run uses SQLite in memory, whatever database the outer run has.
    monkeypatch.delenv("DBPERF_TEST_DATABASE_URL", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))

    def run(body: str) -> pytest.RunResult:
        pytester.makepyfile(test_inner=HEADER + body)
        return pytester.runpytest_subprocess("--ds=tests.settings", "-p", "no:cacheprovider")

    return run


def test_plugin_is_registered_by_entry_point(run) -> None:  # type: ignore[no-untyped-def]
    result = run("")
    result.stdout.fnmatch_lines(["*plugins:*dbperf*"])


def test_marker_enforces_max_queries(run) -> None:  # type: ignore[no-untyped-def]
    result = run(
        """
@pytest.mark.dbperf(max_queries=1)
def test_eager(library):
    eager()

@pytest.mark.dbperf(max_queries=1)
def test_lazy(library):
    lazy()
"""
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*[[]dbperf marker[]] 7 queries executed, at most 1 expected*",
            "*N+1 on testapp.Book.author*",
        ]
    )


def test_marker_forbids_n_plus_one_but_not_fixture_queries(run) -> None:  # type: ignore[no-untyped-def]
    result = run(
        """
@pytest.mark.dbperf(nplusone="forbid")
def test_eager(library):
    eager()

@pytest.mark.dbperf(nplusone="forbid")
def test_lazy(library):
    lazy()

@pytest.mark.dbperf(nplusone="allow")
def test_allowed(library):
    lazy()
"""
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*1 N+1 query found*", '*select_related("author")*'])


def test_marker_rejects_bad_arguments(run) -> None:  # type: ignore[no-untyped-def]
    result = run(
        """
@pytest.mark.dbperf(nplusone="maybe")
def test_bad(library):
    eager()
"""
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*nplusone= must be 'forbid' or 'allow', not 'maybe'*"])


def test_fixture_checks(run) -> None:  # type: ignore[no-untyped-def]
    result = run(
        """
from tests.testapp.models import Author

def add_books(n):
    author = Author.objects.create(name="x")
    Book.objects.bulk_create(Book(title=str(i), author=author) for i in range(n))

def test_max_queries(dbperf, library):
    with dbperf.max_queries(1):
        eager()

def test_no_nplusone_fails(dbperf, library):
    with dbperf.no_nplusone():
        lazy()

def test_no_duplicates_fails(dbperf, library):
    with dbperf.no_duplicates():
        Book.objects.count()
        Book.objects.count()

def test_constant_passes(dbperf):
    dbperf.queries_constant(eager, setup=add_books)

def test_constant_fails(dbperf):
    dbperf.queries_constant(lazy, setup=add_books, sizes=(1, 4))

def test_capture(dbperf, library):
    with dbperf.capture() as captured:
        lazy()
    assert len(captured) == 7 and captured.n_plus_one
"""
    )
    result.assert_outcomes(passed=3, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*FAILED test_inner.py::test_no_nplusone_fails*",
            "*FAILED test_inner.py::test_no_duplicates_fails*",
            "*FAILED test_inner.py::test_constant_fails*",
        ],
        consecutive=False,
    )
    result.stdout.fnmatch_lines(["*grows with the data (1 rows: 2 queries, 4 rows: 5 queries)*"])


MIDDLEWARE_BODY = """
MIDDLEWARE = ["django_dbperf.middleware.QueryCountMiddleware"]

@pytest.fixture
def with_middleware(settings):
    settings.MIDDLEWARE = MIDDLEWARE
"""


def test_failures_print_findings_once_and_queries_by_shape(run) -> None:  # type: ignore[no-untyped-def]
    result = run(
        MIDDLEWARE_BODY
        + """
@pytest.mark.dbperf(nplusone="forbid")
def test_marker(library, with_middleware, client):
    client.get("/testapp/n-plus-one/")

def test_fixture(library, with_middleware, client, dbperf):
    with dbperf.no_nplusone():
        client.get("/testapp/n-plus-one/")
"""
    )
    result.assert_outcomes(failed=2)
    # The failure sections; pytest's own short summary repeats whole messages when CI is set.
    output = result.stdout.str().split("short test summary info")[0]
    # Once per failing test: the middleware does not log the findings the assertion prints.
    assert output.count("N+1 on testapp.Book.author: 6 queries") == 2
    assert output.count("fix: add .select_related") == 2
    assert "Captured log" not in output and "Captured stderr" not in output
    result.stdout.fnmatch_lines(
        [
            "*[[]dbperf marker[]] 1 N+1 query found",
            "Findings:",
            "1. N+1 on testapp.Book.author: 6 queries of the same shape from *views.py:*",
            "Queries by shape, most frequent first:",
            '  6x SELECT "testapp_author"."id", * FROM "testapp_author" WHERE *',
            "     shape * from *views.py:*",
            '  1x SELECT "testapp_book"."id", "testapp_book"."title", ... (7 columns) FROM *',
            "Total: 7 queries of 2 shapes, * ms.",
        ]
    )


def test_findings_are_still_logged_outside_the_assertions(run) -> None:  # type: ignore[no-untyped-def]
    result = run(
        MIDDLEWARE_BODY
        + """
def test_unasserted(library, with_middleware, client):
    client.get("/testapp/n-plus-one/")
    assert False, "fail to show the captured log"
"""
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*Captured log call*", "WARNING *django_dbperf*N+1 on testapp.Book.author: 6 queries*"]
    )
