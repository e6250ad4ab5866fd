"""``dbperf_report``: what the statistics store knows, for a person or as a CI gate."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_dbperf.stats import report


class Command(BaseCommand):
    help = (
        "Report from the statistics store: the statements that cost the most time, the slowest "
        "views, N+1 sites with their fix, the cache hit ratio and (PostgreSQL) index health. "
        "With --fail-on, exit non-zero when the report shows those problems (for CI)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--top", type=int, default=10, metavar="N", help="rows per list (10)")
        parser.add_argument("--since", type=int, metavar="DAYS", help="only the last DAYS days")
        parser.add_argument("--view", metavar="NAME", help="only this view (its view_name)")
        parser.add_argument(
            "--database", default="default", help="whose statements and indexes (the alias)"
        )
        parser.add_argument("--format", choices=("text", "json"), default="text")
        parser.add_argument(
            "--fail-on",
            metavar="KINDS",
            help=f"exit 1 when any is found (comma-separated: {', '.join(report.FAIL_ON)})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            kinds = report.parse_fail_on(options["fail_on"]) if options["fail_on"] else ()
            built = report.build_report(
                options["top"], options["since"], options["view"], options["database"]
            )
        except report.ReportError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(built.as_json() if options["format"] == "json" else built.as_text())
        failed = report.failures(built, kinds)
        if failed:
            raise CommandError(
                f"dbperf_report --fail-on: {len(failed)} check(s) failed: " + "; ".join(failed),
                returncode=1,
            )
