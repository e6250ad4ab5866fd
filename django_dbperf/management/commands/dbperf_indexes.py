"""``dbperf_indexes suggest|verify|unused``: the index advisor from the command line."""

from __future__ import annotations

import json
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from django_dbperf import extras
from django_dbperf.conf import get_config
from django_dbperf.indexes import presenting

# The advisor parses SQL with pglast; 'verify' and 'unused' read the catalog only.
ADVISOR = "The index advisor (dbperf_indexes suggest)"


class Command(BaseCommand):
    help = (
        "Index advice from the statements the project runs: 'suggest' (with --write, into "
        "<app>/dbperf_indexes.py for makemigrations), 'verify' (a deploy gate: declared indexes "
        "exist, are valid and used) and 'unused' (removal candidates)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        suggest = actions.add_parser("suggest", help="suggest indexes from the statistics store")
        suggest.add_argument("--write", action="store_true", help="write <app>/dbperf_indexes.py")
        suggest.add_argument(
            "--min-saving", type=float, help="percent of plan cost (default MIN_COST_SAVING_PCT)"
        )
        verify = actions.add_parser("verify", help="declared indexes exist, are valid and used")
        unused = actions.add_parser("unused", help="indexes to remove or fix")
        unused.add_argument("--min-scans", type=int, default=0, help="scans at most (default 0)")
        unused.add_argument(
            "--min-rows", type=int, help="smaller tables are left out (default MIN_TABLE_ROWS)"
        )
        for sub in (suggest, verify, unused):
            sub.add_argument("--app", action="append", dest="apps", metavar="LABEL")
            sub.add_argument("--database", default="default", help="the alias to read")
            sub.add_argument("--format", choices=("text", "json"), default="text")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        using = options["database"]
        if using not in connections.settings:
            known = ", ".join(connections.settings)
            raise CommandError(f"Unknown database {using!r}: use one of {known} (--database).")
        labels = self._labels(options["apps"])
        if action == "suggest":
            if problem := extras.missing("advisor", ADVISOR):
                raise CommandError(problem)
            result = presenting.suggest(using, labels, options["write"], options["min_saving"])
        elif action == "verify":
            result = presenting.verify(using, labels)
        else:
            if options["min_scans"] < 0:
                raise CommandError("--min-scans must be 0 or more, e.g. --min-scans 50.")
            min_rows = options["min_rows"]
            if min_rows is None:
                min_rows = get_config()["INDEXES"]["MIN_TABLE_ROWS"]
            if min_rows < 0:
                raise CommandError("--min-rows must be 0 or more, e.g. --min-rows 10000.")
            result = presenting.unused(using, labels, options["min_scans"], min_rows)
        if options["format"] == "json":
            self.stdout.write(json.dumps(result.data, indent=2, sort_keys=True, default=str))
        else:
            self.stdout.write(result.text)
        if result.failed:
            raise CommandError(result.failed, returncode=1)

    def _labels(self, given: list[str] | None) -> list[str] | None:
        if not given:
            return None
        known = {config.label for config in apps.get_app_configs()}
        for label in given:
            if label not in known:
                raise CommandError(
                    f"Unknown app label {label!r} (--app): use the label of an installed app, "
                    f"one of: {', '.join(sorted(known))}."
                )
        return given
