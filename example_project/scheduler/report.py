"""Measure the example project's pages: queries, database time and wall time per request."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.test import Client

from example_project.scheduler.pages import Page


@dataclass(frozen=True)
class Measurement:
    label: str
    path: str
    status: int
    queries: int
    db_ms: float
    total_ms: float


class QueryTimer:
    """An ``execute_wrapper`` that counts queries and adds up their time.

    Unlike ``CaptureQueriesContext`` it keeps no query log, so it has no 9,000-query limit.
    """

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
            self.count += 1


@contextmanager
def timed_queries() -> Iterator[QueryTimer]:
    """Count and time the queries of every database alias inside the block."""
    timer = QueryTimer()
    with ExitStack() as stack:
        for alias in connections:
            stack.enter_context(connections[alias].execute_wrapper(timer))
        yield timer


def measure(client: Client, page: Page, repeat: int = 1) -> Measurement:
    """Request ``page`` once to warm up, then ``repeat`` times; times are medians."""
    path = page.path()
    client.get(path)
    runs: list[tuple[int, int, float, float]] = []
    for _ in range(repeat):
        with timed_queries() as timer:
            started = time.perf_counter()
            response = client.get(path)
            total_ms = (time.perf_counter() - started) * 1000
        runs.append((response.status_code, timer.count, timer.seconds * 1000, total_ms))
    status, count, _, _ = runs[-1]
    return Measurement(
        label=page.label,
        path=path,
        status=status,
        queries=count,
        db_ms=statistics.median(run[2] for run in runs),
        total_ms=statistics.median(run[3] for run in runs),
    )


def format_table(measurements: Iterable[Measurement]) -> str:
    rows = [("Page", "Path", "Status", "Queries", "DB ms", "Total ms")]
    rows += [
        (m.label, m.path, str(m.status), str(m.queries), f"{m.db_ms:.1f}", f"{m.total_ms:.1f}")
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
