"""pg_stat_statements, tied to Django code: learn each shape's ``queryid``, and watch the
extension's counters by differences, never resetting them (a reset breaks other tools).

- **queryid**: ``EXPLAIN (VERBOSE)`` of one captured statement, with the values it ran with
  (constants' types are part of the id, so values of the right types are needed; NULLs would
  give another id), prints a "Query Identifier" equal to the extension's ``queryid`` for the
  same statement with any other values. Run once per shape, from the flusher thread, in a
  rolled-back transaction with a timeout. EXPLAIN without ANALYZE runs nothing.
- **snapshots**: read the extension's rows for the current database, and add to each stored
  row the growth since the previous reading (a counter that went down was reset or evicted:
  its current value is the growth). One process at a time: the reading happens while holding
  a lock on the alias's ``StoreCounter`` row, so readings are ordered and never counted twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from typing import Any

from django.db import connections, transaction
from django.db.models import F

from django_dbperf.analysis.sql_text import fingerprint_id
from django_dbperf.stats.buffer import Batch
from django_dbperf.stats.models import PgStatement, PgStatementHour, QueryShape, StoreCounter

logger = logging.getLogger("django_dbperf")

EXPLAIN_TIMEOUT_MS = 2000
_QUERY_ID = re.compile(r"^\s*Query Identifier:\s*(-?\d+)\s*$", re.MULTILINE)
NO_EXTENSION = "pg_stat_statements is not installed in this database"
NO_QUERY_ID = "compute_query_id is off: EXPLAIN (VERBOSE) printed no Query Identifier"


def has_extension(alias: str) -> bool:
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
        return cursor.fetchone() is not None


def query_id(alias: str, sql: str, params: Any) -> int | None:
    """The queryid PostgreSQL gives ``sql`` (run with ``params``), or None when it prints none."""
    connection = connections[alias]
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('statement_timeout', %s, true)", [f"{EXPLAIN_TIMEOUT_MS}ms"]
        )
        cursor.execute("EXPLAIN (VERBOSE) " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True, using=alias)
    found = _QUERY_ID.search(plan)
    return int(found.group(1)) if found else None


def learn_queryids(batch: Batch, using: str) -> int:
    """Give the batch's PostgreSQL shapes that have none yet their queryid; how many learnt.

    The stored rows say which still need one (one query per flush): a process-wide memory
    would miss shapes whose rows were pruned and came back.
    """
    candidates = {
        (alias, fingerprint_id(text)): shape
        for (alias, text), shape in batch.shapes.items()
        if shape.raw_params is not None
        and alias in connections
        and connections[alias].vendor == "postgresql"
    }
    if not candidates:
        return 0
    unknown = QueryShape.objects.using(using).filter(
        fingerprint_id__in={key[1] for key in candidates}, queryid__isnull=True, queryid_note=""
    )
    learnt = 0
    for row in unknown.only("pk", "alias", "fingerprint_id"):
        shape = candidates.get((row.alias, row.fingerprint_id))
        if shape is None:
            continue
        try:
            found = query_id(row.alias, shape.sql, shape.raw_params)
        except Exception as error:  # a statement EXPLAIN cannot take, or a timeout: noted
            note = f"EXPLAIN failed: {type(error).__name__}: {error}"[:255]
            QueryShape.objects.using(using).filter(pk=row.pk).update(queryid_note=note)
            continue
        note = "" if found is not None else NO_QUERY_ID
        QueryShape.objects.using(using).filter(pk=row.pk).update(queryid=found, queryid_note=note)
        learnt += found is not None
    return learnt


# --- snapshots ---------------------------------------------------------------------------------

_READ = """
SELECT userid, dbid, queryid, {toplevel}, query, calls,
       total_plan_time + total_exec_time, rows, shared_blks_hit, shared_blks_read
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND queryid IS NOT NULL
"""
_COUNTERS = ("calls", "total_ms", "rows", "shared_blks_hit", "shared_blks_read")


def snapshot(alias: str, using: str, min_interval_s: float = 0.0) -> int | None:
    """Add the growth of ``alias``'s pg_stat_statements rows since the last reading to the
    tables of ``using``; how many rows grew, or None when not read (no extension, or read less
    than ``min_interval_s`` ago by any process)."""
    if not has_extension(alias):
        return None
    now = dt.datetime.now(dt.UTC)
    with transaction.atomic(using=using):
        readings_before = _take_turn(alias, using, now, min_interval_s)
        if readings_before is None:
            return None
        readings = _read(alias)
        # The first reading is the baseline: what ran before it ran at unknown times.
        return _add_growth(readings, using, now, baseline=readings_before == 0)


def _take_turn(alias: str, using: str, now: dt.datetime, min_interval_s: float) -> int | None:
    """Lock this alias's reading turn (a StoreCounter row) until the transaction ends; how many
    readings came before, or None when the last one is more recent than ``min_interval_s``."""
    name = f"pg_stat_statements:{alias}"[:64]
    counters = StoreCounter.objects.using(using)
    counters.bulk_create([StoreCounter(name=name, updated=_EPOCH)], ignore_conflicts=True)
    turn = counters.select_for_update().get(name=name)
    if turn.value and (now - turn.updated).total_seconds() < min_interval_s:
        return None
    counters.filter(pk=turn.pk).update(value=F("value") + 1, updated=now)
    return turn.value


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _read(alias: str) -> list[tuple[Any, ...]]:
    connection = connections[alias]
    toplevel = "toplevel" if connection.pg_version >= 140000 else "true"  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        cursor.execute(_READ.format(toplevel=toplevel))
        return list(cursor.fetchall())


def _add_growth(
    readings: Iterable[tuple[Any, ...]], using: str, now: dt.datetime, *, baseline: bool
) -> int:
    by_key = {tuple(row[:4]): row for row in readings}
    manager = PgStatement.objects.using(using)
    stored = {
        (row.userid, row.dbid, row.queryid, row.toplevel): row
        for row in manager.select_for_update()
        .filter(queryid__in=[key[2] for key in by_key])
        .order_by("pk")
    }
    new, grown = [], []
    hour = now.replace(minute=0, second=0, microsecond=0)
    growth_by_row: list[tuple[PgStatement, tuple[float, ...]]] = []
    for key, (*_, query, calls, total, rows, hit, read) in by_key.items():
        current = (calls, total, rows, hit, read)
        row = stored.get(key)
        if row is None:
            row = PgStatement(
                userid=key[0], dbid=key[1], queryid=key[2], toplevel=key[3], query=query,
                first_seen=now, last_seen=now,
            )  # fmt: skip
            new.append(row)
        previous = tuple(getattr(row, f"read_{name}") for name in _COUNTERS)
        # Gone down: reset or evicted since the last reading, so all of it is new.
        growth = tuple(c - p if c >= p else c for c, p in zip(current, previous, strict=True))
        if baseline:
            growth = (0,) * len(_COUNTERS)
        for name, value in zip(_COUNTERS, current, strict=True):
            setattr(row, f"read_{name}", value)
        if any(growth):
            for name, value in zip(_COUNTERS, growth, strict=True):
                setattr(row, name, getattr(row, name) + value)
            row.last_seen = now
            growth_by_row.append((row, growth))
        if row.pk is not None and previous != current:
            grown.append(row)
    manager.bulk_create(new)
    fields = [*_COUNTERS, *(f"read_{name}" for name in _COUNTERS), "last_seen"]
    manager.bulk_update(grown, fields, batch_size=500)
    _add_hours(growth_by_row, hour, using)
    return len(growth_by_row)


def _add_hours(
    growth_by_row: list[tuple[PgStatement, tuple[float, ...]]], hour: dt.datetime, using: str
) -> None:
    if not growth_by_row:
        return
    manager = PgStatementHour.objects.using(using)
    ids = [row.pk for row, _ in growth_by_row]
    manager.bulk_create(
        [PgStatementHour(statement_id=pk, hour=hour) for pk in sorted(ids)], ignore_conflicts=True
    )
    hours = {
        h.statement_id: h
        for h in manager.select_for_update().filter(statement_id__in=ids, hour=hour).order_by("pk")
    }
    for row, (calls, total, rows, _hit, _read) in growth_by_row:
        entry = hours[row.pk]
        entry.calls += int(calls)
        entry.total_ms += total
        entry.rows += int(rows)
    manager.bulk_update(hours.values(), ["calls", "total_ms", "rows"], batch_size=500)
