"""``dbperf_prune``: delete query statistics older than the retention period."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_dbperf import stats


class Command(BaseCommand):
    help = (
        "Delete hourly statistics older than --days (default: STATS['RETENTION_DAYS']), and "
        "statement shapes and findings not seen since."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, help="keep this many days (at least 1)")

    def handle(self, *args: Any, days: int | None = None, **options: Any) -> None:
        if days is not None and days < 1:
            raise CommandError(f"--days must be at least 1, not {days}. Use e.g. --days 14.")
        deleted = stats.prune(days)
        self.stdout.write(
            f"Deleted {deleted['hours']} hourly rows, {deleted['shapes']} statement shapes "
            f"and {deleted['findings']} findings."
        )
