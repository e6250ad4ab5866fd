"""The example project's naive pages against their optimized twins, at 1,000 and 10,000 events.

Run from the repository root::

    .venv/bin/python benchmarks/example_pages.py                       # a temporary SQLite file
    .venv/bin/python -m tests.servers -- .venv/bin/python benchmarks/example_pages.py \\
        --db postgres                                                  # throwaway PostgreSQL

The script runs the example project itself (``example_project.settings``, the database from
``DATABASE_URL``, which it sets: a temporary SQLite file, or ``DBPERF_TEST_DATABASE_URL`` with
``--db postgres``), with ``DEBUG`` off. It migrates, then for each ``--events`` size replaces
the demo data (``seed_demo``, seed 42) and requests every naive page and its ``/fast/`` twin
through Django's test client, with django_dbperf's middleware switched off.

Per page: the queries of one request of each (and whether both answered the same bytes), then
the median latency over interleaved rounds: one naive request and ``--fast-per-round`` optimized
ones per round, in alternating order. A naive dashboard at 10,000 events takes seconds, so the
number of rounds is what ``--budget`` seconds of naive requests allow (at least 1, at most
``--rounds``). Finally the targets: the optimized dashboard runs at most 5 queries and is at
least 20x faster than the naive one at 1,000 events; the optimized dashboard, event list and
workflow detail run the same number of queries at every size.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # django_dbperf and example_project, run from anywhere

DATABASE_ENV = "DBPERF_TEST_DATABASE_URL"
TARGET_EVENTS = 1000
TARGET_DASHBOARD_QUERIES = 5
TARGET_DASHBOARD_SPEEDUP = 20.0
# Pages whose optimized twin must run as many queries at every size.
CONSTANT_PAGES = ("dashboard", "event_list", "workflow_detail")


def configure(db: str, workdir: str) -> None:
    """Point the example project's settings at the benchmark database and set Django up."""
    if db == "postgres":
        url = os.environ.get(DATABASE_ENV)
        if not url:
            sys.exit(
                f"--db postgres needs {DATABASE_ENV}; run it as\n"
                "  .venv/bin/python -m tests.servers -- .venv/bin/python "
                "benchmarks/example_pages.py --db postgres"
            )
    else:
        url = f"sqlite:///{Path(workdir) / 'example_pages.sqlite3'}"
    os.environ["DATABASE_URL"] = url
    os.environ["DEBUG"] = "0"  # no debug cursor: as in production
    os.environ["DJANGO_SETTINGS_MODULE"] = "example_project.settings"
    import django

    django.setup()


def seed(events: int) -> float:
    """Replace the demo data with ``events`` events; returns the seconds it took."""
    from django.db import connection, transaction

    from example_project.scheduler.seeding import reset_demo, seed_demo

    started = time.perf_counter()
    with transaction.atomic():
        reset_demo()
        seed_demo(events, seed=42)
    if connection.vendor == "postgresql":
        # Fresh planner statistics, as autovacuum would give the tables soon after a load.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return time.perf_counter() - started


@dataclass
class Row:
    label: str
    url_name: str
    path: str
    naive_queries: int
    fast_queries: int
    fast_findings: int
    same_output: bool
    naive_ms: list[float] = field(default_factory=list)
    fast_ms: list[float] = field(default_factory=list)

    @property
    def naive_median(self) -> float:
        return statistics.median(self.naive_ms)

    @property
    def fast_median(self) -> float:
        return statistics.median(self.fast_ms)

    @property
    def speedup(self) -> float:
        return self.naive_median / self.fast_median


def timed(client: Any, path: str) -> float:
    """Milliseconds for one request (after a garbage collection, so none is owed from before)."""
    gc.collect()
    started = time.perf_counter()
    response = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{path}: status {response.status_code}")
    return elapsed


def counted(client: Any, path: str) -> tuple[Any, int, int, float]:
    """One request under capture: the response, its queries and findings, and its seconds."""
    from django_dbperf import capture_queries

    started = time.perf_counter()
    with capture_queries() as captured:
        response = client.get(path)
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"{path}: status {response.status_code}")
    return response, len(captured), len(captured.findings), seconds


def measure_pair(
    client: Any, naive: Any, fast: Any, args: argparse.Namespace, progress: Callable[[str], None]
) -> Row:
    naive_path, fast_path = naive.path(), fast.path()
    # The counted requests double as the warm-up.
    before, naive_queries, _, naive_seconds = counted(client, naive_path)
    after, fast_queries, fast_findings, _ = counted(client, fast_path)
    row = Row(
        label=naive.label,
        url_name=naive.url_name,
        path=naive_path,
        naive_queries=naive_queries,
        fast_queries=fast_queries,
        fast_findings=fast_findings,
        same_output=before.content == after.content,
    )
    rounds = max(1, min(args.rounds, int(args.budget / max(naive_seconds, 1e-6))))
    for number in range(rounds):
        progress(f"{naive.label}: round {number + 1}/{rounds}")
        fast_first = number % 2 == 1
        if fast_first:
            row.fast_ms += [timed(client, fast_path) for _ in range(args.fast_per_round)]
        row.naive_ms.append(timed(client, naive_path))
        if not fast_first:
            row.fast_ms += [timed(client, fast_path) for _ in range(args.fast_per_round)]
    return row


def format_table(rows: list[Row]) -> str:
    header = ("Page", "Path", "Queries naive", "Queries fast", "Naive ms", "Fast ms",
              "Speed-up", "Runs", "Same output")  # fmt: skip
    table = [header]
    for row in rows:
        same = "yes" if row.same_output else "NO"
        if row.fast_findings:
            same += f" ({row.fast_findings} findings!)"
        table.append(
            (
                row.label,
                row.path,
                str(row.naive_queries),
                str(row.fast_queries),
                f"{row.naive_median:.1f}",
                f"{row.fast_median:.1f}",
                f"{row.speedup:.1f}x",
                f"{len(row.naive_ms)}/{len(row.fast_ms)}",
                same,
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = []
    for number, line in enumerate(table):
        cells = [
            cell.ljust(width) if i < 2 or i == len(header) - 1 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def check_targets(results: dict[int, list[Row]]) -> list[tuple[str, bool]]:
    checks: list[tuple[str, bool]] = []
    by_size = {size: {row.url_name: row for row in rows} for size, rows in results.items()}
    if TARGET_EVENTS in by_size:
        for name in ("dashboard", "api_dashboard"):
            row = by_size[TARGET_EVENTS][name]
            checks.append(
                (
                    f"{row.label} at {TARGET_EVENTS:,} events: {row.naive_queries} -> "
                    f"{row.fast_queries} queries (<= {TARGET_DASHBOARD_QUERIES})",
                    row.fast_queries <= TARGET_DASHBOARD_QUERIES,
                )
            )
            checks.append(
                (
                    f"{row.label} at {TARGET_EVENTS:,} events: {row.speedup:.1f}x faster "
                    f"(>= {TARGET_DASHBOARD_SPEEDUP:.0f}x)",
                    row.speedup >= TARGET_DASHBOARD_SPEEDUP,
                )
            )
    if len(by_size) > 1:
        for name in CONSTANT_PAGES:
            counts = {size: rows[name].fast_queries for size, rows in by_size.items()}
            label = next(iter(by_size.values()))[name].label
            shown = ", ".join(f"{count} at {size:,}" for size, count in counts.items())
            checks.append(
                (f"{label}, optimized: constant queries ({shown})", len(set(counts.values())) == 1)
            )
    for size, rows in by_size.items():
        different = [row.label for row in rows.values() if not row.same_output]
        found = [row.label for row in rows.values() if row.fast_findings]
        checks.append(
            (
                f"{size:,} events: every optimized page answers the naive page's bytes"
                + (f" (not: {', '.join(different)})" if different else ""),
                not different,
            )
        )
        checks.append(
            (
                f"{size:,} events: no findings on the optimized pages"
                + (f" (found on: {', '.join(found)})" if found else ""),
                not found,
            )
        )
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--events", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--rounds", type=int, default=9, help="Most timed rounds per page.")
    parser.add_argument(
        "--budget", type=float, default=12.0, help="Seconds of naive requests per page and size."
    )
    parser.add_argument("--fast-per-round", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="Exit 1 when a target is missed.")
    parser.add_argument(
        "--quiet", action="store_true", help="No progress on stderr (none unless it is a tty)."
    )
    args = parser.parse_args()
    if min(args.events) < 1 or args.rounds < 1 or args.fast_per_round < 1:
        parser.error("--events, --rounds and --fast-per-round must be at least 1")

    def progress(message: str) -> None:
        """One line on stderr, overwritten by the next; an empty message clears it."""
        if not args.quiet and sys.stderr.isatty():
            print(f"\r\033[K{message and '  ' + message}", end="", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="dbperf-example-") as workdir:
        configure(args.db, workdir)
        import django
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client, override_settings

        from example_project.scheduler.pages import PAGE_PAIRS

        call_command("migrate", verbosity=0, interactive=False)
        with connection.cursor():
            version = connection.get_database_version()
        print(
            f"Python {platform.python_version()}, Django {django.get_version()}, "
            f"{connection.vendor} {'.'.join(map(str, version))}, {platform.machine()}, "
            f"{os.cpu_count()} CPUs"
        )
        results: dict[int, list[Row]] = {}
        client = Client()
        quiet = {**getattr(settings, "DBPERF", {}), "ENABLED": False}
        for size in args.events:
            progress(f"seeding {size:,} events")
            seconds = seed(size)
            progress("")
            print(f"\n{size:,} events ({connection.vendor}, seeded in {seconds:.1f}s):")
            with override_settings(DBPERF=quiet):
                rows = [
                    measure_pair(client, naive, fast, args, progress) for naive, fast in PAGE_PAIRS
                ]
            progress("")
            results[size] = rows
            print(format_table(rows))
        checks = check_targets(results)
        print("\nTargets:")
        for text, ok in checks:
            print(f"  [{'met' if ok else 'MISSED'}] {text}")
        if connection.vendor == "sqlite":
            connection.close()  # before the temporary directory goes
    return 1 if args.check and not all(ok for _, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
