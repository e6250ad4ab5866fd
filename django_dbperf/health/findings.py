"""What the health checks return: one frozen dataclass per kind of finding, and ``Health``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

# PgHero's thresholds.
UNUSED_INDEX_MAX_SCANS = 50
SEQUENTIAL_SCAN_MIN_ROWS = 10_000
INDEX_SCAN_TARGET_PERCENT = 95
CACHE_HIT_RATIO_TARGET = 0.99
LONG_RUNNING_QUERY_SECONDS = 60.0

TABLE_SIZES_LIMIT = 20
QUERY_TEXT_LIMIT = 1000
STATEMENT_TIMEOUT = "5s"
MIN_SERVER_VERSION = 150000  # pg_index.indnullsnotdistinct


@dataclass(frozen=True)
class UnusedIndex:
    schema: str
    table: str
    index: str
    size_bytes: int
    scans: int  # since stats_reset
    stats_reset: dt.datetime | None  # the last reset of this database's statistics; None: never


@dataclass(frozen=True)
class DuplicateIndex:
    schema: str
    table: str
    index: str  # the redundant one, safe to drop
    covered_by: str  # the index that serves every query it serves
    definition: str
    covered_by_definition: str
    size_bytes: int  # of the redundant index


@dataclass(frozen=True)
class InvalidIndex:
    schema: str
    table: str
    index: str
    definition: str  # to build it again after dropping it
    size_bytes: int


@dataclass(frozen=True)
class SequentialScanTable:
    schema: str
    table: str
    estimated_rows: int
    seq_scans: int
    index_scans: int

    @property
    def index_scan_percent(self) -> float:
        return 100.0 * self.index_scans / (self.seq_scans + self.index_scans)


@dataclass(frozen=True)
class TableSize:
    schema: str
    table: str
    total_bytes: int  # table_bytes + index_bytes
    table_bytes: int  # heap, TOAST, free space and visibility maps
    index_bytes: int
    estimated_rows: int | None  # None: never vacuumed or analysed


@dataclass(frozen=True)
class CacheHitRatio:
    tables: float | None  # None: no blocks read yet
    indexes: float | None
    target: float = CACHE_HIT_RATIO_TARGET

    @property
    def tables_below_target(self) -> bool:
        return self.tables is not None and self.tables < self.target

    @property
    def indexes_below_target(self) -> bool:
        return self.indexes is not None and self.indexes < self.target


@dataclass(frozen=True)
class ConnectionState:
    state: str | None  # None: another role's session, hidden without pg_read_all_stats
    count: int


@dataclass(frozen=True)
class LongRunningQuery:
    pid: int
    duration_s: float  # since the statement started
    state: str  # "active", or "idle in transaction" with the last statement's start
    query: str  # the first QUERY_TEXT_LIMIT characters
    application_name: str


@dataclass(frozen=True)
class PoolStats:
    """psycopg's pool in this process (each worker process has its own pool).

    ``size``, ``available`` and ``waiting`` are now; the other counters count since the pool
    opened.
    """

    min_size: int
    max_size: int
    size: int  # connections in use, idle in the pool, or being opened
    available: int  # idle in the pool
    waiting: int  # requests waiting for a connection now
    requests: int
    requests_queued: int  # requests that had to wait
    requests_wait_ms: int
    requests_errors: int  # timed out or failed while waiting
    connections_lost: int


@dataclass(frozen=True)
class Health:
    vendor: str
    available: bool
    unavailable_reason: str | None = None
    unused_indexes: list[UnusedIndex] = field(default_factory=list)
    duplicate_indexes: list[DuplicateIndex] = field(default_factory=list)
    invalid_indexes: list[InvalidIndex] = field(default_factory=list)
    sequential_scan_tables: list[SequentialScanTable] = field(default_factory=list)
    table_sizes: list[TableSize] = field(default_factory=list)
    cache_hit_ratio: CacheHitRatio | None = None
    connections_by_state: list[ConnectionState] = field(default_factory=list)
    long_running_queries: list[LongRunningQuery] = field(default_factory=list)
    pool: PoolStats | None = None


# --- SQL: one statement per check; the comment says the rule. Column aliases are field names.

# Not unique, not backing a constraint (primary key, unique, exclusion: dropping the index
# would drop the constraint), valid (invalid ones are listed as such) and scanned at most
# max_scans times since the statistics were last reset. Schemas pg_*: other sessions' temporary
# tables.
