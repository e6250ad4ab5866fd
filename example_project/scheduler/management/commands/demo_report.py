"""Print each naive page next to its optimized twin: the before/after table of ``make demo``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.test import Client, override_settings

from django_dbperf import stats
from django_dbperf.conf import cache_configured
from example_project.scheduler.models import Event
from example_project.scheduler.pages import PAGE_PAIRS, PageUnavailable
from example_project.scheduler.report import (
    compare,
    format_cached_run,
    format_comparison,
    format_findings,
    run_cached_dashboard,
)


class Command(BaseCommand):
    help = (
        "Request every naive page of the example project and its optimized twin; print their "
        "queries and time, then what django_dbperf found on the naive pages."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--repeat", type=int, default=3, help="Timed requests per page (median shown)."
        )

    def handle(self, *args: Any, repeat: int, **options: Any) -> None:
        if repeat < 1:
            raise CommandError("--repeat must be at least 1.")
        events = Event.objects.count()
        if not events:
            raise CommandError("There are no events: run `manage.py seed_demo` first.")
        client = Client()
        # The report captures each request itself; the middleware would only log it twice.
        quiet = {**getattr(settings, "DBPERF", {}), "SAMPLE_RATE": 0.0}
        try:
            with override_settings(DBPERF=quiet):
                comparisons = [compare(client, naive, fast, repeat) for naive, fast in PAGE_PAIRS]
        except PageUnavailable as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            f"Each naive page (before) and its optimized twin under /fast/ (after), {events} "
            f"events, {connection.vendor}, median of {repeat} request{'s' * (repeat > 1)}:\n"
        )
        self.stdout.write(format_comparison(comparisons))
        before = sum(c.before.queries for c in comparisons)
        after = sum(c.after.queries for c in comparisons)
        self.stdout.write(f"\nAll pages: {before} queries before, {after} after.")
        findings = format_findings(c.before for c in comparisons)
        if findings:
            heading = "What django_dbperf found on the naive pages, with the fix for each:"
            self.stdout.write(f"\n{heading}\n")
            self.stdout.write(findings)
        leftover = format_findings(c.after for c in comparisons)
        if leftover:
            count = sum(len(c.after.findings) for c in comparisons)
            self.stdout.write(f"\nThe optimized pages still have {count} finding(s):\n")
            self.stdout.write(leftover)
        else:
            self.stdout.write("\nThe optimized pages: no findings.")
        if cache_configured():
            with override_settings(DBPERF=quiet):
                self.stdout.write("\n" + format_cached_run(run_cached_dashboard(client)))
        self.write_statistics()

    def write_statistics(self) -> None:
        """The requests above went through QueryCountMiddleware: write what it recorded."""
        result = stats.flush()
        if result.error:
            self.stdout.write(f"\nThe query statistics could not be written: {result.error}")
        elif result.written:
            self.stdout.write(
                f"\nQuery statistics of these requests ({result.shapes} statement shapes) are "
                "in the admin: /admin/django_dbperf/dashboard/"
            )
