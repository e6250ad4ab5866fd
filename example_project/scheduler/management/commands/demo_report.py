"""Print queries and time per naive page: the "before" picture of ``make demo``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.test import Client, override_settings

from example_project.scheduler.models import Event
from example_project.scheduler.pages import NAIVE_PAGES, PageUnavailable
from example_project.scheduler.report import format_findings, format_table, measure


class Command(BaseCommand):
    help = "Request every naive page of the example project and print its queries and time."

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
        quiet = {**getattr(settings, "DBPERF", {}), "ENABLED": False}
        try:
            with override_settings(DBPERF=quiet):
                measurements = [measure(client, page, repeat) for page in NAIVE_PAGES]
        except PageUnavailable as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            f"Naive pages, {events} events, {connection.vendor} "
            f"(median of {repeat} request{'s' * (repeat > 1)}):\n"
        )
        self.stdout.write(format_table(measurements))
        findings = format_findings(measurements)
        if findings:
            self.stdout.write("\nWhat django_dbperf found, with the fix for each:\n")
            self.stdout.write(findings)
