"""``dbperf_audit [URL ...] [--all]``: request pages, report their queries and findings with the
fix and its saving, and gate CI on them (or on what is new since a baseline).

Exit codes: 0 passed, 1 the gate failed (findings per ``--fail-on``, or regressions against
``--baseline``; a view that raises always fails it), 2 the audit could not run (a bad argument,
a missing or malformed baseline).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import Resolver404, resolve

from django_dbperf.audit import DEFAULT_FAIL_ON, FAIL_KINDS, run_audit
from django_dbperf.audit.baseline import BaselineError
from django_dbperf.audit.output import as_data, as_junit, as_text

CANNOT_RUN = 2


class Command(BaseCommand):
    help = (
        "Request pages (GET, through the test client) and report queries, database time, N+1 "
        "and duplicate findings with the fix and what it saves, and the budget; a CI gate."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("urls", nargs="*", metavar="URL", help="paths such as /events/")
        parser.add_argument("--all", action="store_true", help="every reachable GET route")
        parser.add_argument("--include-admin", action="store_true", help="with --all")
        parser.add_argument("--include-debug", action="store_true", help="with --all")
        parser.add_argument("--user", metavar="USERNAME", help="request as this user")
        parser.add_argument("--max-queries", type=int, help="budget per page (QUERY_BUDGET)")
        parser.add_argument("--baseline", type=Path, help="fail only on what is new or worse")
        parser.add_argument("--update-baseline", action="store_true", help="write --baseline")
        parser.add_argument("--format", choices=("text", "json", "junit"), default="text")
        parser.add_argument(
            "--fail-on",
            default=",".join(DEFAULT_FAIL_ON),
            help=f"comma-separated, from {', '.join(FAIL_KINDS)}, or none (a crashing view "
            f"always fails; default: %(default)s)",
        )

    def handle(self, *args: str, **options: Any) -> None:
        urls = options["urls"]
        fail_on = self._kinds(options["fail_on"])
        self._check(list(urls), options)
        try:
            result = run_audit(
                list(urls),
                crawl=options["all"],
                include_admin=options["include_admin"],
                include_debug=options["include_debug"],
                user=self._user(options["user"]),
                max_queries=options["max_queries"],
                fail_on=fail_on,
                baseline_path=options["baseline"],
                update_baseline=options["update_baseline"],
            )
        except BaselineError as error:
            raise CommandError(str(error), returncode=CANNOT_RUN) from None
        if options["format"] == "json":
            self.stdout.write(json.dumps(as_data(result), indent=2, sort_keys=True, default=str))
        elif options["format"] == "junit":
            self.stdout.write(as_junit(result))
        else:
            self.stdout.write(as_text(result))
        if result.failed:
            raise CommandError(f"The audit failed on {len(result.failures)} page(s).", returncode=1)

    def _kinds(self, given: str) -> list[str]:
        kinds = [kind.strip() for kind in given.split(",") if kind.strip()]
        if kinds == ["none"]:
            return []
        unknown = [kind for kind in kinds if kind not in FAIL_KINDS]
        if unknown:
            raise CommandError(
                f"Unknown --fail-on kind(s): {', '.join(unknown)}. Use a comma-separated list "
                f"from: {', '.join(FAIL_KINDS)}, or none.",
                returncode=CANNOT_RUN,
            )
        return kinds

    def _check(self, urls: list[str], options: dict[str, Any]) -> None:
        if not urls and not options["all"]:
            raise CommandError(
                "Give the URLs to audit (e.g. dbperf_audit /events/ /logs/), or --all to audit "
                "every GET route.",
                returncode=CANNOT_RUN,
            )
        if options["update_baseline"] and options["baseline"] is None:
            raise CommandError(
                "--update-baseline writes the file given with --baseline: add --baseline "
                "PATH (e.g. --baseline dbperf-baseline.json).",
                returncode=CANNOT_RUN,
            )
        if options["max_queries"] is not None and options["max_queries"] < 0:
            raise CommandError("--max-queries must be 0 or more.", returncode=CANNOT_RUN)
        for url in urls:
            if not url.startswith("/"):
                raise CommandError(
                    f"{url!r} is not a path: give paths as the site serves them, such as "
                    f"/events/ (no scheme or host).",
                    returncode=CANNOT_RUN,
                )
            try:
                resolve(url.split("?")[0])
            except Resolver404:
                raise CommandError(
                    f"{url} matches no URL pattern of ROOT_URLCONF: check the path (with "
                    f"--all, the command lists every route it can reach).",
                    returncode=CANNOT_RUN,
                ) from None

    def _user(self, username: str | None) -> Any:
        if username is None:
            return None
        model = get_user_model()
        try:
            return model._default_manager.get_by_natural_key(username)
        except model.DoesNotExist:
            raise CommandError(
                f"There is no user {username!r} ({model._meta.label}): create it (e.g. "
                f"createsuperuser) or give an existing username to --user.",
                returncode=CANNOT_RUN,
            ) from None
