"""Measure the example project's pages: queries, database time, wall time and findings."""

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


def measure(client: Client, page: Page, repeat: int = 1) -> Measurement:
    """Request ``page`` once to warm up, then ``repeat`` times; times are medians."""
    path = page.path()
    client.get(path)
    runs: list[tuple[int, capture_queries, float]] = []
    for _ in range(repeat):
        with capture_queries() as captured:
            started = time.perf_counter()
            response = client.get(path)
            total_ms = (time.perf_counter() - started) * 1000
        runs.append((response.status_code, captured, total_ms))
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
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for number, row in enumerate(rows):
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


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
