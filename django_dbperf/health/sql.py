"""The catalog queries behind the health checks, each with the rule it implements."""

from __future__ import annotations

UNUSED_INDEXES_SQL = """
SELECT s.schemaname AS schema, s.relname AS "table", s.indexrelname AS index,
       pg_relation_size(s.indexrelid) AS size_bytes, s.idx_scan AS scans,
       d.stats_reset AS stats_reset
FROM pg_stat_user_indexes s
JOIN pg_index i ON i.indexrelid = s.indexrelid
LEFT JOIN pg_stat_database d ON d.datname = current_database()
WHERE NOT i.indisunique
  AND i.indisvalid
  AND s.idx_scan <= %(max_scans)s
  AND s.schemaname !~ '^pg_'
  AND NOT EXISTS (
      SELECT 1 FROM pg_constraint k
      WHERE k.conindid = s.indexrelid AND k.contype IN ('p', 'u', 'x'))
ORDER BY size_bytes DESC, schema, "table", index
"""

# Index x is redundant with index y on the same table when both are valid, use the same access
# method, x's key columns (or expressions, compared as deparsed text) are the first key columns
# of y with the same operator classes, collations and sort options, x's INCLUDE columns are
# among y's columns, and both have the same predicate. x must not back a constraint; a unique x
# is only covered by a unique, non-deferrable y on exactly its keys (same NULLS NOT DISTINCT).
# When x and y cover each other, only the one with the greater name is reported. Each redundant
# index is listed once, with the widest index that covers it.
DUPLICATE_INDEXES_SQL = """
WITH idx AS (
    SELECT i.indexrelid AS oid, i.indrelid AS table_oid, c.relam AS am, c.relname AS name,
           i.indisunique AS is_unique, i.indimmediate AS is_immediate,
           i.indnullsnotdistinct AS nulls_not_distinct, i.indnkeyatts AS key_count,
           ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, false)
                 FROM generate_series(1, i.indnatts) AS k ORDER BY k) AS columns,
           string_to_array(i.indclass::text, ' ')::oid[] AS opclasses,
           string_to_array(i.indcollation::text, ' ')::oid[] AS collations,
           string_to_array(i.indoption::text, ' ')::int2[] AS options,
           pg_get_expr(i.indpred, i.indrelid) AS predicate,
           EXISTS (SELECT 1 FROM pg_constraint k
                   WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x'))
               AS backs_constraint
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE i.indisvalid AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
),
covers AS (
    SELECT x.oid AS x, y.oid AS y
    FROM idx x
    JOIN idx y ON y.table_oid = x.table_oid AND y.oid <> x.oid AND y.am = x.am
    WHERE NOT x.backs_constraint
      AND x.key_count <= y.key_count
      AND x.columns[1:x.key_count] = y.columns[1:x.key_count]
      AND x.opclasses = y.opclasses[1:x.key_count]
      AND x.collations = y.collations[1:x.key_count]
      AND x.options = y.options[1:x.key_count]
      AND x.columns[x.key_count + 1:] <@ y.columns
      AND x.predicate IS NOT DISTINCT FROM y.predicate
      AND (NOT x.is_unique
           OR (y.is_unique AND y.is_immediate AND y.key_count = x.key_count
               AND y.nulls_not_distinct = x.nulls_not_distinct))
),
chosen AS (
    SELECT DISTINCT ON (x.oid) x.oid AS x, y.oid AS y
    FROM covers c
    JOIN idx x ON x.oid = c.x
    JOIN idx y ON y.oid = c.y
    WHERE NOT (x.name < y.name AND EXISTS (SELECT 1 FROM covers r WHERE r.x = c.y AND r.y = c.x))
    ORDER BY x.oid, y.key_count DESC, y.is_unique DESC, y.backs_constraint DESC, y.name
)
SELECT n.nspname AS schema, t.relname AS "table", xc.relname AS index,
       yc.relname AS covered_by, pg_get_indexdef(chosen.x) AS definition,
       pg_get_indexdef(chosen.y) AS covered_by_definition,
       pg_relation_size(chosen.x) AS size_bytes
FROM chosen
JOIN pg_class xc ON xc.oid = chosen.x
JOIN pg_class yc ON yc.oid = chosen.y
JOIN pg_index i ON i.indexrelid = chosen.x
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
ORDER BY schema, "table", index
"""

# pg_index.indisvalid is false, and no CREATE INDEX / REINDEX is building it right now (an index
# being built concurrently is invalid until the build ends).
INVALID_INDEXES_SQL = """
SELECT n.nspname AS schema, t.relname AS "table", c.relname AS index,
       pg_get_indexdef(i.indexrelid) AS definition, pg_relation_size(i.indexrelid) AS size_bytes
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid
  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
  AND NOT EXISTS (
      SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid)
ORDER BY schema, "table", index
"""

# At least min_rows rows by the planner's estimate (pg_class.reltuples), scanned at least once,
# and index scans under target_percent of all scans (idx_scan is NULL for a table without
# indexes: none of its scans is an index scan).
SEQUENTIAL_SCAN_TABLES_SQL = """
SELECT s.schemaname AS schema, s.relname AS "table", c.reltuples::bigint AS estimated_rows,
       s.seq_scan AS seq_scans, coalesce(s.idx_scan, 0) AS index_scans
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
WHERE c.reltuples >= %(min_rows)s
  AND s.schemaname !~ '^pg_'
  AND s.seq_scan + coalesce(s.idx_scan, 0) > 0
  AND 100 * coalesce(s.idx_scan, 0) < %(target_percent)s * (s.seq_scan + coalesce(s.idx_scan, 0))
ORDER BY estimated_rows DESC, seq_scans DESC, schema, "table"
"""

# The `limit` largest tables and materialized views by total size (table plus indexes).
TABLE_SIZES_SQL = """
SELECT n.nspname AS schema, c.relname AS "table",
       pg_total_relation_size(c.oid) AS total_bytes, pg_table_size(c.oid) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END AS estimated_rows
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm')
  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
ORDER BY total_bytes DESC, schema, "table"
LIMIT %(limit)s
"""

# Blocks found in shared buffers over blocks looked up, for tables (heap) and indexes; NULL
# until a block has been looked up.
CACHE_HIT_RATIO_SQL = """
SELECT
    (SELECT (sum(heap_blks_hit) / nullif(sum(heap_blks_hit + heap_blks_read), 0))::float8
     FROM pg_statio_user_tables) AS tables,
    (SELECT (sum(idx_blks_hit) / nullif(sum(idx_blks_hit + idx_blks_read), 0))::float8
     FROM pg_statio_user_indexes) AS indexes
"""

# Client sessions connected to the current database, counted per state.
CONNECTIONS_BY_STATE_SQL = """
SELECT state, count(*) AS count
FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'
GROUP BY state
ORDER BY count DESC, state
"""

# Client sessions of the current database, other than this one, not idle, whose statement
# started more than min_seconds ago. clock_timestamp(): now() is when the caller's
# transaction began.
LONG_RUNNING_QUERIES_SQL = """
SELECT pid, extract(epoch FROM clock_timestamp() - query_start)::float8 AS duration_s, state,
       left(query, %(text_limit)s) AS query, application_name
FROM pg_stat_activity
WHERE datname = current_database()
  AND backend_type = 'client backend'
  AND pid <> pg_backend_pid()
  AND state <> 'idle'
  AND clock_timestamp() - query_start > make_interval(secs => %(min_seconds)s)
ORDER BY duration_s DESC, pid
"""


# --- Checks
