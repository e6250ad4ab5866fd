"""pg_stat_statements tied to Django code: each shape's queryid, learnt by EXPLAIN (VERBOSE),
matches the extension's row; the extension is read by differences and never reset."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection

from django_dbperf import capture_queries, stats
from django_dbperf.stats import pg_statements
from django_dbperf.stats.flusher import FLUSHER
from django_dbperf.stats.models import PgStatement, PgStatementHour, QueryShape
from tests.helpers import make_library
from tests.testapp.models import Book

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pg_stat_statements"),
]


@pytest.fixture(autouse=True)
def empty_buffer() -> Iterator[None]:
    FLUSHER.buffer.take()
    yield
    FLUSHER.buffer.take()


def extension_rows(fragment: str) -> list[tuple[int, int]]:
    """(queryid, calls) of the extension's rows whose text contains ``fragment``."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT queryid, calls FROM pg_stat_statements WHERE query LIKE %s "
            "AND query NOT LIKE 'EXPLAIN%%' AND toplevel AND dbid = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
            [f"%{fragment}%"],
        )
        return list(cursor.fetchall())


def test_a_shape_learns_the_queryid_of_its_pg_stat_statements_row() -> None:
    make_library(authors=2, books_per_author=2)
    with capture_queries() as captured:
        list(Book.objects.filter(pages__gte=3, title__startswith="Book"))
    stats.record_request(captured.queries, [], view="books", sample_rate=1.0)
    assert stats.flush().written
    shape = QueryShape.objects.get(sql__contains="testapp_book")
    list(Book.objects.filter(pages__gte=700, title__startswith="Other"))  # other constants
    rows = extension_rows('"testapp_book"."pages" >=')
    assert shape.queryid_note == "" and shape.queryid is not None
    assert shape.queryid in {queryid for queryid, _ in rows}


# A statement no other test runs: its pg_stat_statements row is this test's alone.
WATCHED = '"testapp_book"."summary" AS "summary", "testapp_book"."pages" AS "pages" FROM'


def run_watched(times: int) -> None:
    for pages in range(times):
        list(Book.objects.filter(pages=pages).values_list("summary", "pages"))


def test_statements_are_read_by_differences_and_never_reset() -> None:
    make_library(authors=1, books_per_author=1)
    run_watched(1)  # the extension has a row for it before the baseline
    assert pg_statements.snapshot("default", "default") is not None  # the baseline
    run_watched(5)
    assert pg_statements.snapshot("default", "default")
    ((queryid, calls_before),) = extension_rows(WATCHED)
    # With track = all, the same statement run inside a function is a row of its own.
    watched = PgStatement.objects.get(queryid=queryid, toplevel=True)
    assert watched.calls == 5  # grown since the baseline, not the extension's lifetime total
    assert PgStatementHour.objects.get(statement=watched).calls == 5

    run_watched(3)
    pg_statements.snapshot("default", "default")
    watched.refresh_from_db()
    assert watched.calls == 8
    ((_, calls_after),) = extension_rows(WATCHED)
    assert calls_after == calls_before + 3  # the extension was not reset


def test_a_recent_reading_by_any_process_skips_the_next() -> None:
    assert pg_statements.snapshot("default", "default", min_interval_s=3600) is not None
    assert pg_statements.snapshot("default", "default", min_interval_s=3600) is None
