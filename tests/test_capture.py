"""capture_queries(): exact counts, what each record holds, nesting, aliases, threads and async."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from django_dbperf import capture_queries
from django_dbperf.capture import ignoring_queries, is_capturing
from tests.helpers import line_of
from tests.testapp.models import Author, Book, Tag

pytestmark = pytest.mark.django_db


def test_counts_exactly_what_django_counts() -> None:
    Author.objects.create(name="A")
    with CaptureQueriesContext(connection) as django_count, capture_queries() as captured:
        list(Author.objects.all())
        Author.objects.filter(name="A").exists()
        Author.objects.create(name="B")
    assert len(captured) == len(django_count) == 3
    assert [q.fingerprint.split()[0] for q in captured] == ["SELECT", "SELECT", "INSERT"]


def test_each_record_has_sql_params_alias_time_and_callsite() -> None:
    with capture_queries() as captured:
        Author.objects.filter(name="Ann").first()  # record-fields
    (query,) = captured.queries
    assert '"testapp_author"' in query.sql
    assert list(query.params) == ["Ann"]
    assert query.alias == "default"
    assert query.many is False
    assert query.duration > 0
    assert captured.total_ms == pytest.approx(query.duration * 1000)
    assert query.callsite is not None
    assert query.callsite.path == __file__
    assert str(query.callsite) == line_of(__file__, "record-fields")
    assert query.callsite.function == "test_each_record_has_sql_params_alias_time_and_callsite"
    assert query.fingerprint.endswith(
        'WHERE "testapp_author"."name" = ? ORDER BY "testapp_author"."id" ASC LIMIT ?'
    )
    assert captured.captured_queries[0]["sql"] == query.sql


def test_executemany_is_one_record_marked_many() -> None:
    with capture_queries() as captured, connection.cursor() as cursor:
        cursor.executemany("INSERT INTO testapp_tag (name) VALUES (%s)", [("a",), ("b",)])
    assert [q.many for q in captured] == [True]
    assert Tag.objects.count() == 2


def test_nested_captures_each_see_their_own_queries() -> None:
    with capture_queries() as outer:
        Author.objects.count()
        with capture_queries() as inner:
            Book.objects.count()
        Tag.objects.count()
    assert len(inner) == 1 and "testapp_book" in inner[0].sql
    assert len(outer) == 3


def test_nothing_is_recorded_outside_a_capture() -> None:
    with capture_queries() as captured:
        pass
    Author.objects.count()
    assert len(captured) == 0
    assert not is_capturing()


@pytest.mark.django_db(databases=["default", "other"])
def test_using_limits_the_capture_to_some_aliases() -> None:
    with capture_queries() as everything, capture_queries(using="other") as other_only:
        Author.objects.count()
        Author.objects.using("other").count()
    assert [q.alias for q in everything] == ["default", "other"]
    assert [q.alias for q in other_only] == ["other"]


def test_ignoring_queries_hides_bookkeeping() -> None:
    with capture_queries() as captured:
        with ignoring_queries():
            Author.objects.count()
        Book.objects.count()
    assert len(captured) == 1 and "testapp_book" in captured[0].sql


def test_djangos_assert_num_queries_still_sees_every_query(
    django_assert_num_queries: object,
) -> None:
    with capture_queries() as captured, django_assert_num_queries(2):  # type: ignore[operator]
        Author.objects.count()
        Book.objects.count()
    assert len(captured) == 2


@pytest.mark.django_db(transaction=True)
def test_an_open_execute_wrapper_block_survives_a_new_connection() -> None:
    # The capture wrapper is installed when a connection opens; a user's wrapper block that is
    # open at that moment must still remove its own wrapper, not ours.
    seen: list[str] = []

    def spy(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        seen.append(sql)
        return execute(sql, params, many, context)

    connection.close()
    with connection.execute_wrapper(spy):
        Author.objects.count()
    assert spy not in connection.execute_wrappers
    with capture_queries() as captured:
        Author.objects.count()
    assert len(seen) == 1 and len(captured) == 1


@pytest.mark.django_db(transaction=True)
def test_queries_of_sync_to_async_worker_threads_are_captured() -> None:
    Author.objects.create(name="A")

    async def view() -> int:
        count = await Author.objects.acount()
        names = [author.name async for author in Author.objects.all()]
        await sync_to_async(connections.close_all)()  # the worker thread's connection
        return count + len(names)

    with capture_queries() as captured:
        assert asyncio.run(view()) == 2
    assert len(captured) == 2
    # The worker thread's stack does not reach the coroutine, so the line is unknown.
    assert [q.callsite for q in captured] == [None, None]


@pytest.mark.django_db(transaction=True)
def test_a_capture_entered_inside_a_coroutine_sees_the_async_orm() -> None:
    Author.objects.create(name="A")

    def count_books() -> int:
        try:
            return Book.objects.count()
        finally:
            connections.close_all()

    async def view() -> int:
        with capture_queries() as captured:
            await Author.objects.acount()
            await sync_to_async(count_books, thread_sensitive=False)()
        await sync_to_async(connections.close_all)()
        return len(captured)

    assert asyncio.run(view()) == 2


@pytest.mark.django_db(transaction=True)
def test_other_threads_are_not_mixed_into_a_capture() -> None:
    def elsewhere() -> None:
        Author.objects.count()
        connections.close_all()

    with capture_queries() as captured:
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        Book.objects.count()
    assert [q.sql.count("testapp_book") for q in captured] == [1]


@pytest.mark.django_db(transaction=True)
def test_postgres_type_lookups_of_a_new_connection_are_not_counted(postgres: None) -> None:
    from django.contrib.postgres.signals import get_citext_oids, get_hstore_oids

    seen: list[str] = []

    def spy(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        seen.append(sql)
        return execute(sql, params, many, context)

    Author.objects.count()  # the capture wrapper is on this connection from now on
    connection.close()
    # The lookups are cached per process: forget them so the reconnect runs them again.
    get_hstore_oids.cache_clear()
    get_citext_oids.cache_clear()
    with connection.execute_wrapper(spy), capture_queries() as captured:
        Author.objects.count()  # reconnects: contrib.postgres looks up type OIDs first
    assert len(captured) == 1
    assert any("typarray" in sql for sql in seen) and len(seen) > 1


def test_a_failing_capture_never_fails_the_query(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from django_dbperf.capture import recorder

    def broken(skip: int = 1) -> None:
        raise RuntimeError("capture bug")

    Author.objects.create(name="A")
    monkeypatch.setattr(recorder, "inspect_stack", broken)
    with capture_queries() as captured:
        assert Author.objects.count() == 1
    assert len(captured) == 0
    assert "could not record a query; it ran normally" in caplog.text
