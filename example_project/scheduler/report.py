"""Measure the example project's pages: queries, database time, wall time and findings.

``compare()`` measures a naive page and its optimized twin side by side, for the before/after
table of ``manage.py demo_report``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.test import Client

from django_dbperf import capture_queries
from django_dbperf.analysis import Finding
from example_project.scheduler.pages import Page


@dataclass(frozen=True)
class Measurement:
    label: str
    path: str
    status: int
    queries: int
    db_ms: float
    total_ms: float
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class Comparison:
    before: Measurement
    after: Measurement

    @property
    def speedup(self) -> float:
        return self.before.total_ms / self.after.total_ms if self.after.total_ms else 0.0


Run = tuple[int, capture_queries, float]


def _request(client: Client, path: str) -> Run:
    with capture_queries() as captured:
        started = time.perf_counter()
        response = client.get(path)
        total_ms = (time.perf_counter() - started) * 1000
    return response.status_code, captured, total_ms


def _summarise(page: Page, path: str, runs: list[Run]) -> Measurement:
    status, last, _ = runs[-1]
    return Measurement(
        label=page.label,
        path=path,
        status=status,
        queries=len(last),
        db_ms=statistics.median(run[1].total_ms for run in runs),
        total_ms=statistics.median(run[2] for run in runs),
        findings=last.findings,
    )


def measure(client: Client, page: Page, repeat: int = 1) -> Measurement:
    """Request ``page`` once to warm up, then ``repeat`` times; times are medians."""
    path = page.path()
    client.get(path)
    return _summarise(page, path, [_request(client, path) for _ in range(repeat)])


def compare(client: Client, before: Page, after: Page, repeat: int = 1) -> Comparison:
    """``measure()`` for both pages, their requests interleaved (both see the same machine)."""
    paths = before.path(), after.path()
    for path in paths:
        client.get(path)
    runs: tuple[list[Run], list[Run]] = ([], [])
    for _ in range(repeat):
        for path, page_runs in zip(paths, runs, strict=True):
            page_runs.append(_request(client, path))
    return Comparison(_summarise(before, paths[0], runs[0]), _summarise(after, paths[1], runs[1]))


def _format_rows(rows: list[tuple[str, ...]], left: int) -> str:
    """Columns padded to their widest cell; the first ``left`` columns left-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for number, row in enumerate(rows):
        cells = [
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_table(measurements: Iterable[Measurement]) -> str:
    rows = [("Page", "Path", "Status", "Queries", "DB ms", "Total ms", "Findings")]
    rows += [
        (
            m.label,
            m.path,
            str(m.status),
            str(m.queries),
            f"{m.db_ms:.1f}",
            f"{m.total_ms:.1f}",
            str(len(m.findings)),
        )
        for m in measurements
    ]
    return _format_rows(rows, left=2)


def _status(comparison: Comparison) -> str:
    before, after = comparison.before.status, comparison.after.status
    return str(before) if before == after else f"{before}/{after}"


def format_comparison(comparisons: Iterable[Comparison]) -> str:
    """The before/after table: queries and median wall time of each page and its twin."""
    header = ("Page", "Path", "Status", "Queries before", "Queries after", "ms before",
              "ms after", "Speed-up")  # fmt: skip
    rows = [header]
    rows += [
        (
            c.before.label,
            c.before.path,
            _status(c),
            str(c.before.queries),
            str(c.after.queries),
            f"{c.before.total_ms:.1f}",
            f"{c.after.total_ms:.1f}",
            f"{c.speedup:.1f}x",
        )
        for c in comparisons
    ]
    return _format_rows(rows, left=2)


def format_findings(measurements: Iterable[Measurement]) -> str:
    """Each page's findings with their fixes, most expensive first."""
    blocks = []
    for m in measurements:
        if m.findings:
            lines = [f"{m.label} ({m.path}):"]
            lines += [f"  {n}. {finding}".replace("\n", "\n     ") for n, finding in
                      enumerate(m.findings, 1)]  # fmt: skip
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# The models the cached dashboard reads through cached querysets.
CACHED_DASHBOARD_MODELS = ("scheduler.Event", "scheduler.Server", "scheduler.Job")


@dataclass(frozen=True)
class CachedRun:
    requests: int
    writes: int
    hits: int
    misses: int
    median_ms: float
    fast_median_ms: float
    matched: bool  # every response checked was the optimized page, byte for byte

    @property
    def hit_ratio(self) -> float:
        looked_up = self.hits + self.misses
        return self.hits / looked_up if looked_up else 0.0


def _hits_and_misses() -> tuple[int, int]:
    from django_dbperf import cache

    counts = cache.stats()
    hits = sum(counts.get(label, {}).get("hit", 0) for label in CACHED_DASHBOARD_MODELS)
    misses = sum(counts.get(label, {}).get("miss", 0) for label in CACHED_DASHBOARD_MODELS)
    return hits, misses


def run_cached_dashboard(client: Client, requests: int = 30, write_every: int = 10) -> CachedRun:
    """Request ``/cached/`` repeatedly, with a write to the events every ``write_every``
    requests (which must invalidate), and compare responses with the optimized page."""
    from django.db.models import F
    from django.urls import reverse

    from example_project.scheduler.models import Event

    cached_path = reverse("scheduler:cached_dashboard")
    fast_path = reverse("scheduler:fast_dashboard")
    event = Event.objects.order_by("pk").values_list("pk", flat=True).first()
    hits_before, misses_before = _hits_and_misses()
    timings, fast_timings, matched, writes = [], [], True, 0
    for number in range(requests):
        if number % write_every == 0:
            # A real write (an UPDATE of one row), though it changes no value.
            Event.objects.filter(pk=event).update(enabled=F("enabled"))
            writes += 1
        started = time.perf_counter()
        cached = client.get(cached_path)
        timings.append((time.perf_counter() - started) * 1000)
        if number % write_every in (0, 1):  # right after a write, and the hit after it
            started = time.perf_counter()
            fast = client.get(fast_path)
            fast_timings.append((time.perf_counter() - started) * 1000)
            matched = matched and cached.content == fast.content
    hits_after, misses_after = _hits_and_misses()
    return CachedRun(
        requests=requests,
        writes=writes,
        hits=hits_after - hits_before,
        misses=misses_after - misses_before,
        median_ms=statistics.median(timings),
        fast_median_ms=statistics.median(fast_timings),
        matched=matched,
    )


def format_cached_run(run: CachedRun) -> str:
    return (
        f"Cached dashboard (/cached/): {run.requests} requests, {run.writes} writes to the events "
        f"in between.\n"
        f"  hit ratio {run.hit_ratio:.0%} ({run.hits} hits, {run.misses} misses: each write "
        "invalidates the cached events)\n"
        f"  median {run.median_ms:.1f} ms per request; the optimized page "
        f"{run.fast_median_ms:.1f} ms\n"
        f"  {'every' if run.matched else 'NOT every'} response checked matched the optimized "
        "page byte for byte"
    )
