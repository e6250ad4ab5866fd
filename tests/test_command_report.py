"""``dbperf_report``: the statistics store reported from real recorded requests, the --view and
--since scopes, the --fail-on CI gate, and what it says when something is missing."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection
from django.test import Client, override_settings

from django_dbperf import stats
from django_dbperf.stats import histogram
from django_dbperf.stats.flusher import FLUSHER
from django_dbperf.stats.models import (
    FindingStat,
    QueryShape,
    QueryShapeHour,
    QueryShapeSearch,
    QueryShapeSite,
    StoreCounter,
    ViewStat,
)
from tests.helpers import assert_served_from_the_cache, make_library
from tests.test_middleware import MIDDLEWARE

# The flusher writes on a connection of its own: the data must be committed to be seen.
pytestmark = pytest.mark.django_db(transaction=True)

AUTHOR_BY_ID = 'FROM "testapp_author" WHERE "testapp_author"."id"'
DAYS_AGO = dt.timedelta(days=3)


@pytest.fixture(autouse=True)
def middleware_and_buffer() -> Iterator[None]:
    FLUSHER.buffer.take()
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        yield
    FLUSHER.buffer.take()


def record(client: Client, *paths: str) -> None:
    """Sampled requests to ``paths`` through the middleware, written to the store."""
    for path in paths:
        assert client.get(path).status_code == 200
    assert stats.flush().written


@pytest.fixture
def recorded(client: Client) -> QueryShape:
    """Two requests of the N+1 view: the author lookup runs once per book (6 books)."""
    make_library(authors=3, books_per_author=2)
    record(client, "/testapp/n-plus-one/", "/testapp/n-plus-one/")
    return QueryShape.objects.get(sql__contains=AUTHOR_BY_ID)


def report(*args: str) -> str:
    out = StringIO()
    call_command("dbperf_report", *args, stdout=out)
    return out.getvalue()


def report_data(*args: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(report("--format", "json", *args))
    return data


def move_to_the_past() -> None:
    """Everything recorded so far happened DAYS_AGO, as far as the store knows."""
    then = dt.datetime.now(dt.UTC) - DAYS_AGO
    QueryShapeHour.objects.update(hour=then.replace(minute=0, second=0, microsecond=0))
    FindingStat.objects.update(first_seen=then, last_seen=then)
    ViewStat.objects.update(first_seen=then, last_seen=then)


# --- what it reports ----------------------------------------------------------------------------


def test_the_text_report_lists_statements_views_and_nplusone_sites_with_their_fix(
    recorded: QueryShape,
) -> None:
    text = report()
    costliest = QueryShape.objects.order_by("-total_ms").first()
    assert costliest is not None
    assert f"  1. {costliest.fingerprint_id}  " in text
    assert recorded.fingerprint_id in text and "12 calls" in text
    assert "at tests/testapp/views.py:" in text and "views: n_plus_one" in text
    assert "  1. n_plus_one  " in text  # the slowest view
    assert "N+1 sites: 1." in text
    assert "testapp.Book.author at tests/testapp/views.py:" in text
    assert 'fix: add .select_related("author") to the Book queryset' in text
    assert "No statistics yet" not in text


def test_the_json_report_has_the_stores_numbers(recorded: QueryShape) -> None:
    data = report_data("--top", "2")
    assert data["database"] == "default" and data["since_days"] is None
    assert len(data["shapes"]) == 2
    assert data["shapes"][0]["total_ms"] >= data["shapes"][1]["total_ms"]
    author = next(s for s in data["shapes"] if s["fingerprint_id"] == recorded.fingerprint_id)
    assert author["calls"] == recorded.calls == 12
    assert author["total_ms"] == pytest.approx(recorded.total_ms)
    assert author["p95_ms"] == pytest.approx(recorded.p95_ms)
    assert author["nplusone_findings"] == 2  # both requests
    assert author["callsites"][0]["name"].startswith("tests/testapp/views.py:")
    assert author["views"] == [
        {"name": "n_plus_one", "total_ms": pytest.approx(author["total_ms"])}
    ]
    (site,) = data["nplusone"]
    assert site["subject"] == "testapp.Book.author" and site["view"] == "n_plus_one"
    assert site["occurrences"] == 2 and site["queries"] == 12
    assert dt.datetime.fromisoformat(site["last_seen"]) == FindingStat.objects.get().last_seen
    assert "select_related" in site["suggestion"]
    assert [view["view"] for view in data["views"]] == ["n_plus_one"]
    assert data["nplusone_total"] == 1 and data["unavailable"] is None


def test_view_restricts_statements_and_findings_to_that_view(
    recorded: QueryShape, client: Client
) -> None:
    record(client, "/testapp/duplicates/")
    count = QueryShape.objects.get(sql__startswith="SELECT COUNT(*)")
    data = report_data("--view", "duplicates")
    assert [shape["fingerprint_id"] for shape in data["shapes"]] == [count.fingerprint_id]
    assert data["shapes"][0]["duplicate_findings"] == 1
    assert data["nplusone"] == [] and data["nplusone_total"] == 0
    assert [view["view"] for view in data["views"]] == ["duplicates"]
    # The view's own share of a shape: its (view, line) rows.
    n_plus_one = report_data("--view", "n_plus_one")
    shapes = {shape["fingerprint_id"]: shape for shape in n_plus_one["shapes"]}
    assert count.fingerprint_id not in shapes
    assert shapes[recorded.fingerprint_id]["calls"] == 12
    assert n_plus_one["nplusone_total"] == 1


def test_since_counts_only_the_hours_in_the_window(recorded: QueryShape, client: Client) -> None:
    move_to_the_past()
    record(client, "/testapp/n-plus-one/", "/testapp/duplicates/")
    recent = QueryShapeHour.objects.get(shape=recorded, hour__gt=dt.datetime.now(dt.UTC) - DAYS_AGO)
    last_day = report_data("--since", "1")
    shapes = {shape["fingerprint_id"]: shape for shape in last_day["shapes"]}
    assert shapes[recorded.fingerprint_id]["calls"] == 6  # one request of the three
    assert shapes[recorded.fingerprint_id]["total_ms"] == pytest.approx(recent.total_ms)
    expected = histogram.percentile(histogram.from_json(recent.histogram), 0.95, recent.max_ms)
    assert shapes[recorded.fingerprint_id]["p95_ms"] == pytest.approx(expected)
    week = report_data("--since", "7")
    shapes = {shape["fingerprint_id"]: shape for shape in week["shapes"]}
    assert shapes[recorded.fingerprint_id]["calls"] == 18
    assert shapes[recorded.fingerprint_id]["p95_ms"] == pytest.approx(
        QueryShape.objects.get(pk=recorded.pk).p95_ms
    )
    assert any("View totals are all-time" in note for note in last_day["notes"])


def test_since_leaves_out_shapes_findings_and_views_older_than_the_window(
    recorded: QueryShape, client: Client
) -> None:
    move_to_the_past()
    record(client, "/testapp/duplicates/")
    data = report_data("--since", "1")
    assert recorded.fingerprint_id not in {shape["fingerprint_id"] for shape in data["shapes"]}
    assert data["nplusone"] == [] and data["nplusone_total"] == 0
    assert [view["view"] for view in data["views"]] == ["duplicates"]
    report("--since", "1", "--fail-on", "nplusone")  # no N+1 in the window: passes
    assert report_data("--since", "5")["nplusone_total"] == 1


def test_the_cache_hit_ratio_shows_only_when_caching_is_configured(
    recorded: QueryShape,
) -> None:
    assert report_data()["cache"] is None
    assert "Cached querysets" not in report()


def test_the_cache_hit_ratio_counts_cached_reads(recorded: QueryShape, cache_alias: str) -> None:
    assert_served_from_the_cache(list)  # one miss, then one hit
    cache = report_data()["cache"]
    assert cache["hits"] >= 1 and cache["misses"] >= 1 and 0 < cache["ratio"] < 1
    assert "Cached querysets: " in report() and "hit ratio" in report()


# --- the CI gate --------------------------------------------------------------------------------


def test_fail_on_nplusone_exits_non_zero_naming_the_site(recorded: QueryShape) -> None:
    with pytest.raises(
        CommandError, match=r"nplusone: 1 N\+1 site\(s\) \(all time\), e\.g\. "
    ) as failed:
        report("--fail-on", "nplusone")
    assert failed.value.returncode == 1
    assert "testapp.Book.author at tests/testapp/views.py:" in str(failed.value)


def test_fail_on_nplusone_passes_without_nplusone(client: Client) -> None:
    make_library(authors=2, books_per_author=1)
    record(client, "/testapp/clean/", "/testapp/duplicates/")
    assert "N+1 sites: 0, none." in report("--fail-on", "nplusone")


def test_fail_on_slow_uses_slow_query_ms(recorded: QueryShape) -> None:
    failing = r"2 check\(s\) failed: slow: 2 statement shape\(s\) with p95 >= 0 ms .*; nplusone"
    with (
        override_settings(DBPERF={"SLOW_QUERY_MS": 0}),
        pytest.raises(CommandError, match=failing),
    ):
        report("--fail-on", "slow,nplusone")
    with override_settings(DBPERF={"SLOW_QUERY_MS": 60_000}):
        assert "Slow statements (p95 >= 60000 ms, SLOW_QUERY_MS): none." in report(
            "--fail-on", "slow"
        )


def test_index_kinds_fail_when_index_health_cannot_be_read(recorded: QueryShape) -> None:
    if connection.vendor == "postgresql":
        pytest.skip("index health is available on PostgreSQL")
    with pytest.raises(CommandError, match=r"invalid-index: not checked: .*needs PostgreSQL"):
        report("--fail-on", "invalid-index")


def test_fail_on_invalid_index_on_postgresql(recorded: QueryShape, postgres: None) -> None:
    assert report_data()["indexes"]["available"] is True
    report("--fail-on", "invalid-index,unused-index")  # the test tables are healthy and small
    # A unique index built concurrently over duplicates fails and stays, INVALID.
    try:
        with (
            connection.cursor() as cursor,
            pytest.raises(IntegrityError, match="could not create unique index"),
        ):
            cursor.execute(
                "CREATE UNIQUE INDEX CONCURRENTLY dbperf_report_invalid ON testapp_review (rating)"
            )
        with pytest.raises(CommandError, match=r"invalid-index: 1 invalid index") as failed:
            report("--fail-on", "invalid-index")
        assert failed.value.returncode == 1
        assert report_data()["indexes"]["counts"]["invalid"] == 1
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX IF EXISTS dbperf_report_invalid")


# --- what is missing ----------------------------------------------------------------------------


def test_an_empty_store_says_how_to_fill_it() -> None:
    text = report()
    assert "No statistics yet: DBPERF['STATS']['ENABLED'] is on" in text
    assert "QueryCountMiddleware" in text and "Statements by total time:\n  none recorded." in text
    with override_settings(DBPERF={"STATS": {"ENABLED": False}}):
        assert "enable DBPERF['STATS']['ENABLED'] (it is False)" in report()
    report("--fail-on", "nplusone,slow")  # nothing recorded, nothing failed


def test_on_sqlite_index_health_needs_postgresql(recorded: QueryShape) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite pass")
    text = report()
    assert "Index health on 'default': not available. Database health needs PostgreSQL" in text
    assert report_data()["indexes"] == {
        "available": False,
        "reason": "Database health needs PostgreSQL; this database is sqlite "
        "(--database chooses the database).",
        "counts": {},
    }


@pytest.mark.django_db(transaction=False)
def test_missing_tables_say_run_migrate() -> None:
    # Dropped in the test's transaction, which is rolled back after it.
    with connection.cursor() as cursor:
        for model in (QueryShapeSearch, QueryShapeHour, QueryShapeSite, QueryShape, ViewStat,
                      FindingStat, StoreCounter):  # fmt: skip
            table = connection.ops.quote_name(model._meta.db_table)
            cascade = " CASCADE" if connection.vendor == "postgresql" else ""
            cursor.execute(f"DROP TABLE {table}{cascade}")
    text = report()
    assert "The statistics tables are missing from the database 'default'" in text
    assert "run migrate (python manage.py migrate django_dbperf --database default)" in text
    assert report_data()["unavailable"].startswith("The statistics tables are missing")
    with pytest.raises(CommandError, match="nplusone: not checked: The statistics tables"):
        report("--fail-on", "nplusone")


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--top", "0"], r"--top must be at least 1, not 0"),
        (["--since", "0"], r"--since is a number of days from 1 to 36500, not 0"),
        (["--since", "99999999"], r"--since is a number of days from 1 to 36500, not 99999999"),
        (["--database", "elsewhere"], r"Unknown database 'elsewhere': use one of default, other"),
        (
            ["--fail-on", "nplusone,flaky"],
            r"Unknown --fail-on kind\(s\) flaky: use a comma-separated list of nplusone, slow, "
            r"invalid-index, unused-index",
        ),
        (["--fail-on", ","], r"No kind: use a comma-separated list of nplusone"),
    ],
)
def test_bad_arguments_are_command_errors(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message) as error:
        report(*args)
    assert error.value.returncode == 1


def test_an_unknown_view_lists_known_ones(recorded: QueryShape) -> None:
    with pytest.raises(CommandError, match=r"Unknown view 'n_plus_on' \(--view\).*'n_plus_one'"):
        report("--view", "n_plus_on")
    with pytest.raises(CommandError, match=r"Unknown view 'nothing' \(--view\).*'n_plus_one'"):
        report("--view", "nothing")


def test_an_unknown_view_in_an_empty_store() -> None:
    with pytest.raises(CommandError, match=r"Unknown view 'x' \(--view\): the store has no views"):
        report("--view", "x")
