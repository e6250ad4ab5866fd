"""The in-process buffer: per statement shape, view and line, totals since the last flush.

A sampled request adds its queries here in one call, under one lock, without any I/O; the
flusher (``flusher.py``) takes the whole buffer and writes it. Memory is bounded: at most
``MAX_FINGERPRINTS`` shapes are kept between two flushes, and queries of further shapes are
only counted (``overflow``). Counts of sampled requests are scaled by ``1 / SAMPLE_RATE`` into
estimates (``calls``, ``total_ms``, ``rows``); ``sampled`` keeps what was really seen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django_dbperf.capture import Callsite, QueryRecord
from django_dbperf.stats import histogram
from django_dbperf.stats.histogram import Histogram

HOUR = 3600

ShapeKey = tuple[str, str]  # (alias, fingerprint)
HourKey = tuple[str, str, int]  # (alias, fingerprint, hour start in epoch seconds)
# (alias, fingerprint, view name, project line, framework line)
SiteKey = tuple[str, str, str, Callsite | None, Callsite | None]
# (kind, fingerprint, line, relation or model, view name)
FindingKey = tuple[str, str, Callsite | None, str, str]


@dataclass(slots=True)
class Totals:
    """Additive counters of one shape (overall or in one hour) or one (shape, view, line)."""

    calls: float = 0.0  # estimated: sampled calls scaled by 1 / SAMPLE_RATE
    sampled: int = 0
    total_ms: float = 0.0  # estimated like calls
    max_ms: float = 0.0
    rows: float | None = None  # estimated; None until a call's driver reports its row count
    histogram: Histogram = field(default_factory=dict)  # sampled durations
    first_seen: float = 0.0
    last_seen: float = 0.0

    def merge(self, other: Totals) -> None:
        self.calls += other.calls
        self.sampled += other.sampled
        self.total_ms += other.total_ms
        self.max_ms = max(self.max_ms, other.max_ms)
        if other.rows is not None:
            self.rows = (self.rows or 0.0) + other.rows
        histogram.merge(self.histogram, other.histogram)
        self.first_seen = min(filter(None, (self.first_seen, other.first_seen)), default=0.0)
        self.last_seen = max(self.last_seen, other.last_seen)


@dataclass(slots=True)
class Shape:
    """A statement shape's totals, with one sample of what ran."""

    sql: str  # a statement as sent, with placeholders
    params: list[Any] | None  # redacted sample values, only with STORE_PARAMS
    # The same statement's real values, in memory only: EXPLAIN (VERBOSE) needs values of the
    # right types to print pg_stat_statements' queryid (pg_statements.py). Never stored.
    raw_params: Any = None
    totals: Totals = field(default_factory=Totals)
    nplusone: int = 0  # N+1 findings (one per request and line) this shape was part of
    duplicates: int = 0


@dataclass(slots=True)
class FindingTotals:
    suggestion: str
    occurrences: int = 0  # requests it was found in (sampled)
    queries: int = 0  # queries it cost in those requests (sampled)
    total_ms: float = 0.0
    first_seen: float = 0.0
    last_seen: float = 0.0


@dataclass
class Batch:
    """What one flush writes: everything buffered since the previous one."""

    shapes: dict[ShapeKey, Shape] = field(default_factory=dict)
    hours: dict[HourKey, Totals] = field(default_factory=dict)
    sites: dict[SiteKey, Totals] = field(default_factory=dict)
    findings: dict[FindingKey, FindingTotals] = field(default_factory=dict)
    overflow: int = 0  # queries not kept: their shape did not fit under MAX_FINGERPRINTS

    def __bool__(self) -> bool:
        return bool(self.shapes or self.findings or self.overflow)

    def merge(self, other: Batch, max_shapes: int) -> None:
        """Add ``other`` (a batch whose flush failed) back, within the same bound."""
        dropped: set[ShapeKey] = set()
        for key, shape in other.shapes.items():
            mine = self.shapes.get(key)
            if mine is None:
                if len(self.shapes) >= max_shapes:
                    dropped.add(key)
                    self.overflow += shape.totals.sampled
                    continue
                self.shapes[key] = shape
                continue
            mine.totals.merge(shape.totals)
            mine.nplusone += shape.nplusone
            mine.duplicates += shape.duplicates
        for hour_key, totals in other.hours.items():
            if hour_key[:2] not in dropped:
                _merge_into(self.hours, hour_key, totals)
        for site_key, totals in other.sites.items():
            if site_key[:2] not in dropped:
                _merge_into(self.sites, site_key, totals)
        for finding_key, found in other.findings.items():
            mine_found = self.findings.setdefault(finding_key, FindingTotals(found.suggestion))
            mine_found.occurrences += found.occurrences
            mine_found.queries += found.queries
            mine_found.total_ms += found.total_ms
            mine_found.first_seen = min(
                filter(None, (mine_found.first_seen, found.first_seen)), default=0.0
            )
            mine_found.last_seen = max(mine_found.last_seen, found.last_seen)
        self.overflow += other.overflow


def _merge_into(table: dict[Any, Totals], key: Any, totals: Totals) -> None:
    mine = table.get(key)
    if mine is None:
        table[key] = totals
    else:
        mine.merge(totals)


ParamsSample = Callable[[QueryRecord], list[Any] | None]


# What a request adds per query, before any summing: one entry per (shape, view, lines, hour).
# The lines by id(): a Callsite is one shared object per line (hashing it costs more than the
# rest of the key), and the entry keeps both objects, so their ids stay theirs.
EntryKey = tuple[str, str, str, int, int, int]
# [weighted calls, sampled calls, weighted ms, max ms, weighted rows, histogram, first, last,
#  callsite, framework]
Entry = list[Any]


class Buffer:
    """The process's buffer; ``take()`` hands its contents to a flush and starts afresh.

    A request only adds to one list per (shape, view, lines, hour) under one lock: a few
    hundred nanoseconds per query. Shapes', hours' and sites' totals are summed from those
    entries when a flush takes them (``Batch``), off the request path. A batch whose write
    failed is kept as it is and merged into the next one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[EntryKey, Entry] = {}
        self._shapes: dict[ShapeKey, Shape] = {}
        self._findings: dict[FindingKey, FindingTotals] = {}
        self._overflow = 0
        self._failed: Batch | None = None

    def record(
        self,
        queries: Sequence[QueryRecord],
        findings: Iterable[Any],
        *,
        view: str,
        weight: float,
        max_shapes: int,
        sample_params: ParamsSample | None = None,
    ) -> None:
        """Add one sampled request's queries and findings (``weight`` = 1 / SAMPLE_RATE)."""
        now = time.time()
        hour = int(now // HOUR * HOUR)
        bucket_of = histogram.bucket_of
        with self._lock:
            entries, shapes = self._entries, self._shapes
            for query in queries:
                callsite, framework = query.callsite, query.framework
                key = (query.alias, query.fingerprint, view, id(callsite), id(framework), hour)
                entry = entries.get(key)
                if entry is None:
                    shape_key = (query.alias, query.fingerprint)
                    if shape_key not in shapes:
                        if len(shapes) >= max_shapes:
                            self._overflow += 1
                            continue
                        params = sample_params(query) if sample_params is not None else None
                        raw = None if query.many else query.params
                        shapes[shape_key] = Shape(query.sql, params, raw)
                    entry = [0.0, 0, 0.0, 0.0, None, {}, now, now, callsite, framework]
                    entries[key] = entry
                ms = query.duration * 1000
                entry[0] += weight
                entry[1] += 1
                entry[2] += ms * weight
                if ms > entry[3]:
                    entry[3] = ms
                if query.rows >= 0:  # -1: the driver did not say
                    entry[4] = (entry[4] or 0.0) + query.rows * weight
                counts = entry[5]
                bucket = bucket_of(ms)
                counts[bucket] = counts.get(bucket, 0) + 1
                entry[7] = now
            findings = list(findings)
            if findings:
                aliases: dict[str, set[str]] = {}
                for query in queries:
                    aliases.setdefault(query.fingerprint, set()).add(query.alias)
                for finding in findings:
                    self._record_finding(finding, view, now, aliases)

    def _record_finding(
        self, finding: Any, view: str, now: float, aliases: dict[str, set[str]]
    ) -> None:
        from django_dbperf.analysis.findings import DUPLICATE, N_PLUS_ONE

        subject = finding.relation or finding.model or ""
        site = finding.callsite or finding.framework
        key = (finding.kind, finding.fingerprint, site, subject, view)
        found = self._findings.get(key)
        if found is None:
            found = self._findings[key] = FindingTotals(finding.suggestion, first_seen=now)
        found.occurrences += 1
        found.queries += finding.count
        found.total_ms += finding.total_ms
        found.last_seen = now
        for alias in aliases.get(finding.fingerprint, ()):
            shape = self._shapes.get((alias, finding.fingerprint))
            if shape is None:  # its shape overflowed
                continue
            if finding.kind == N_PLUS_ONE:
                shape.nplusone += 1
            elif finding.kind == DUPLICATE:
                shape.duplicates += 1

    def take(self, max_shapes: int | None = None) -> Batch:
        """Everything buffered, summed into a batch, leaving the buffer empty."""
        with self._lock:
            entries, shapes, findings = self._entries, self._shapes, self._findings
            overflow, failed = self._overflow, self._failed
            self._entries, self._shapes, self._findings = {}, {}, {}
            self._overflow, self._failed = 0, None
        batch = _summed(entries, shapes, findings, overflow)
        if failed is None:
            return batch
        bound = len(failed.shapes) + len(batch.shapes) if max_shapes is None else max_shapes
        failed.merge(batch, bound)
        return failed

    def give_back(self, batch: Batch, max_shapes: int) -> None:
        """A batch whose write failed: kept for the next try (within the memory bound)."""
        with self._lock:
            if self._failed is not None:
                batch.merge(self._failed, max_shapes)
            self._failed = batch

    def __len__(self) -> int:
        """The statement shapes buffered (new, and kept from a failed write)."""
        with self._lock:
            if self._failed is None:
                return len(self._shapes)
            return len(self._shapes.keys() | self._failed.shapes.keys())


def _totals(entry: Entry) -> Totals:
    calls, sampled, total, maximum, rows, counts, first, last = entry[:8]
    return Totals(calls, sampled, total, maximum, rows, dict(counts), first, last)


def _summed(
    entries: dict[EntryKey, Entry],
    shapes: dict[ShapeKey, Shape],
    findings: dict[FindingKey, FindingTotals],
    overflow: int,
) -> Batch:
    """The per-shape, per-hour and per-(view, lines) totals of a buffer's entries."""
    batch = Batch(shapes=shapes, findings=findings, overflow=overflow)
    for (alias, shape, view, _, _, hour), entry in entries.items():
        totals = _totals(entry)
        callsite, framework = entry[8], entry[9]
        shapes[(alias, shape)].totals.merge(totals)
        _merge_into(batch.hours, (alias, shape, hour), _totals(entry))
        _merge_into(batch.sites, (alias, shape, view, callsite, framework), _totals(entry))
    return batch
