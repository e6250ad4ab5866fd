"""Database health, the data behind the admin's health page: PgHero's checks, read-only.

One function per check, each reading PostgreSQL's catalogs and statistics views and returning
dataclasses; ``database_health()`` gathers them all. Every statement runs in a read-only
transaction (a savepoint inside the caller's) with a 5 s statement timeout, and is rolled back,
so a check never writes, never waits long behind a lock, and leaves the session as it was.
Errors propagate: the page shows them. ``findings.py`` holds what they return, ``sql.py`` the
catalog queries. On another database than PostgreSQL 15+ the checks raise
``NotSupportedError``; ``database_health()`` says why instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from django.db import NotSupportedError, connections, transaction

if TYPE_CHECKING:
    from django.db.backends.postgresql.base import DatabaseWrapper as PostgresWrapper
    from django.db.backends.utils import CursorWrapper

from django_dbperf.health.findings import (
    INDEX_SCAN_TARGET_PERCENT,
    LONG_RUNNING_QUERY_SECONDS,
    MIN_SERVER_VERSION,
    QUERY_TEXT_LIMIT,
    SEQUENTIAL_SCAN_MIN_ROWS,
    STATEMENT_TIMEOUT,
    TABLE_SIZES_LIMIT,
    UNUSED_INDEX_MAX_SCANS,
    CacheHitRatio,
    ConnectionState,
    DuplicateIndex,
    Health,
    InvalidIndex,
    LongRunningQuery,
    PoolStats,
    SequentialScanTable,
    TableSize,
    UnusedIndex,
)
from django_dbperf.health.sql import (
    CACHE_HIT_RATIO_SQL,
    CONNECTIONS_BY_STATE_SQL,
    DUPLICATE_INDEXES_SQL,
    INVALID_INDEXES_SQL,
    LONG_RUNNING_QUERIES_SQL,
    SEQUENTIAL_SCAN_TABLES_SQL,
    TABLE_SIZES_SQL,
    UNUSED_INDEXES_SQL,
)


def unused_indexes(
    using: str = "default", max_scans: int = UNUSED_INDEX_MAX_SCANS
) -> list[UnusedIndex]:
    """Indexes scanned at most ``max_scans`` times since the statistics reset, largest first.

    "Since the statistics reset": ``scans`` is ``pg_stat_user_indexes.idx_scan``, which counts
    from the last reset of this database's statistics (``stats_reset``, None when they were
    never reset), so a recent reset makes every index look unused. Counts are kept by each
    server: an index used only on a replica shows here as unused. A crash also resets them.

    Differs from PgHero (which only leaves out unique indexes): indexes backing an exclusion
    constraint, and invalid indexes (see ``invalid_indexes``), are left out too.
    """
    return _fetch(using, UnusedIndex, UNUSED_INDEXES_SQL, {"max_scans": max_scans})


def duplicate_indexes(using: str = "default") -> list[DuplicateIndex]:
    """Indexes that another index on the same table covers, so dropping them loses nothing.

    PgHero's rule (``index`` is a left prefix of ``covered_by``, same access method,
    expressions and predicate), with these differences:

    - Expressions are compared as deparsed text, column by column. PgHero compares the stored
      expression trees, which hold the position of the expression in its CREATE INDEX
      statement, so two identical expressions created by different statements never match;
      and it compares all of an index's expressions, so ``(a)`` is not found to be covered by
      ``(a, lower(b))``.
    - Operator classes, collations and sort options of the prefix must match (PgHero compares
      the text of the column list, which shows the same when they differ from the default).
      An index with INCLUDE columns is covered only when the other index holds them too.
    - A unique index is reported when another unique, non-deferrable index has exactly its key
      columns (PgHero never reports unique indexes). An index backing a constraint is never
      the one reported.
    """
    return _fetch(using, DuplicateIndex, DUPLICATE_INDEXES_SQL)


def invalid_indexes(using: str = "default") -> list[InvalidIndex]:
    """Indexes PostgreSQL keeps up to date but never uses: left by a failed concurrent build.

    Indexes being built right now (listed in ``pg_stat_progress_create_index``) are left out;
    PgHero matches the text of running ``CREATE INDEX CONCURRENTLY`` statements instead. A
    role without ``pg_read_all_stats`` does not see other roles' builds, whose indexes are then
    listed. Fix: ``DROP INDEX CONCURRENTLY`` and build again, or ``REINDEX INDEX CONCURRENTLY``.
    """
    return _fetch(using, InvalidIndex, INVALID_INDEXES_SQL)


def sequential_scan_tables(
    using: str = "default",
    min_rows: int = SEQUENTIAL_SCAN_MIN_ROWS,
    target_percent: int = INDEX_SCAN_TARGET_PERCENT,
) -> list[SequentialScanTable]:
    """Large tables mostly read by sequential scans: PgHero's "missing indexes".

    Counts are since the statistics reset. Differs from PgHero: rows are the planner's
    estimate (``pg_class.reltuples``, set by VACUUM, ANALYZE and CREATE INDEX) rather than
    ``n_live_tup``, and a table never scanned by an index (PgHero's "insufficient data"), such
    as a table with no index at all, is reported.
    """
    params = {"min_rows": min_rows, "target_percent": target_percent}
    return _fetch(using, SequentialScanTable, SEQUENTIAL_SCAN_TABLES_SQL, params)


def table_sizes(using: str = "default", limit: int = TABLE_SIZES_LIMIT) -> list[TableSize]:
    """The largest tables and materialized views, by size including indexes.

    Differs from PgHero, which sorts by the table alone and adds partitions up into their
    parent: here each partition is a table of its own.
    """
    return _fetch(using, TableSize, TABLE_SIZES_SQL, {"limit": limit})


def cache_hit_ratio(using: str = "default") -> CacheHitRatio:
    """How often table and index blocks were found in shared buffers since the statistics reset.

    A block missed there may still have come from the operating system's cache.
    """
    (ratio,) = _fetch(using, CacheHitRatio, CACHE_HIT_RATIO_SQL)
    return ratio


def connections_by_state(using: str = "default") -> list[ConnectionState]:
    """Client connections to this database per state ("active", "idle", ...), most first.

    Differs from PgHero, which counts every backend of the server, background workers too.
    """
    return _fetch(using, ConnectionState, CONNECTIONS_BY_STATE_SQL)


def long_running_queries(
    using: str = "default", min_seconds: float = LONG_RUNNING_QUERY_SECONDS
) -> list[LongRunningQuery]:
    """Statements of other sessions that started more than ``min_seconds`` ago, longest first.

    Like PgHero, every state but "idle" counts: an "idle in transaction" session whose last
    statement started long ago holds its locks and its snapshot still. Unlike PgHero, only
    client sessions count (not autovacuum or replication) and the duration is always from the
    statement's start.
    """
    params = {"min_seconds": min_seconds, "text_limit": QUERY_TEXT_LIMIT}
    return _fetch(using, LongRunningQuery, LONG_RUNNING_QUERIES_SQL, params)


def pool_stats(using: str = "default") -> PoolStats | None:
    """The statistics of Django's psycopg connection pool, None when it is off (or not
    PostgreSQL). Reads this process's pool object; nothing is sent to the database.
    """
    connection = connections[using]
    if connection.vendor != "postgresql" or not connection.settings_dict["OPTIONS"].get("pool"):
        return None
    stats = cast("PostgresWrapper", connection).pool.get_stats()
    return PoolStats(
        min_size=stats["pool_min"],
        max_size=stats["pool_max"],
        size=stats["pool_size"],
        available=stats["pool_available"],
        # Counters still at zero are missing from get_stats().
        waiting=stats.get("requests_waiting", 0),
        requests=stats.get("requests_num", 0),
        requests_queued=stats.get("requests_queued", 0),
        requests_wait_ms=stats.get("requests_wait_ms", 0),
        requests_errors=stats.get("requests_errors", 0),
        connections_lost=stats.get("connections_lost", 0),
    )


def unavailable_reason(using: str = "default") -> str | None:
    """Why the checks cannot run on this database, or None when they can."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return f"Database health needs PostgreSQL; this database is {connection.vendor}."
    version = cast("PostgresWrapper", connection).pg_version
    if version < MIN_SERVER_VERSION:
        found = f"{version // 10000}.{version % 10000}"
        return f"Database health needs PostgreSQL 15 or newer; this server is {found}."
    return None


def database_health(using: str = "default") -> Health:
    """Every check on the database ``using``; on another vendor, why there is nothing."""
    vendor = connections[using].vendor
    reason = unavailable_reason(using)
    if reason is not None:
        return Health(vendor=vendor, available=False, unavailable_reason=reason)
    return Health(
        vendor=vendor,
        available=True,
        unused_indexes=unused_indexes(using),
        duplicate_indexes=duplicate_indexes(using),
        invalid_indexes=invalid_indexes(using),
        sequential_scan_tables=sequential_scan_tables(using),
        table_sizes=table_sizes(using),
        cache_hit_ratio=cache_hit_ratio(using),
        connections_by_state=connections_by_state(using),
        long_running_queries=long_running_queries(using),
        pool=pool_stats(using),
    )


# --- Running the statements


@contextmanager
def _reading(using: str) -> Iterator[CursorWrapper]:
    """A cursor in a read-only transaction (or savepoint) with a timeout, rolled back at the
    end so that the settings do not outlive it inside the caller's transaction.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        raise NotSupportedError(
            f"Database health needs PostgreSQL; the database {using!r} is {connection.vendor}."
        )
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
        cursor.execute("SET LOCAL transaction_read_only = on")
        # Statistics are cached per transaction: see the latest, even inside a long one.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        yield cursor
        transaction.set_rollback(True, using=using)


def _fetch[Row](
    using: str, row_type: Callable[..., Row], sql: str, params: dict[str, Any] | None = None
) -> list[Row]:
    """The rows of ``sql`` as ``row_type`` instances (column names are its field names)."""
    with _reading(using) as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description]
        rows = cursor.fetchall()
    return [row_type(**dict(zip(names, row, strict=True))) for row in rows]


__all__ = [
    "CacheHitRatio",
    "ConnectionState",
    "DuplicateIndex",
    "Health",
    "InvalidIndex",
    "LongRunningQuery",
    "PoolStats",
    "SequentialScanTable",
    "TableSize",
    "UnusedIndex",
    "cache_hit_ratio",
    "connections_by_state",
    "database_health",
    "duplicate_indexes",
    "invalid_indexes",
    "long_running_queries",
    "pool_stats",
    "sequential_scan_tables",
    "table_sizes",
    "unavailable_reason",
    "unused_indexes",
]
