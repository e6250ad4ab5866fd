"""django_dbperf.health: each check against a real situation made in the test database."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.db import (
    IntegrityError,
    NotSupportedError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.db.backends.postgresql.base import DatabaseWrapper as PostgresWrapper

from django_dbperf.health import (
    cache_hit_ratio,
    connections_by_state,
    database_health,
    duplicate_indexes,
    invalid_indexes,
    long_running_queries,
    pool_stats,
    sequential_scan_tables,
    table_sizes,
    unused_indexes,
)
from django_dbperf.health.findings import CACHE_HIT_RATIO_TARGET, QUERY_TEXT_LIMIT
from tests.helpers import drop_tables_starting_with, execute

# Tables made here start with this, and are dropped after each test.
PREFIX = "health_"


def wait_for[T](condition: Callable[[], T], timeout: float = 30.0) -> T:
    """The first true value of ``condition()``, or its last value after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def flush_statistics() -> None:
    """Make this session's table and index counters visible (PostgreSQL 15+)."""
    execute("SELECT pg_stat_force_next_flush()")


@pytest.fixture
def tables(postgres: None) -> Iterator[None]:
    """A transaction=True test's tables, dropped afterwards (the flush only empties models')."""
    yield
    drop_tables_starting_with(PREFIX)


@pytest.fixture
def other_session(postgres: None) -> Iterator[Callable[..., psycopg.Connection[Any]]]:
    """Opens more sessions on the test database (closed afterwards)."""
    opened: list[psycopg.Connection[Any]] = []
    params = {
        key: value
        for key, value in connection.get_connection_params().items()
        if key not in ("cursor_factory", "context")
    }

    def connect(**kwargs: Any) -> psycopg.Connection[Any]:
        session = psycopg.connect(**{**params, "autocommit": True, **kwargs})
        opened.append(session)
        return session

    yield connect
    for session in opened:
        session.close()


def in_thread(session: psycopg.Connection[Any], sql: str) -> tuple[threading.Thread, list[Any]]:
    """Run ``sql`` on ``session`` in a thread; the list gets its error, if any."""
    errors: list[Any] = []

    def run() -> None:
        try:
            session.execute(sql)
        except psycopg.Error as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def names(findings: list[Any], table: str) -> list[str]:
    return [finding.index for finding in findings if finding.table == table]


# --- Not PostgreSQL


def test_sqlite_is_unavailable_with_a_reason() -> None:
    if connection.vendor == "postgresql":
        pytest.skip("checks the SQLite pass: the default database here is PostgreSQL")
    health = database_health()
    assert health.vendor == "sqlite"
    assert not health.available
    assert health.unavailable_reason == (
        "Database health needs PostgreSQL; this database is sqlite."
    )
    assert health.unused_indexes == []
    assert health.cache_hit_ratio is None
    assert health.pool is None
    with pytest.raises(NotSupportedError, match="needs PostgreSQL"):
        unused_indexes()


# --- Indexes


@pytest.mark.django_db(transaction=True)
def test_unused_indexes_are_plain_indexes_scanned_at_most_50_times(tables: None) -> None:
    execute(
        "CREATE TABLE health_unused (id bigint PRIMARY KEY, a int, b int, c int, d int, "
        "r int4range, CONSTRAINT health_unused_c_key UNIQUE (c), "
        "CONSTRAINT health_unused_r_excl EXCLUDE USING gist (r WITH &&))"
    )
    execute("CREATE INDEX health_unused_a ON health_unused (a)")
    execute("CREATE INDEX health_unused_d ON health_unused (d)")
    execute("CREATE UNIQUE INDEX health_unused_b_uniq ON health_unused (b)")
    with transaction.atomic():
        execute("SET LOCAL enable_seqscan = off")
        for _ in range(50):
            execute("SELECT * FROM health_unused WHERE a = 1")
        for _ in range(51):
            execute("SELECT * FROM health_unused WHERE d = 1")
    flush_statistics()

    def scans_of_d_visible() -> bool:
        return "health_unused_d" not in names(unused_indexes(), "health_unused")

    assert wait_for(scans_of_d_visible)
    found = [index for index in unused_indexes() if index.table == "health_unused"]
    # Not the primary key, the unique constraint, the exclusion constraint or the unique index.
    assert [(index.schema, index.index, index.scans) for index in found] == [
        ("public", "health_unused_a", 50)
    ]
    assert found[0].size_bytes > 0


@pytest.mark.django_db(transaction=True)
def test_unused_index_scans_count_since_the_statistics_reset(tables: None) -> None:
    execute("CREATE TABLE health_reset (a int)")
    execute("CREATE INDEX health_reset_a ON health_reset (a)")
    (before,) = execute("SELECT clock_timestamp()")[0]
    execute("SELECT pg_stat_reset()")

    (index,) = [index for index in unused_indexes() if index.index == "health_reset_a"]

    assert index.stats_reset is not None
    assert index.stats_reset >= before


@pytest.mark.django_db(transaction=True)
def test_duplicate_indexes_name_the_redundant_index_and_its_cover(tables: None) -> None:
    execute("CREATE TABLE health_dup (a int, b int, c int, d int, e text)")
    for statement in [
        "CREATE INDEX health_dup_a ON health_dup (a)",  # redundant: a prefix of (a, b)
        "CREATE INDEX health_dup_ab ON health_dup (a, b)",
        "CREATE UNIQUE INDEX health_dup_c_uniq ON health_dup (c)",  # unique: (c, a) is not
        "CREATE INDEX health_dup_ca ON health_dup (c, a)",
        "CREATE INDEX health_dup_b_hash ON health_dup USING hash (b)",  # another method
        "CREATE INDEX health_dup_ba ON health_dup (b, a)",
        "CREATE INDEX health_dup_a_partial ON health_dup (a) WHERE b > 0",  # another predicate
        "CREATE INDEX health_dup_lower_e ON health_dup (lower(e))",  # redundant: same expression
        "CREATE INDEX health_dup_lower_e_a ON health_dup (lower(e), a)",
        # Django's pair for CharField(db_index=True): the operator classes differ.
        "CREATE INDEX health_dup_e ON health_dup (e)",
        "CREATE INDEX health_dup_e_like ON health_dup (e text_pattern_ops)",
        "ALTER TABLE health_dup ADD CONSTRAINT health_dup_d_key UNIQUE (d)",
        "CREATE UNIQUE INDEX health_dup_d_idx ON health_dup (d)",  # redundant: the key stays
    ]:
        execute(statement)

    found = [index for index in duplicate_indexes() if index.table == "health_dup"]

    assert [(index.index, index.covered_by) for index in found] == [
        ("health_dup_a", "health_dup_ab"),
        ("health_dup_d_idx", "health_dup_d_key"),
        ("health_dup_lower_e", "health_dup_lower_e_a"),
    ]
    assert found[0].schema == "public"
    assert found[0].definition.endswith("USING btree (a)")
    assert found[0].covered_by_definition.endswith("USING btree (a, b)")
    assert found[0].size_bytes > 0
    # The unique index covered by a non-unique one is not unused either: dropping it loses a rule.
    assert "health_dup_c_uniq" not in names(unused_indexes(), "health_dup")


@pytest.mark.django_db(transaction=True)
def test_invalid_index_left_by_a_failed_concurrent_build(tables: None) -> None:
    execute("CREATE TABLE health_invalid (a int)")
    execute("INSERT INTO health_invalid VALUES (1), (1)")
    # Autocommit (transaction=True, outside atomic): CONCURRENTLY cannot run in a transaction.
    with pytest.raises(IntegrityError):
        execute("CREATE UNIQUE INDEX CONCURRENTLY health_invalid_a_uniq ON health_invalid (a)")

    found = [index for index in invalid_indexes() if index.table == "health_invalid"]

    assert [(index.schema, index.index) for index in found] == [("public", "health_invalid_a_uniq")]
    assert found[0].definition == (
        "CREATE UNIQUE INDEX health_invalid_a_uniq ON public.health_invalid USING btree (a)"
    )
    assert "health_invalid_a_uniq" not in names(duplicate_indexes(), "health_invalid")


@pytest.mark.django_db(transaction=True)
def test_index_being_built_is_not_invalid(
    tables: None, other_session: Callable[..., psycopg.Connection[Any]]
) -> None:
    execute("CREATE TABLE health_building (a int)")
    execute("INSERT INTO health_building SELECT generate_series(1, 1000)")
    # A transaction with an older snapshot holds the build in its last phase, index invalid.
    snapshot = other_session(autocommit=False)
    snapshot.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    snapshot.execute("SELECT count(*) FROM health_building")
    builder = other_session()
    thread, errors = in_thread(
        builder, "CREATE INDEX CONCURRENTLY health_building_a ON health_building (a)"
    )
    try:

        def phase() -> list[tuple[Any, ...]]:
            return execute(
                "SELECT phase FROM pg_stat_progress_create_index "
                "WHERE relid = 'health_building'::regclass"
            )

        assert wait_for(lambda: phase() == [("waiting for old snapshots",)])
        assert execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'health_building_a'::regclass"
        ) == [(False,)]

        assert "health_building_a" not in names(invalid_indexes(), "health_building")
    finally:
        snapshot.rollback()
        thread.join(timeout=30)
    assert errors == []
    assert not thread.is_alive()


# --- Tables


def make_big_table(name: str) -> None:
    """10,000 rows with a primary key, analysed so that reltuples knows it."""
    execute(f"CREATE TABLE {name} (id int PRIMARY KEY, v int)")
    execute(f"INSERT INTO {name} SELECT g, g FROM generate_series(1, 10000) AS g")
    execute(f"ANALYZE {name}")


@pytest.mark.django_db(transaction=True)
def test_large_tables_read_by_sequential_scans(tables: None) -> None:
    make_big_table("health_seq")  # sequential scans only
    make_big_table("health_indexed")  # 99% index scans
    execute("CREATE TABLE health_small AS SELECT generate_series(1, 100) AS v")
    execute("ANALYZE health_small")
    for _ in range(5):
        execute("SELECT count(*) FROM health_seq WHERE v > 0")
        execute("SELECT count(*) FROM health_small WHERE v > 0")
    execute("SELECT count(*) FROM health_indexed WHERE v > 0")
    for key in range(99):
        execute("SELECT v FROM health_indexed WHERE id = %s", [key])
    flush_statistics()

    def found() -> list[Any]:
        return [t for t in sequential_scan_tables() if t.table.startswith(PREFIX)]

    tables_found = wait_for(found)
    assert [(t.schema, t.table, t.estimated_rows) for t in tables_found] == [
        ("public", "health_seq", 10000)
    ]
    assert tables_found[0].seq_scans >= 5
    assert tables_found[0].index_scan_percent < 95
    # health_indexed's counters were visible too: it was left out for its index scans.
    ((seq_scans, index_scans),) = execute(
        "SELECT seq_scan, idx_scan FROM pg_stat_user_tables WHERE relname = 'health_indexed'"
    )
    assert index_scans == 99
    assert index_scans / (seq_scans + index_scans) >= 0.95


@pytest.mark.django_db(transaction=True)
def test_table_sizes_largest_first(tables: None) -> None:
    make_big_table("health_sizes")

    sizes = table_sizes()

    (table,) = [size for size in sizes if size.table == "health_sizes"]
    assert table.schema == "public"
    assert table.estimated_rows == 10000
    assert table.table_bytes > 0 and table.index_bytes > 0
    assert table.total_bytes == table.table_bytes + table.index_bytes
    totals = [size.total_bytes for size in sizes]
    assert totals == sorted(totals, reverse=True)
    assert len(sizes) <= 20
    assert len(table_sizes(limit=1)) == 1


@pytest.mark.django_db(transaction=True)
def test_cache_hit_ratio_after_reads(tables: None) -> None:
    make_big_table("health_cache")
    for key in range(3):
        execute("SELECT count(*) FROM health_cache WHERE v > 0")
        execute("SELECT v FROM health_cache WHERE id = %s", [key])
    flush_statistics()

    assert wait_for(lambda: cache_hit_ratio().indexes)

    ratio = cache_hit_ratio()
    assert ratio.tables is not None and ratio.indexes is not None
    assert 0 < ratio.tables <= 1
    assert 0 < ratio.indexes <= 1
    assert ratio.target == CACHE_HIT_RATIO_TARGET == 0.99


# --- Sessions


@pytest.mark.django_db(transaction=True)
def test_connections_by_state_counts_this_databases_sessions(
    other_session: Callable[..., psycopg.Connection[Any]],
) -> None:
    def idle_in_transaction() -> int:
        counts = {state.state: state.count for state in connections_by_state()}
        assert counts["active"] >= 1  # this session, asking
        return counts.get("idle in transaction", 0)

    before = idle_in_transaction()
    holder = other_session(autocommit=False)
    holder.execute("SELECT 1")  # and stays in the transaction

    assert wait_for(lambda: idle_in_transaction() == before + 1)
    holder.rollback()


@pytest.mark.django_db(transaction=True)
def test_long_running_query_of_another_session(
    other_session: Callable[..., psycopg.Connection[Any]],
) -> None:
    idle = other_session()
    idle.execute("SELECT 1")  # its last statement started long ago once the sleeper is found
    sleeper = other_session(application_name="dbperf-health-test")
    pid = sleeper.info.backend_pid
    # Longer than the page's text limit (and than track_activity_query_size, 1024 bytes).
    thread, errors = in_thread(sleeper, "SELECT pg_sleep(60) /* " + "x" * 2000 + " */")
    try:

        def sleeping() -> list[Any]:
            return [q for q in long_running_queries(min_seconds=1) if q.pid == pid]

        (query,) = wait_for(sleeping)
        assert query.state == "active"
        assert query.duration_s > 1
        assert query.application_name == "dbperf-health-test"
        assert query.query.startswith("SELECT pg_sleep(60) /* xxx")
        assert len(query.query) == QUERY_TEXT_LIMIT
        assert pid not in [q.pid for q in long_running_queries(min_seconds=3600)]
        assert idle.info.backend_pid not in [q.pid for q in long_running_queries(min_seconds=1)]
        # This session's own statement, just started, is never listed.
        (own_pid,) = execute("SELECT pg_backend_pid()")[0]
        assert own_pid not in [q.pid for q in long_running_queries(min_seconds=0)]
    finally:
        sleeper.cancel_safe()
        thread.join(timeout=30)
    assert [type(error) for error in errors] == [psycopg.errors.QueryCanceled]


@pytest.mark.django_db(transaction=True)
def test_statement_timeout_stops_a_check_blocked_by_a_lock(
    tables: None, other_session: Callable[..., psycopg.Connection[Any]]
) -> None:
    execute("CREATE TABLE health_locked (a int)")
    locker = other_session(autocommit=False)
    # Without the checks' timeout the test fails, not hangs: the server ends this in 30 s.
    locker.execute("SET idle_in_transaction_session_timeout = '30s'")
    locker.execute("LOCK TABLE health_locked IN ACCESS EXCLUSIVE MODE")
    started = time.monotonic()
    try:
        with pytest.raises(OperationalError, match="statement timeout"):
            table_sizes()  # pg_total_relation_size() waits for the table's lock
    finally:
        locker.close()
    assert 4 < time.monotonic() - started < 25


@pytest.mark.django_db(transaction=True)
def test_checks_see_fresh_statistics_inside_a_long_transaction(
    tables: None, other_session: Callable[..., psycopg.Connection[Any]]
) -> None:
    execute("CREATE TABLE health_fresh (a int)")
    execute("CREATE INDEX health_fresh_a ON health_fresh (a)")
    scanner = other_session()
    with transaction.atomic():  # a caller's transaction (ATOMIC_REQUESTS, say)
        assert "health_fresh_a" in names(unused_indexes(), "health_fresh")
        with scanner.transaction():
            scanner.execute("SET LOCAL enable_seqscan = off")
            for _ in range(51):
                scanner.execute("SELECT * FROM health_fresh WHERE a = 1")
        scanner.execute("SELECT pg_stat_force_next_flush()")

        # PostgreSQL caches statistics for the rest of a transaction unless told otherwise.
        assert wait_for(lambda: "health_fresh_a" not in names(unused_indexes(), "health_fresh"))


@pytest.mark.django_db
def test_checks_leave_the_callers_transaction_as_it_was(postgres: None) -> None:
    # The test runs inside a transaction: the checks run in a savepoint of it.
    settings = (
        "SELECT current_setting('statement_timeout'), current_setting('transaction_read_only')"
    )
    before = execute(settings)

    health = database_health()

    assert health.available and health.vendor == "postgresql"
    assert health.unavailable_reason is None
    assert execute(settings) == before
    assert before[0][1] == "off"
    execute("CREATE TEMPORARY TABLE health_still_writable (a int)")


# --- Pool


@pytest.mark.django_db(transaction=True)
def test_pool_stats_when_django_pools_connections(postgres: None) -> None:
    assert pool_stats() is None  # the test settings do not pool

    alias = "health_pooled"
    pooled = connection.copy(alias)
    assert isinstance(pooled, PostgresWrapper)
    pooled.settings_dict["OPTIONS"] = {
        **pooled.settings_dict["OPTIONS"],
        "pool": {"min_size": 1, "max_size": 3},
    }
    pooled.settings_dict["CONN_MAX_AGE"] = 0
    connections[alias] = pooled
    try:
        pooled.pool.open(wait=True, timeout=30)  # its one connection ready
        pooled.ensure_connection()  # takes it

        stats = pool_stats(alias)

        assert stats is not None
        assert (stats.min_size, stats.max_size) == (1, 3)
        assert (stats.size, stats.available, stats.waiting) == (1, 0, 0)
        assert (stats.requests, stats.requests_queued) == (1, 0)
    finally:
        pooled.close()
        pooled.close_pool()
        del connections[alias]
