"""The real servers the suite runs against have what later features rely on.

These run on the PostgreSQL + Redis pass (``python -m tests.servers -- pytest``); elsewhere
they are skipped with the reason, and in CI (DBPERF_REQUIRE_SERVERS=1) they fail instead.
"""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.db import connection

from tests.testapp.models import Author, Book


@pytest.mark.django_db
def test_hypopg_hypothetical_index_changes_the_plan(hypopg: None) -> None:
    author = Author.objects.create(name="A")
    Book.objects.bulk_create(Book(title=f"t{i}", author=author, pages=i) for i in range(2000))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE testapp_book")
        query = "EXPLAIN SELECT * FROM testapp_book WHERE pages = 7"
        cursor.execute(query)
        before = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SELECT indexname FROM hypopg_create_index(%s)",
                       ["CREATE INDEX ON testapp_book (pages)"])  # fmt: skip
        (index_name,) = cursor.fetchone()
        cursor.execute(query)
        after = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SELECT hypopg_reset()")
    assert index_name not in before
    assert index_name in after


@pytest.mark.django_db(transaction=True)
def test_pg_stat_statements_records_the_queries_django_runs(pg_stat_statements: None) -> None:
    Author.objects.filter(name="pg_stat_statements probe").count()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT calls FROM pg_stat_statements WHERE query LIKE %s AND query LIKE %s",
            ['%"testapp_author"%', "%COUNT(*)%"],
        )
        rows = cursor.fetchall()
    assert rows and rows[0][0] >= 1


def test_redis_cache_round_trip(redis_cache: str) -> None:
    cache = caches[redis_cache]
    cache.set("dbperf:test", {"answer": 42}, timeout=30)
    assert cache.get("dbperf:test") == {"answer": 42}
    client = cache.client.get_client()  # type: ignore[attr-defined]
    assert client.ping() is True
