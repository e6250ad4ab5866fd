"""``manage.py seed_demo``: fill the scheduler app with reproducible demo data."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from example_project.scheduler.seeding import demo_data_exists, reset_demo, seed_demo


class Command(BaseCommand):
    help = "Create reproducible demo data (users, servers, events, jobs, logs) for the example."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--events", type=int, default=1000, help="Number of events (default 1000)."
        )
        parser.add_argument("--seed", type=int, default=42, help="Random seed (default 42).")
        parser.add_argument(
            "--reset", action="store_true", help="Delete existing demo data before seeding."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        events = options["events"]
        if events < 1:
            raise CommandError(f"--events must be at least 1 (got {events}).")
        # One transaction: a failed seed must not leave the reset half-applied.
        with transaction.atomic():
            if options["reset"]:
                reset_demo()
            elif demo_data_exists():
                raise CommandError("Demo data already exists; pass --reset to replace it.")
            counts = seed_demo(events, seed=options["seed"])
        summary = ", ".join(f"{name}={count}" for name, count in counts.items())
        self.stdout.write(
            self.style.SUCCESS(f"Seeded demo data (seed {options['seed']}): {summary}")
        )
