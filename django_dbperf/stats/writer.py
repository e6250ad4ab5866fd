"""Write one buffered batch into the statistics tables, adding to what other processes wrote.

In one transaction, per table: insert the rows that do not exist yet (``ON CONFLICT DO
NOTHING``, in key order so two writers wait for each other instead of deadlocking), lock the
batch's rows (``SELECT ... FOR UPDATE`` in primary-key order; SQLite serialises writers
itself), add the batch's counters to them in Python and write them back. A few statements per
table, whatever the batch's size; numbers from any number of processes add up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from django.db import connections, models, transaction

from django_dbperf.analysis.sql_text import fingerprint_id
from django_dbperf.capture import Callsite
from django_dbperf.stats import histogram
from django_dbperf.stats.buffer import Batch, FindingTotals, Totals
from django_dbperf.stats.models import (
    FindingStat,
    Measured,
    QueryShape,
    QueryShapeHour,
    QueryShapeSearch,
    QueryShapeSite,
    StoreCounter,
    ViewStat,
)
from django_dbperf.stats.search import search_text

LOCK_TIMEOUT_MS = 5000
CHUNK = 500  # rows per statement: well under every backend's parameter limit
OVERFLOW = "overflow"  # StoreCounter: sampled queries not kept (MAX_FINGERPRINTS)
M = TypeVar("M", bound=models.Model)


def when(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC)


def site_text(site: Callsite | None) -> str:
    return str(site) if site is not None else ""


def chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def write(batch: Batch, using: str) -> None:
    """Add ``batch`` to the tables of database ``using`` (all of it, or nothing)."""
    with transaction.atomic(using=using):
        connection = connections[using]
        if connection.vendor == "postgresql":
            # Waiting behind a migration's lock would stall every later flush: fail, retry.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('lock_timeout', %s, true)", [f"{LOCK_TIMEOUT_MS}ms"]
                )
        shapes = _write_shapes(batch, using)
        _write_measured(
            QueryShapeHour,
            {(shapes[key[:2]].pk, when(key[2])): totals for key, totals in batch.hours.items()},
            lambda key: QueryShapeHour(shape_id=key[0], hour=key[1]),
            lambda row: (row.shape_id, row.hour),
            lambda keys: {"shape_id__in": {key[0] for key in keys}},
            using,
        )
        sites: dict[tuple[Any, ...], Totals] = {}
        functions: dict[tuple[Any, ...], str] = {}
        for (alias, shape, view, callsite, framework), totals in batch.sites.items():
            key = (
                shapes[(alias, shape)].pk,
                view[:255],
                site_text(callsite)[:500],
                site_text(framework)[:500],
            )
            sites[key] = totals
            functions[key] = callsite.function[:255] if callsite else ""
        _write_measured(
            QueryShapeSite,
            sites,
            lambda key: QueryShapeSite(
                shape_id=key[0],
                view=key[1],
                callsite=key[2],
                framework=key[3],
                function=functions[key],
            ),
            lambda row: (row.shape_id, row.view, row.callsite, row.framework),
            lambda keys: {"shape_id__in": {key[0] for key in keys}},
            using,
        )
        _write_views(batch, using)
        _write_findings(batch.findings, using)
        if batch.overflow:
            add_to_counter(OVERFLOW, batch.overflow, using)


def _write_shapes(batch: Batch, using: str) -> dict[tuple[str, str], QueryShape]:
    ids = {key: fingerprint_id(key[1]) for key in batch.shapes}

    def new(key: tuple[str, str]) -> QueryShape:
        shape = batch.shapes[(key[0], fingerprint_by_id[key])]
        return QueryShape(
            alias=key[0],
            fingerprint_id=key[1],
            fingerprint=fingerprint_by_id[key],
            sql=shape.sql,
            params=shape.params,
            is_select=shape.sql.lstrip().upper().startswith(("SELECT", "WITH")),
            first_seen=when(shape.totals.first_seen),
            last_seen=when(shape.totals.last_seen),
        )

    fingerprint_by_id = {(key[0], ids[key]): key[1] for key in batch.shapes}
    rows = _upsert(
        QueryShape,
        sorted(fingerprint_by_id),
        new,
        lambda row: (row.alias, row.fingerprint_id),
        lambda keys: {"fingerprint_id__in": {key[1] for key in keys}},
        using,
    )
    by_key = {}
    for key, shape in batch.shapes.items():
        row = rows[(key[0], ids[key])]
        _add(row, shape.totals)
        row.nplusone_findings += shape.nplusone
        row.duplicate_findings += shape.duplicates
        if row.params is None and shape.params is not None:
            row.params = shape.params
        by_key[key] = row
    fields = [*_MEASURED_FIELDS, "nplusone_findings", "duplicate_findings", "params"]
    QueryShape.objects.using(using).bulk_update(rows.values(), fields, batch_size=CHUNK)
    QueryShapeSearch.objects.using(using).bulk_create(
        [
            QueryShapeSearch(shape_id=row.pk, text=f"{row.fingerprint_id} {search_text(row.sql)}")
            for row in sorted(rows.values(), key=lambda row: row.pk)
        ],
        ignore_conflicts=True,
        batch_size=CHUNK,
    )
    return by_key


_MEASURED_FIELDS = (
    "calls", "sampled_calls", "total_ms", "max_ms", "rows", "histogram", "mean_ms", "p50_ms",
    "p95_ms", "p99_ms", "first_seen", "last_seen",
)  # fmt: skip


def _add(row: Measured, totals: Totals) -> None:
    row.calls += totals.calls
    row.sampled_calls += totals.sampled
    row.total_ms += totals.total_ms
    row.max_ms = max(row.max_ms, totals.max_ms)
    if totals.rows is not None:
        row.rows = (row.rows or 0.0) + totals.rows
    merged = histogram.merge(histogram.from_json(row.histogram), totals.histogram)
    row.histogram = histogram.to_json(merged)
    first, last = when(totals.first_seen), when(totals.last_seen)
    row.first_seen = min(row.first_seen, first)
    row.last_seen = max(row.last_seen, last)
    row.update_derived()


def _write_measured[M: Measured](
    model: type[M],
    batch: dict[tuple[Any, ...], Totals],
    new: Callable[[tuple[Any, ...]], M],
    key_of: Callable[[M], tuple[Any, ...]],
    narrow: Callable[[Sequence[tuple[Any, ...]]], dict[str, Any]],
    using: str,
) -> None:
    def stamped(key: tuple[Any, ...]) -> M:
        row = new(key)
        row.first_seen, row.last_seen = when(batch[key].first_seen), when(batch[key].last_seen)
        return row

    rows = _upsert(model, sorted(batch, key=_sortable), stamped, key_of, narrow, using)
    for key, totals in batch.items():
        _add(rows[key], totals)
    model._default_manager.using(using).bulk_update(
        rows.values(), list(_MEASURED_FIELDS), batch_size=CHUNK
    )


def _write_views(batch: Batch, using: str) -> None:
    views: dict[tuple[Any, ...], Totals] = {}
    for (_, _, view, _, _), totals in batch.sites.items():
        key = (view[:255],)
        if key not in views:
            views[key] = Totals()
        views[key].merge(totals)

    def new(key: tuple[Any, ...]) -> ViewStat:
        totals = views[key]
        return ViewStat(
            view=key[0], first_seen=when(totals.first_seen), last_seen=when(totals.last_seen)
        )

    rows = _upsert(
        ViewStat, sorted(views), new, lambda row: (row.view,),
        lambda keys: {"view__in": [key[0] for key in keys]}, using,
    )  # fmt: skip
    for key, totals in views.items():
        row = rows[key]
        row.calls += totals.calls
        row.total_ms += totals.total_ms
        row.first_seen = min(row.first_seen, when(totals.first_seen))
        row.last_seen = max(row.last_seen, when(totals.last_seen))
    fields = ["calls", "total_ms", "first_seen", "last_seen"]
    ViewStat.objects.using(using).bulk_update(rows.values(), fields, batch_size=CHUNK)


def _write_findings(findings: dict[tuple[Any, ...], FindingTotals], using: str) -> None:
    batch: dict[tuple[Any, ...], FindingTotals] = {}
    shapes: dict[tuple[Any, ...], str] = {}
    for (kind, shape, site, subject, view), found in findings.items():
        key = (kind, fingerprint_id(shape), site_text(site)[:500], subject[:255], view[:255])
        batch[key], shapes[key] = found, shape

    def new(key: tuple[Any, ...]) -> FindingStat:
        found = batch[key]
        return FindingStat(
            kind=key[0], fingerprint_id=key[1], fingerprint=shapes[key], callsite=key[2],
            subject=key[3], view=key[4], suggestion=found.suggestion,
            first_seen=when(found.first_seen), last_seen=when(found.last_seen),
        )  # fmt: skip

    rows = _upsert(
        FindingStat,
        sorted(batch),
        new,
        lambda row: (row.kind, row.fingerprint_id, row.callsite, row.subject, row.view),
        lambda keys: {"fingerprint_id__in": {key[1] for key in keys}},
        using,
    )
    for key, found in batch.items():
        row = rows[key]
        row.occurrences += found.occurrences
        row.queries += found.queries
        row.total_ms += found.total_ms
        row.first_seen = min(row.first_seen, when(found.first_seen))
        row.last_seen = max(row.last_seen, when(found.last_seen))
        row.suggestion = found.suggestion
    fields = ["occurrences", "queries", "total_ms", "first_seen", "last_seen", "suggestion"]
    FindingStat.objects.using(using).bulk_update(rows.values(), fields, batch_size=CHUNK)


def _upsert[M: models.Model](
    model: type[M],
    keys: Sequence[tuple[Any, ...]],
    new: Callable[[tuple[Any, ...]], M],
    key_of: Callable[[M], tuple[Any, ...]],
    narrow: Callable[[Sequence[tuple[Any, ...]]], dict[str, Any]],
    using: str,
) -> dict[tuple[Any, ...], M]:
    """The rows of ``keys``, created when missing, locked until the transaction ends."""
    manager = model._default_manager.using(using)
    rows: dict[tuple[Any, ...], M] = {}

    def lock(chunk: Sequence[tuple[Any, ...]]) -> None:
        wanted = set(chunk)
        for row in manager.select_for_update().filter(**narrow(chunk)).order_by("pk"):
            key = key_of(row)
            if key in wanted:
                rows[key] = row

    for chunk in chunks(keys):
        lock(chunk)
        missing = [key for key in chunk if key not in rows]
        if missing:
            manager.bulk_create([new(key) for key in missing], ignore_conflicts=True)
            lock(missing)
    absent = len(keys) - len(rows)
    if absent:  # a key the database compares differently than Python: refuse, never guess
        raise RuntimeError(f"{model.__name__}: {absent} rows could not be matched by their key")
    return rows


def _sortable(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(str(part) for part in key)


def add_to_counter(name: str, amount: int, using: str) -> None:
    now = dt.datetime.now(dt.UTC)
    manager = StoreCounter.objects.using(using)
    manager.bulk_create([StoreCounter(name=name, updated=now)], ignore_conflicts=True)
    manager.filter(name=name).update(value=models.F("value") + amount, updated=now)


def counters(using: str) -> dict[str, int]:
    return dict(StoreCounter.objects.using(using).values_list("name", "value"))
