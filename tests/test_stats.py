"""The statistics store: requests through the middleware become per-shape, per-hour and
per-(view, line) rows and findings; flushes add up across threads and processes; failures
keep the data; memory stays bounded."""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import Client, override_settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_dbperf import capture_queries, stats
from django_dbperf.capture import QueryRecord
from django_dbperf.stats import histogram, writer
from django_dbperf.stats.flusher import FLUSHER
from django_dbperf.stats.models import FindingStat, QueryShape, QueryShapeHour, QueryShapeSite
from tests.helpers import make_library, run_in_threads
from tests.test_middleware import MIDDLEWARE
from tests.testapp.models import Author, Book, Publisher, Tag

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def empty_buffer() -> Iterator[None]:
    """Other tests' requests went through the middleware too: start from an empty buffer (and
    with no failure logged lately, which would silence this test's first one)."""
    FLUSHER.buffer.take()
    FLUSHER._last_error_log = -float("inf")
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        yield
    FLUSHER.buffer.take()


def captured(*querysets: Any) -> list[QueryRecord]:
    with capture_queries() as capture:
        for queryset in querysets:
            list(queryset)
    return capture.queries


def shape_of(model: type[Any]) -> QueryShape:
    (shape,) = [s for s in QueryShape.objects.all() if f'FROM "{model._meta.db_table}"' in s.sql]
    return shape


# --- from requests to rows ------------------------------------------------------------------


def test_requests_become_shapes_hours_sites_and_findings(client: Client) -> None:
    make_library(authors=4, books_per_author=2)  # 8 books, one author query each
    counts = [int(client.get("/testapp/n-plus-one/")["X-DB-Query-Count"]) for _ in range(2)]
    assert stats.flush().written

    assert sum(shape.sampled_calls for shape in QueryShape.objects.all()) == sum(counts) == 18
    author = shape_of(Author)
    assert (author.sampled_calls, author.calls, author.nplusone_findings) == (16, 16.0, 2)
    assert author.is_select and author.alias == "default" and author.params is None
    assert sum(histogram.from_json(author.histogram).values()) == 16
    assert 0 < author.p50_ms <= author.p95_ms <= author.p99_ms <= author.max_ms  # type: ignore[operator]
    assert author.p95_ms == author.percentile(0.95)  # stored for sorting, as read

    (site,) = QueryShapeSite.objects.filter(shape=author)
    assert site.view == "n_plus_one" and site.sampled_calls == 16
    assert site.callsite.startswith("tests/testapp/views.py:") and site.function == "n_plus_one"
    (hour,) = QueryShapeHour.objects.filter(shape=author)
    assert hour.sampled_calls == 16 and hour.hour.minute == 0

    from django_dbperf.stats.models import ViewStat

    (view,) = ViewStat.objects.all()  # the dashboard's and the view filter's totals
    assert (view.view, view.calls) == ("n_plus_one", 18.0)
    assert view.total_ms == pytest.approx(sum(s.total_ms for s in QueryShapeSite.objects.all()))

    (finding,) = FindingStat.objects.all()
    assert (finding.kind, finding.subject, finding.view) == (
        "n_plus_one",
        "testapp.Book.author",
        "n_plus_one",
    )
    assert (finding.occurrences, finding.queries) == (2, 16)
    assert finding.callsite == site.callsite and "select_related" in finding.suggestion

    # A second flush adds to the same rows.
    client.get("/testapp/n-plus-one/")
    assert stats.flush().written
    author.refresh_from_db()
    assert (
        author.sampled_calls == 24 and QueryShapeSite.objects.get(shape=author).sampled_calls == 24
    )
    assert FindingStat.objects.get().occurrences == 3


def test_recording_runs_no_query_inside_the_request(
    client: Client, django_assert_num_queries: Any
) -> None:
    make_library(authors=2, books_per_author=1)
    with django_assert_num_queries(3):  # the view's own: books, then one author per book
        client.get("/testapp/n-plus-one/")
    assert len(FLUSHER.buffer) == 2  # recorded in memory only
    assert QueryShape.objects.count() == 0


def test_sampled_requests_are_scaled_into_estimates() -> None:
    make_library(authors=1, books_per_author=1)
    queries = captured(Book.objects.all())
    for _ in range(3):
        stats.record_request(queries, [], view="list", sample_rate=0.25)
    stats.flush()
    shape = shape_of(Book)
    assert (shape.sampled_calls, shape.calls) == (3, 12.0)
    assert shape.total_ms == pytest.approx(4 * sum(q.duration_ms for q in queries) * 3, rel=1e-6)


@override_settings(DBPERF={"SAMPLE_RATE": 0.5})
def test_a_request_captured_by_a_test_stands_for_itself(client: Client) -> None:
    with capture_queries():  # forces the capture: not a random sample
        client.get("/testapp/clean/")
    stats.flush()
    assert [shape.calls for shape in QueryShape.objects.all()] == [1.0]


def test_rows_are_recorded_where_the_driver_reports_them() -> None:
    make_library(authors=3, books_per_author=2)
    stats.record_request(captured(Book.objects.all()), [], view="v", sample_rate=1.0)
    with capture_queries() as capture:
        Book.objects.update(pages=7)
    stats.record_request(capture.queries, [], view="v", sample_rate=1.0)
    stats.flush()
    update = next(s for s in QueryShape.objects.all() if s.sql.startswith("UPDATE"))
    assert update.rows == 6 and not update.is_select
    # psycopg counts a SELECT's rows; SQLite's driver does not (-1: not counted, not zero).
    assert shape_of(Book).rows == (6 if connection.vendor == "postgresql" else None)


def test_slow_queries_are_logged_with_shape_view_and_line(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # 300 ms: a cheap query never takes that long even on a loaded machine; the slow view's
    # query sleeps 1 s in the database.
    with override_settings(DBPERF={"SLOW_QUERY_MS": 300}), caplog.at_level(logging.WARNING):
        client.get("/testapp/slow/")
        client.get("/testapp/clean/")
    slow = [r for r in caplog.records if r.getMessage().startswith("Slow query")]
    assert len(slow) == 1
    details = slow[0].dbperf  # type: ignore[attr-defined]
    assert details["duration_ms"] >= 300 and details["view"] == "slow"
    assert details["callsite"].startswith("tests/testapp/views.py:")
    assert len(details["fingerprint_id"]) == 12 and details["alias"] == "default"


# --- memory bound, failures -----------------------------------------------------------------


@override_settings(DBPERF={"STATS": {"MAX_FINGERPRINTS": 2}})
def test_memory_is_bounded_and_the_overflow_is_counted() -> None:
    queries = captured(
        Author.objects.all(), Book.objects.all(), Tag.objects.all(), Publisher.objects.all()
    )
    stats.record_request(queries, [], view="v", sample_rate=1.0)
    stats.record_request(queries, [], view="v", sample_rate=1.0)
    assert len(FLUSHER.buffer) == 2
    assert stats.flush().written
    assert QueryShape.objects.count() == 2
    assert writer.counters("default")[writer.OVERFLOW] == 4


def hold_write_lock(release: threading.Event, held: threading.Event) -> None:
    """Keep the statistics tables locked, as a migration or another writer would."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {QueryShape._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        else:  # SQLite: a write takes the database's write lock until the transaction ends
            cursor.execute(f"DELETE FROM {QueryShape._meta.db_table} WHERE id = -1")
        held.set()
        release.wait(30)


def test_a_failed_flush_keeps_the_data_logs_once_and_the_next_one_writes_it(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "LOCK_TIMEOUT_MS", 200)
    queries = captured(Book.objects.all(), Author.objects.all())
    stats.record_request(queries, [], view="v", sample_rate=1.0)
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=run_in_threads, args=(lambda: hold_write_lock(release, held),))
    holder.start()
    try:
        assert held.wait(30)
        with caplog.at_level(logging.WARNING, logger="django_dbperf"):
            first, second = stats.flush(), stats.flush()
            stats.record_request(queries, [], view="v", sample_rate=1.0)  # while failing
    finally:
        release.set()
        holder.join()
    assert not first.written and first.error and not second.written
    logged = [r for r in caplog.records if "could not write query statistics" in r.getMessage()]
    assert len(logged) == 1  # once per FLUSH_INTERVAL_S, not once per failure
    assert len(FLUSHER.buffer) == 2
    assert stats.flush().written
    assert sorted(s.sampled_calls for s in QueryShape.objects.all()) == [
        2,
        2,
    ]  # nothing lost, nothing twice


# --- concurrency --------------------------------------------------------------------------


def test_threads_recording_and_flushing_at_once_add_up() -> None:
    make_library(authors=1, books_per_author=1)
    queries = captured(Book.objects.all(), Author.objects.all())

    def work() -> None:
        for number in range(1, 41):
            stats.record_request(queries, [], view="threads", sample_rate=1.0)
            if number % 10 == 0:
                stats.flush()

    run_in_threads(work, work, work, work)
    stats.flush()  # whatever a failed (busy) flush kept
    assert [s.sampled_calls for s in QueryShape.objects.all()] == [160, 160]
    assert sum(h.sampled_calls for h in QueryShapeHour.objects.all()) == 320


def run_process(database: dict[str, Any], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.stats_process", json.dumps(database), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out


def process_database(tmp_path: Path) -> dict[str, Any]:
    """This run's database for other processes (an in-memory one is one process's: a file)."""
    if connection.vendor == "postgresql":
        database = {
            key: value
            for key, value in connection.settings_dict.items()
            if key in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")
        }
    else:  # an in-memory test database is one process's: share a file instead
        database = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "stats.db")}
        finished(run_process(database, "migrate"))
    return database


def test_two_processes_flushing_into_the_same_tables_add_up(tmp_path: Path) -> None:
    database = process_database(tmp_path)
    processes = [run_process(database, "record", "120", "10") for _ in range(2)]
    for process in processes:
        finished(process)
    totals = json.loads(finished(run_process(database, "totals")))
    assert sorted(totals["shapes"].values()) == [240, 240]
    assert totals["hours"] == totals["sites"] == 480


def test_a_process_that_exits_writes_what_it_buffered(tmp_path: Path) -> None:
    database = process_database(tmp_path)
    finished(run_process(database, "record-and-exit", "7"))
    totals = json.loads(finished(run_process(database, "totals")))
    assert sorted(totals["shapes"].values()) == [7, 7]


# --- retention and commands -----------------------------------------------------------------


def test_prune_deletes_old_hours_and_shapes_not_seen_since() -> None:
    import datetime as dt

    stats.record_request(
        captured(Book.objects.all(), Author.objects.all()), [], view="v", sample_rate=1.0
    )
    stats.flush()
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=20)
    book = shape_of(Book)
    QueryShape.objects.filter(pk=book.pk).update(last_seen=old)
    QueryShapeHour.objects.filter(shape=shape_of(Author)).update(hour=old)
    assert stats.prune(14) == {"hours": 1, "shapes": 1, "findings": 0}  # its hours went with it
    assert [s.pk for s in QueryShape.objects.all()] == [shape_of(Author).pk]
    assert not QueryShapeHour.objects.exists() and QueryShapeSite.objects.count() == 1


def test_commands_flush_and_prune(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("dbperf_flush")
    assert "Nothing to write" in capsys.readouterr().out
    stats.record_request(captured(Book.objects.all()), [], view="v", sample_rate=1.0)
    call_command("dbperf_flush")
    assert "Wrote statistics of 1 statement shapes." in capsys.readouterr().out
    call_command("dbperf_prune", "--days", "3")
    assert "Deleted 0 hourly rows, 0 statement shapes and 0 findings." in capsys.readouterr().out
    with pytest.raises(CommandError, match="--days must be at least 1, not 0"):
        call_command("dbperf_prune", "--days", "0")


# --- percentiles ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_percentiles_from_histograms_are_within_five_percent(seed: int) -> None:
    generator = random.Random(seed)
    durations = sorted(generator.lognormvariate(1.0, 1.5) for _ in range(5000))
    parts: list[histogram.Histogram] = [{}, {}, {}]
    for index, ms in enumerate(durations):
        histogram.add(parts[index % 3], ms)
    merged: histogram.Histogram = {}
    for part in parts:  # three processes' histograms, added
        histogram.merge(merged, histogram.to_json(part))
    for fraction in (0.5, 0.95, 0.99):
        exact = durations[int(fraction * len(durations)) - 1]
        estimate = histogram.percentile(merged, fraction, durations[-1])
        assert estimate is not None and abs(estimate - exact) / exact <= 0.05


def test_malformed_stored_histograms_read_as_empty() -> None:
    assert histogram.from_json({"x": 1}) == {} and histogram.from_json([1, 2]) == {}
    assert histogram.from_json({"3": 2, "9999": 1, "4": -1}) == {3: 2}
    assert histogram.percentile({}, 0.5) is None


def test_values_are_stored_only_when_asked_and_masked_by_column() -> None:
    from django.contrib.auth.models import User

    def stored(**stats_settings: Any) -> list[Any] | None:
        FLUSHER.buffer.take()
        QueryShape.objects.all().delete()
        with override_settings(DBPERF={"STATS": stats_settings}):
            queries = captured(User.objects.filter(username="ada").filter(email="ada@example.com"))
            stats.record_request(queries, [], view="v", sample_rate=1.0)
        stats.flush()
        return QueryShape.objects.get().params

    assert stored() is None  # STORE_PARAMS is off by default
    assert stored(STORE_PARAMS=True) == ["ada", "<redacted>"]
    assert stored(STORE_PARAMS=True, REDACT_COLUMNS=["username"]) == [
        "<redacted>",
        "ada@example.com",
    ]


def written() -> bool:
    from django.db import OperationalError

    try:
        return QueryShape.objects.exists()
    except OperationalError:  # SQLite's shared in-memory test database: the writer holds it
        return False


def test_the_background_thread_flushes_every_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from django_dbperf.stats import flusher

    monkeypatch.setattr(flusher, "_under_test_runner", lambda: False)  # as in production
    background = flusher.Flusher()
    queries = captured(Book.objects.all())
    with override_settings(DBPERF={"STATS": {"FLUSH_INTERVAL_S": 1}}):
        background.ensure_running()
        background.buffer.record(queries, [], view="v", weight=1.0, max_shapes=10)
        try:
            deadline = time.monotonic() + 60  # one second is the interval; a wide margin
            while not written() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            background.stop()
    assert [shape.sampled_calls for shape in QueryShape.objects.all()] == [1]
    assert not background.buffer


# --- the buffer, against a plain sum -------------------------------------------------------


def record_of(shape: int, line: int, ms: float) -> QueryRecord:
    from django_dbperf.capture import Callsite

    site = Callsite("app/views.py", line, "view", "app.views")
    return QueryRecord(f"SELECT {shape}", None, False, "default", ms / 1000, f"S{shape}", site)


REQUESTS = st.lists(
    st.tuples(
        st.lists(
            st.tuples(st.integers(0, 5), st.integers(1, 3), st.floats(0.01, 5000)), max_size=8
        ),
        st.sampled_from(["a", "b"]),
        st.sampled_from(["record", "flush", "fail"]),  # then: nothing, a write, a failed write
    ),
    max_size=25,
)
Key = tuple[str, str, int]


def replay(requests: list[Any], max_shapes: int) -> tuple[list[Any], int]:
    """Record ``requests``, taking batches and giving failed ones back as they say; the
    batches written, and how many queries were recorded."""
    from django_dbperf.stats.buffer import Buffer

    buffer, batches = Buffer(), []
    for queries, view, then in requests:
        records = [record_of(shape, line, ms) for shape, line, ms in queries]
        buffer.record(records, [], view=view, weight=1.0, max_shapes=max_shapes)
        if then == "flush":
            batches.append(buffer.take(max_shapes))
        elif then == "fail":
            buffer.give_back(buffer.take(max_shapes), max_shapes)
    batches.append(buffer.take(max_shapes))
    return batches, sum(len(queries) for queries, _, _ in requests)


def sites_written(batches: list[Any]) -> dict[Key, list[float]]:
    written: dict[Key, list[float]] = {}
    for batch in batches:
        for (_, shape, view, callsite, _), totals in batch.sites.items():
            entry = written.setdefault((shape, view, callsite.line), [0, 0.0, 0.0])
            entry[0] += totals.sampled
            entry[1] += totals.total_ms
            entry[2] = max(entry[2], totals.max_ms)
            assert sum(totals.histogram.values()) == totals.sampled
        shapes = sum(shape.totals.sampled for shape in batch.shapes.values())
        assert shapes == sum(h.sampled for h in batch.hours.values())
        assert shapes == sum(s.sampled for s in batch.sites.values())
    return written


@given(requests=REQUESTS)
@hypothesis_settings(max_examples=150, deadline=None)
def test_what_is_written_is_the_plain_sum_of_what_was_recorded(requests: list[Any]) -> None:
    """Whatever the order of requests, writes and failed writes, each sampled call is written
    exactly once, with its time, under its shape, view and line."""
    batches, _ = replay(requests, max_shapes=100)
    expected: dict[Key, list[float]] = {}
    for queries, view, _ in requests:
        for shape, line, ms in queries:
            entry = expected.setdefault((f"S{shape}", view, line), [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += ms
            entry[2] = max(entry[2], ms)
    written = sites_written(batches)
    assert written.keys() == expected.keys()
    for key, (calls, total, maximum) in expected.items():
        assert written[key][0] == calls
        assert written[key][2] == pytest.approx(maximum, rel=1e-9)
        assert written[key][1] == pytest.approx(total, rel=1e-9)


@given(requests=REQUESTS, max_shapes=st.integers(1, 4))
@hypothesis_settings(max_examples=150, deadline=None)
def test_under_the_memory_bound_every_call_is_written_or_counted(
    requests: list[Any], max_shapes: int
) -> None:
    batches, recorded = replay(requests, max_shapes)
    written = sum(entry[0] for entry in sites_written(batches).values())
    assert written + sum(batch.overflow for batch in batches) == recorded
    assert all(len(batch.shapes) <= max_shapes for batch in batches)


def test_a_store_database_that_cannot_be_used_fails_no_request_and_loses_nothing(
    client: Client,
) -> None:
    # "other" was never migrated (nor, on PostgreSQL, created) for this run: every write to it
    # fails, as during an outage.
    make_library(authors=2, books_per_author=1)
    with override_settings(DBPERF={"STATS": {"DATABASE": "other"}}):
        assert client.get("/testapp/n-plus-one/").status_code == 200
        failed = stats.flush()
        assert client.get("/testapp/n-plus-one/").status_code == 200
    assert not failed.written and failed.error
    assert QueryShape.objects.count() == 0
    assert stats.flush().written  # the store is back: both requests are written
    assert shape_of(Author).sampled_calls == 4


def test_search_text_keeps_the_statements_names_not_its_words() -> None:
    from django_dbperf.stats.search import search_text, terms

    sql = (
        'SELECT "app_user"."id", "app_user"."email" FROM "app_user" '
        'INNER JOIN "app_team" ON ("app_user"."team_id" = "app_team"."id") '
        'WHERE ("app_team"."name" = %s AND created_at > %s) ORDER BY "app_user"."id" DESC'
    )
    assert search_text(sql) == "app_user id email app_team team_id name created_at"
    assert search_text("SELECT 'secret word' FROM t WHERE a = %(x)s") == "t a"
    assert terms(' "App_User".email  created_at ') == ["app_user", "email", "created_at"]
