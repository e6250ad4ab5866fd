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
