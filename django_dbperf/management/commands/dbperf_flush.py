"""``dbperf_flush``: write this process's buffered query statistics now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_dbperf import stats


class Command(BaseCommand):
    help = (
        "Write the query statistics buffered in this process to the statistics tables now "
        "(a web process flushes by itself every FLUSH_INTERVAL_S and at exit)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = stats.flush()
        if result.error:
            raise CommandError(
                f"Could not write the statistics ({result.error}); they are kept for the next "
                "flush. Check that STATS['DATABASE'] is reachable and migrated "
                "(manage.py migrate django_dbperf)."
            )
        if result.written:
            self.stdout.write(f"Wrote statistics of {result.shapes} statement shapes.")
        else:
            self.stdout.write("Nothing to write: this process has no buffered statistics.")
