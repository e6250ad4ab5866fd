"""The performance report behind ``dbperf_report``: the statistics store summed up for a person
or a CI job.

``build_report()`` reads the store (``STATS["DATABASE"]``): the statement shapes that cost the
most time on one database, with their lines and views; the slowest views; N+1 sites with their
fix; the cache hit ratio; on PostgreSQL, the index inventory's counts. A window (``since_days``)
reads the hourly rows, the only ones kept per hour; a view (``view``) reads the (view, line)
rows. ``failures()`` is the CI gate; ``Report.as_text()`` and ``Report.as_json()`` present it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from django.db import DatabaseError, connections
from django.db.models import Max, QuerySet, Sum

from django_dbperf.conf import get_config
from django_dbperf.stats import histogram
from django_dbperf.stats.models import (
    FindingStat,
    QueryShape,
    QueryShapeHour,
    QueryShapeSite,
    StoreCounter,
    ViewStat,
)

__all__ = [
    "FAIL_ON",
    "CacheSummary",
    "IndexHealth",
    "NPlusOneSite",
    "Report",
    "ReportError",
    "ShapeSummary",
    "Share",
    "ViewSummary",
    "build_report",
    "failures",
    "parse_fail_on",
]

FAIL_ON = ("nplusone", "slow", "invalid-index", "unused-index")
MAX_DAYS = 36_500  # further back than datetime arithmetic is sure to go
SHARES_SHOWN = 3  # lines and views listed per statement
SQL_SHOWN = 160
Times = dict[str, float]  # milliseconds per line or view
VIEWS_SUGGESTED = 10
# The tables a report reads: all must exist, or the store is not migrated.
TABLES = (QueryShape, QueryShapeHour, QueryShapeSite, ViewStat, FindingStat, StoreCounter)


class ReportError(ValueError):
    """An argument of ``build_report()`` or ``parse_fail_on()`` is wrong; the message says how."""


@dataclass(frozen=True)
class Share:
    """A line or a view, and the time it spent on one statement shape."""

    name: str
    total_ms: float


@dataclass(frozen=True)
class ShapeSummary:
    fingerprint_id: str
    calls: float  # estimated, like every total: sampled calls / SAMPLE_RATE
    total_ms: float
    mean_ms: float
    p95_ms: float | None
    rows: float | None  # None: the driver reported no count
    callsites: tuple[Share, ...]  # costliest first
    views: tuple[Share, ...]
    nplusone_findings: int  # sampled requests with an N+1 finding of this shape
    duplicate_findings: int
    sql: str  # shortened


@dataclass(frozen=True)
class ViewSummary:
    view: str
    calls: float
    total_ms: float
    last_seen: dt.datetime


@dataclass(frozen=True)
class NPlusOneSite:
    subject: str  # the relation, "app_label.Model.field"
    fingerprint_id: str
    callsite: str
    view: str
    suggestion: str
    occurrences: int  # sampled requests it was in
    queries: int  # queries it cost in those requests
    total_ms: float
    last_seen: dt.datetime


@dataclass(frozen=True)
class CacheSummary:
    hits: int
    misses: int
    ratio: float | None  # None: no cached read yet
    error: str | None = None  # the counters could not be read


@dataclass(frozen=True)
class IndexHealth:
    available: bool
    reason: str | None = None  # why not, when not available
    # Per index inventory kind: unused, redundant, invalid, unindexed_foreign_key.
    counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    database: str  # whose statements and indexes
    store: str  # the alias of the statistics tables
    top: int
    since_days: int | None  # None: all time
    view: str | None
    slow_query_ms: float
    # Set when the store cannot be read at all (then every list is empty).
    unavailable: str | None = None
    notes: tuple[str, ...] = ()
    shapes: tuple[ShapeSummary, ...] = ()
    views: tuple[ViewSummary, ...] = ()
    nplusone: tuple[NPlusOneSite, ...] = ()
    nplusone_total: int = 0  # every N+1 site in scope, not only the `top` listed
    slow: tuple[ShapeSummary, ...] = ()
    slow_total: int = 0
    cache: CacheSummary | None = None  # None: queryset caching is not configured
    indexes: IndexHealth = field(default_factory=lambda: IndexHealth(False))

    def window(self) -> str:
        window = "all time" if self.since_days is None else f"the last {self.since_days} day(s)"
        return window if self.view is None else f"{window}, view {self.view!r}"

    def scope(self) -> str:
        return f"statements on {self.database!r}, {self.window()}"

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=_json_value)

    def as_text(self) -> str:
        return "\n".join(_text(self))


def _json_value(value: object) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


# --- Building it


def build_report(
    top: int = 10, since_days: int | None = None, view: str | None = None, using: str = "default"
) -> Report:
    """The report of the statements run on the database ``using``, from the statistics store.

    ``top``: how many statements, views and N+1 sites to list. ``since_days``: only the last
    days (statements from their hourly rows, findings and views by when they were last seen);
    None for all time. ``view``: only that view's statements and findings (its resolver
    ``view_name``). Views and findings are not kept per database: they cover every alias.
    Raises ReportError for a bad argument; a store that cannot be read gives a report that
    says why (``Report.unavailable``).
    """
    config = get_config()
    store = config["STATS"]["DATABASE"]
    _check_arguments(top, since_days, using, store)
    base = Report(
        database=using,
        store=store,
        top=top,
        since_days=since_days,
        view=view,
        slow_query_ms=float(config["SLOW_QUERY_MS"]),
    )
    unreadable = _unreadable(store)
    if unreadable:
        return replace(base, unavailable=unreadable, indexes=_index_health(using))
    if view is not None:
        _check_view(view, store)
    cutoff = None if since_days is None else _cutoff(since_days)
    scope = _Scope(store, using, cutoff, view)
    slow = scope.slow(base.slow_query_ms)
    nplusone = scope.findings().filter(kind="n_plus_one")
    return replace(
        base,
        notes=tuple(_notes(scope)),
        shapes=tuple(scope.summaries(scope.measures(top=top))),
        views=tuple(scope.views(top)),
        nplusone=tuple(_nplusone_site(row) for row in nplusone.order_by(*_BY_OCCURRENCES)[:top]),
        nplusone_total=nplusone.count(),
        slow=tuple(scope.summaries(slow[:top])),
        slow_total=len(slow),
        cache=_cache(),
        indexes=_index_health(using),
    )


def _check_arguments(top: int, since_days: int | None, using: str, store: str) -> None:
    if top < 1:
        raise ReportError(f"--top must be at least 1, not {top}. Use e.g. --top 10.")
    if since_days is not None and not 1 <= since_days <= MAX_DAYS:
        raise ReportError(
            f"--since is a number of days from 1 to {MAX_DAYS}, not {since_days}. "
            "Use e.g. --since 7."
        )
    known = ", ".join(connections.settings)
    if using not in connections.settings:
        raise ReportError(f"Unknown database {using!r}: use one of {known} (--database).")
    if store not in connections.settings:
        raise ReportError(
            f"DBPERF['STATS']['DATABASE'] is {store!r}, which is not in DATABASES: set it to "
            f"one of {known}."
        )


def _unreadable(store: str) -> str | None:
    """Why the statistics tables cannot be read, or None when they can."""
    try:
        with connections[store].cursor() as cursor:
            existing = set(connections[store].introspection.table_names(cursor))
    except DatabaseError as error:
        return f"Could not read the statistics store {store!r}: {error}"
    missing = [model._meta.db_table for model in TABLES if model._meta.db_table not in existing]
    if not missing:
        return None
    return (
        f"The statistics tables are missing from the database {store!r} ({', '.join(missing)}): "
        f"run migrate (python manage.py migrate django_dbperf --database {store})."
    )


def _check_view(view: str, store: str) -> None:
    if (
        ViewStat.objects.using(store).filter(view=view).exists()
        or QueryShapeSite.objects.using(store).filter(view=view).exists()
    ):
        return
    known = list(ViewStat.objects.using(store).order_by("-total_ms").values_list("view", flat=True))
    if not known:
        raise ReportError(f"Unknown view {view!r} (--view): the store has no views yet.")
    shown = difflib.get_close_matches(view, known, n=VIEWS_SUGGESTED) or known[:VIEWS_SUGGESTED]
    raise ReportError(
        f"Unknown view {view!r} (--view): give a URL pattern's view name as the store keeps it "
        f"(resolver_match.view_name, with its namespace), e.g. {', '.join(map(repr, shown))}."
    )


def _cutoff(days: int) -> dt.datetime:
    # From the start of the hour, so the hourly row holding the window's start counts.
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    return start.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class _Measure:
    """A statement shape's totals in a report's scope, summed over the rows that hold them."""

    key: int  # the QueryShape's pk
    calls: float
    total_ms: float
    rows: float | None
    max_ms: float
    p95: float | None


_BY_OCCURRENCES = ("-occurrences", "-queries", "id")


@dataclass(frozen=True)
class _Scope:
    """What a report covers: a database's shapes, maybe a window, maybe one view."""

    store: str
    using: str
    cutoff: dt.datetime | None
    view: str | None

    def _rows(self) -> tuple[QuerySet[Any], str]:
        """The rows holding each shape's totals in scope, and their field naming the shape."""
        if self.cutoff is not None:
            # Hourly rows are per shape, not per view: with a view, its shapes' whole totals.
            hours = QueryShapeHour.objects.using(self.store).filter(
                shape__alias=self.using, hour__gte=self.cutoff
            )
            if self.view is not None:
                issued = QueryShapeSite.objects.using(self.store).filter(view=self.view)
                hours = hours.filter(shape_id__in=issued.values("shape_id"))
            return hours, "shape_id"
        if self.view is not None:
            sites = QueryShapeSite.objects.using(self.store)
            return sites.filter(shape__alias=self.using, view=self.view), "shape_id"
        return QueryShape.objects.using(self.store).filter(alias=self.using), "id"

    def measures(self, top: int | None = None, min_max_ms: float | None = None) -> list[_Measure]:
        """The costliest ``top`` shapes (all if None), or those with a call of ``min_max_ms``."""
        rows, key = self._rows()
        grouped = (
            rows.values(key)
            .annotate(n_calls=Sum("calls"), sum_ms=Sum("total_ms"), n_rows=Sum("rows"))
            .annotate(longest_ms=Max("max_ms"))
            .order_by("-sum_ms", key)
        )
        if min_max_ms is not None:
            grouped = grouped.filter(longest_ms__gte=min_max_ms)
        found = list(grouped if top is None else grouped[:top])
        merged: dict[int, histogram.Histogram] = defaultdict(dict)
        keys = [item[key] for item in found]
        for shape, stored in rows.filter(**{f"{key}__in": keys}).values_list(key, "histogram"):
            histogram.merge(merged[shape], histogram.from_json(stored))
        return [
            _Measure(
                key=item[key],
                calls=item["n_calls"] or 0.0,
                total_ms=item["sum_ms"] or 0.0,
                rows=item["n_rows"],
                max_ms=item["longest_ms"] or 0.0,
                p95=histogram.percentile(merged[item[key]], 0.95, item["longest_ms"]),
            )
            for item in found
        ]

    def slow(self, slow_ms: float) -> list[_Measure]:
        """Every shape whose p95 is at least ``slow_ms``, slowest first."""
        # A p95 is never above the longest call: shapes without a slow call are left unread.
        found = self.measures(min_max_ms=slow_ms)
        slow = [measure for measure in found if (measure.p95 or 0.0) >= slow_ms]
        return sorted(slow, key=lambda measure: (-(measure.p95 or 0.0), measure.key))

    def summaries(self, measures: list[_Measure]) -> list[ShapeSummary]:
        keys = [measure.key for measure in measures]
        shapes = QueryShape.objects.using(self.store).only("fingerprint_id", "sql").in_bulk(keys)
        lines, views = self._shares(keys)
        counts = self._finding_counts(shape.fingerprint_id for shape in shapes.values())
        summaries = []
        for measure in measures:
            shape = shapes[measure.key]
            summaries.append(
                ShapeSummary(
                    fingerprint_id=shape.fingerprint_id,
                    calls=measure.calls,
                    total_ms=measure.total_ms,
                    mean_ms=measure.total_ms / measure.calls if measure.calls else 0.0,
                    p95_ms=measure.p95,
                    rows=measure.rows,
                    callsites=_top_shares(lines[measure.key]),
                    views=_top_shares(views[measure.key]),
                    nplusone_findings=counts[("n_plus_one", shape.fingerprint_id)],
                    duplicate_findings=counts[("duplicate", shape.fingerprint_id)],
                    sql=_short(shape.sql),
                )
            )
        return summaries

    def _shares(self, keys: list[int]) -> tuple[dict[int, Times], dict[int, Times]]:
        """Time per line and per view of each shape (sites have no hours: all-time)."""
        sites = QueryShapeSite.objects.using(self.store).filter(shape_id__in=keys)
        if self.view is not None:
            sites = sites.filter(view=self.view)
        lines: dict[int, Times] = defaultdict(lambda: defaultdict(float))
        views: dict[int, Times] = defaultdict(lambda: defaultdict(float))
        rows = sites.values_list("shape_id", "view", "callsite", "framework", "total_ms")
        for shape, view, callsite, framework, total_ms in rows:
            lines[shape][callsite or framework or "(unknown line)"] += total_ms
            views[shape][view or "(no view)"] += total_ms
        return lines, views

    def findings(self) -> QuerySet[FindingStat]:
        found = FindingStat.objects.using(self.store)
        if self.cutoff is not None:
            found = found.filter(last_seen__gte=self.cutoff)
        if self.view is not None:
            found = found.filter(view=self.view)
        return found

    def _finding_counts(self, fingerprint_ids: Iterable[str]) -> Counter[tuple[str, str]]:
        rows = (
            self.findings()
            .filter(fingerprint_id__in=list(fingerprint_ids))
            .values("kind", "fingerprint_id")
            .annotate(requests=Sum("occurrences"))
        )
        return Counter({(row["kind"], row["fingerprint_id"]): row["requests"] for row in rows})

    def views(self, top: int) -> list[ViewSummary]:
        stats = ViewStat.objects.using(self.store)
        if self.cutoff is not None:
            stats = stats.filter(last_seen__gte=self.cutoff)
        if self.view is not None:
            stats = stats.filter(view=self.view)
        return [
            ViewSummary(row.view or "(no view)", row.calls, row.total_ms, row.last_seen)
            for row in stats.order_by("-total_ms", "view")[:top]
        ]


def _top_shares(times: Times) -> tuple[Share, ...]:
    costliest = sorted(times.items(), key=lambda item: (-item[1], item[0]))
    return tuple(Share(name, ms) for name, ms in costliest[:SHARES_SHOWN])


def _short(sql: str) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= SQL_SHOWN else flat[: SQL_SHOWN - 1] + "…"


def _nplusone_site(row: FindingStat) -> NPlusOneSite:
    return NPlusOneSite(
        subject=row.subject,
        fingerprint_id=row.fingerprint_id,
        callsite=row.callsite,
        view=row.view or "(no view)",
        suggestion=row.suggestion,
        occurrences=row.occurrences,
        queries=row.queries,
        total_ms=row.total_ms,
        last_seen=row.last_seen,
    )


def _notes(scope: _Scope) -> list[str]:
    """What a reader should know to read the numbers right, or why there are none."""
    config = get_config()
    shapes = QueryShape.objects.using(scope.store)
    notes = []
    if not shapes.exists() and not FindingStat.objects.using(scope.store).exists():
        notes.append(_empty_store_note(config))
    elif not shapes.filter(alias=scope.using).exists():
        aliases = sorted(set(shapes.values_list("alias", flat=True)))
        notes.append(
            f"No statement recorded on {scope.using!r}; the store has statements of "
            f"{', '.join(map(repr, aliases))} (--database)."
        )
    if not config["STATS"]["ENABLED"]:
        notes.append("DBPERF['STATS']['ENABLED'] is False: nothing new is being recorded.")
    if config["SAMPLE_RATE"] < 1:
        notes.append(
            f"Calls and times are estimates: requests are sampled (SAMPLE_RATE "
            f"{config['SAMPLE_RATE']}) and scaled up."
        )
    if scope.cutoff is not None:
        notes.append("View totals are all-time (views have no hourly rows): listed are the "
                     "views seen in the window.")  # fmt: skip
        if scope.view is not None:
            notes.append("With --since and --view, a statement's numbers are its totals in the "
                         "window over every view (hourly rows are not kept per view).")  # fmt: skip
    overflow = StoreCounter.objects.using(scope.store).filter(name="overflow").first()
    if overflow is not None and overflow.value:
        notes.append(
            f"{overflow.value:,} sampled queries were not kept: the store reached "
            "DBPERF['STATS']['MAX_FINGERPRINTS'] statement shapes."
        )
    return notes


def _empty_store_note(config: Mapping[str, Any]) -> str:
    stats = config["STATS"]
    if not stats["ENABLED"]:
        start = "No statistics yet: enable DBPERF['STATS']['ENABLED'] (it is False)"
    else:
        start = "No statistics yet: DBPERF['STATS']['ENABLED'] is on"
    return (
        f"{start}, add django_dbperf.middleware.QueryCountMiddleware to MIDDLEWARE and serve "
        f"requests; each process writes what it recorded every {stats['FLUSH_INTERVAL_S']:g} s "
        "(FLUSH_INTERVAL_S) and at exit."
    )


# --- Cache and indexes


def _cache() -> CacheSummary | None:
    from django_dbperf.conf import cache_configured

    if not cache_configured():
        return None
    from django_dbperf.admin.pages import cache_totals

    try:
        found = cache_totals()
    except Exception as error:  # the cache server may be down: the rest of the report stands
        return CacheSummary(0, 0, None, error=f"{type(error).__name__}: {error}")
    if found is None:
        return None
    totals = found["totals"]
    return CacheSummary(totals["hit"], totals["miss"], found["hit_ratio"])


def _index_health(using: str) -> IndexHealth:
    """Counts of the index inventory's problems, as ``dbperf_indexes unused`` lists them."""
    from django_dbperf.health import unavailable_reason
    from django_dbperf.indexes.inventory import KINDS, InventoryUnavailable, index_problems

    reason = unavailable_reason(using)
    if reason is not None:
        return IndexHealth(False, f"{reason.rstrip('.')} (--database chooses the database).")
    min_rows = get_config()["INDEXES"]["MIN_TABLE_ROWS"]
    try:
        if _is_replica(using):
            return IndexHealth(
                False, f"{using!r} is a read-only replica: its index scan counts only cover "
                "queries run on it. Report on the primary (--database).",
            )  # fmt: skip
        problems = index_problems(using, min_scans=0, min_rows=min_rows)
        kinds = Counter(problem.kind for problem in _worth_reading(problems, min_rows, using))
    except InventoryUnavailable as error:
        return IndexHealth(False, str(error))
    except DatabaseError as error:
        return IndexHealth(False, f"Could not read the index inventory: {error}")
    return IndexHealth(True, counts={kind: kinds[kind] for kind in KINDS})


def _is_replica(using: str) -> bool:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        row = cursor.fetchone()
    return bool(row and row[0])


def _worth_reading(problems: list[Any], min_rows: int, using: str) -> list[Any]:
    # An unused index on a small table costs next to nothing (as dbperf_indexes unused says).
    from django_dbperf.indexes.catalog import table_facts

    sizes = table_facts(sorted({problem.table for problem in problems}), using)
    return [
        problem
        for problem in problems
        if problem.kind not in ("unused", "redundant")
        or problem.table not in sizes
        or sizes[problem.table].rows >= min_rows
    ]


# --- The CI gate


def parse_fail_on(value: str) -> tuple[str, ...]:
    """``"nplusone,slow"`` as the kinds of ``FAIL_ON`` it names."""
    kinds = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    unknown = [kind for kind in kinds if kind not in FAIL_ON]
    if unknown or not kinds:
        named = f"Unknown --fail-on kind(s) {', '.join(unknown)}" if unknown else "No kind"
        raise ReportError(
            f"{named}: use a comma-separated list of {', '.join(FAIL_ON)}, "
            "e.g. --fail-on nplusone,slow."
        )
    return kinds


def failures(report: Report, kinds: Iterable[str]) -> list[str]:
    """One sentence per kind of ``FAIL_ON`` that ``report`` triggers (or could not check)."""
    found = (_failure(report, kind) for kind in kinds)
    return [message for message in found if message]


def _failure(report: Report, kind: str) -> str | None:
    if kind in ("nplusone", "slow") and report.unavailable:
        return f"{kind}: not checked: {report.unavailable}"
    if kind == "nplusone" and report.nplusone_total:
        site = report.nplusone[0]
        return (
            f"nplusone: {report.nplusone_total} N+1 site(s) ({report.window()}), e.g. "
            f"{site.subject or site.fingerprint_id} at {site.callsite or '?'}"
        )
    if kind == "slow" and report.slow_total:
        shape = report.slow[0]
        return (
            f"slow: {report.slow_total} statement shape(s) with p95 >= "
            f"{report.slow_query_ms:g} ms (SLOW_QUERY_MS), e.g. {shape.fingerprint_id} "
            f"(p95 {_ms(shape.p95_ms)})"
        )
    if kind in ("invalid-index", "unused-index"):
        return _index_failure(report.indexes, kind.removesuffix("-index"))
    return None


def _index_failure(health: IndexHealth, problem: str) -> str | None:
    if not health.available:
        return f"{problem}-index: not checked: {health.reason}"
    count = health.counts.get(problem, 0)
    if not count:
        return None
    return f"{problem}-index: {count} {problem} index(es) (dbperf_indexes unused lists them)"


# --- As text


def _ms(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"{value:,.2f} ms" if value < 10 else f"{value:,.0f} ms"


def _text(report: Report) -> list[str]:
    lines = [f"dbperf report: {report.scope()} (store {report.store!r})."]
    if report.unavailable:
        lines.append(report.unavailable)
    lines += [f"Note: {note}" for note in report.notes]
    if not report.unavailable:
        lines += _shapes_text(report)
        lines += _views_text(report)
        lines += _nplusone_text(report)
        lines += _slow_text(report)
    lines += _cache_text(report.cache)
    lines += _indexes_text(report)
    return lines


def _shapes_text(report: Report) -> list[str]:
    lines = ["", "Statements by total time:"]
    if not report.shapes:
        lines.append("  none recorded.")
    for number, shape in enumerate(report.shapes, 1):
        lines += _shape_text(number, shape)
    return lines


def _shape_text(number: int, shape: ShapeSummary) -> list[str]:
    rows = "" if shape.rows is None else f", {shape.rows:,.0f} rows"
    findings = [
        f"{count} {kind}"
        for kind, count in (
            ("N+1", shape.nplusone_findings),
            ("duplicate", shape.duplicate_findings),
        )
        if count
    ]
    lines = [
        f"{number:>3}. {shape.fingerprint_id}  {_ms(shape.total_ms)} total, {shape.calls:,.0f} "
        f"calls, mean {_ms(shape.mean_ms)}, p95 {_ms(shape.p95_ms)}{rows}"
        + (f"; findings: {', '.join(findings)}" if findings else ""),
        f"     {shape.sql}",
    ]
    lines += [f"     at {share.name} ({_ms(share.total_ms)})" for share in shape.callsites]
    if shape.views:
        shares = ", ".join(f"{share.name} ({_ms(share.total_ms)})" for share in shape.views)
        lines.append(f"     views: {shares}")
    return lines


def _views_text(report: Report) -> list[str]:
    lines = ["", "Views by database time" + (" (all-time totals):" if report.since_days else ":")]
    if not report.views:
        lines.append("  none recorded.")
    for number, view in enumerate(report.views, 1):
        lines.append(f"{number:>3}. {view.view}  {_ms(view.total_ms)}, {view.calls:,.0f} queries")
    return lines


def _nplusone_text(report: Report) -> list[str]:
    lines = ["", f"N+1 sites: {report.nplusone_total}" + ("." if report.nplusone else ", none.")]
    for number, site in enumerate(report.nplusone, 1):
        lines.append(
            f"{number:>3}. {site.subject or site.fingerprint_id} at {site.callsite or '?'} "
            f"in {site.view}: {site.occurrences} request(s), {site.queries} queries, "
            f"{_ms(site.total_ms)}"
        )
        if site.suggestion:
            lines.append(f"     fix: {site.suggestion}")
    return lines


def _slow_text(report: Report) -> list[str]:
    head = f"Slow statements (p95 >= {report.slow_query_ms:g} ms, SLOW_QUERY_MS): "
    lines = ["", head + (f"{report.slow_total}." if report.slow_total else "none.")]
    lines += [
        f"{number:>3}. {shape.fingerprint_id}  p95 {_ms(shape.p95_ms)}, {shape.calls:,.0f} "
        f"calls: {shape.sql}"
        for number, shape in enumerate(report.slow, 1)
    ]
    return lines


def _cache_text(cache: CacheSummary | None) -> list[str]:
    if cache is None:
        return []
    if cache.error:
        return ["", f"Cached querysets: the counters could not be read ({cache.error})."]
    ratio = "no cached read yet" if cache.ratio is None else f"hit ratio {cache.ratio:.1%}"
    return ["", f"Cached querysets: {cache.hits:,} hits, {cache.misses:,} misses, {ratio}."]


def _indexes_text(report: Report) -> list[str]:
    health = report.indexes
    head = f"Index health on {report.database!r}: "
    if not health.available:
        return ["", head + f"not available. {health.reason}"]
    counts = health.counts
    return [
        "",
        head + f"{counts.get('unused', 0)} unused, {counts.get('redundant', 0)} redundant, "
        f"{counts.get('invalid', 0)} invalid indexes, {counts.get('unindexed_foreign_key', 0)} "
        f"unindexed foreign keys (details: manage.py dbperf_indexes unused --database "
        f"{report.database}).",
    ]
