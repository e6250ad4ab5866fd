"""The index advisor's loop on the example project, end to end, without touching the project.

Requests the logs page filtered by level (a filtered, sorted read of the biggest table) through
the middleware and writes the statistics; then, in a scratch copy of the project and of its
database, runs what a person would: ``dbperf_indexes suggest --write`` -> ``makemigrations``
-> ``migrate`` -> ``dbperf_indexes verify``, and times the page's query before and after.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.test import Client, override_settings

from django_dbperf import stats
from example_project.scheduler.models import JobLog

PROJECT = Path(__file__).resolve().parents[3]  # the example_project package
TIMING = """
import statistics, time
import django
django.setup()
from django.test import RequestFactory
from example_project.scheduler.models import JobLog
from example_project.scheduler.views import latest_logs
request = RequestFactory().get("/logs/", {"level": "error"})
times = []
for _ in range(30):
    start = time.perf_counter()
    list(latest_logs(JobLog.objects.all(), request))
    times.append((time.perf_counter() - start) * 1000)
print(f"{statistics.median(times):.3f}")
"""


class Command(BaseCommand):
    help = (
        "Show the index advisor's loop (suggest --write, makemigrations, migrate, verify) on a "
        "scratch copy of the example project and its database; the project is not changed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not JobLog.objects.exists():
            raise CommandError("There are no logs: run `manage.py seed_demo` first.")
        self.record_requests()
        scratch = Path(tempfile.mkdtemp(prefix="dbperf_demo_indexes_"))
        try:
            environment = self.scratch_copy(scratch)
            self.loop(scratch, environment)
        finally:
            self.drop_copy()
            shutil.rmtree(scratch, ignore_errors=True)

    def record_requests(self) -> None:
        given = getattr(settings, "DBPERF", {})
        recording = {**given, "SAMPLE_RATE": 1.0, "STATS": {"ENABLED": True}}
        client = Client()
        logger = logging.getLogger("django_dbperf")
        level_before = logger.level
        logger.setLevel(logging.ERROR)  # demo_report already printed the N+1 findings
        try:
            with override_settings(DBPERF=recording):
                for level in JobLog.Level.values * 5:
                    client.get("/logs/", {"level": level})
        finally:
            logger.setLevel(level_before)
        result = stats.flush()
        if result.error:
            raise CommandError(f"The query statistics could not be written: {result.error}")

    _copied_database: str | None = None

    def scratch_copy(self, scratch: Path) -> dict[str, str]:
        """The example_project package and its database, copied; the environment to use them."""
        ignored = shutil.ignore_patterns("__pycache__", "*.sqlite3")
        shutil.copytree(PROJECT, scratch / PROJECT.name, ignore=ignored)
        database = settings.DATABASES["default"]
        if connection.vendor == "sqlite":
            copy = scratch / "demo.sqlite3"
            connection.close()
            shutil.copyfile(database["NAME"], copy)
            url = f"sqlite:///{copy}"
        elif connection.vendor == "postgresql":
            name = f"{database['NAME']}_indexes_demo"
            self.stdout.write(f"Copying the database into {name} ...")
            self._run_admin_sql(f'DROP DATABASE IF EXISTS "{name}"')
            self._run_admin_sql(f'CREATE DATABASE "{name}" TEMPLATE "{database["NAME"]}"')
            self._copied_database = name
            user = database.get("USER") or ""
            password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
            at = f"{user}{password}@" if user else ""
            host, port = database.get("HOST") or "localhost", database.get("PORT") or 5432
            url = f"postgres://{at}{host}:{port}/{name}"
        else:
            vendor = connection.vendor
            raise CommandError(f"The demo copies SQLite or PostgreSQL databases, not {vendor}.")
        return {
            **os.environ,
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "example_project.settings",
            "PYTHONPATH": os.pathsep.join([str(scratch), str(PROJECT.parent)]),
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def _run_admin_sql(self, sql: str) -> None:
        """CREATE/DROP DATABASE: outside a transaction, from the server's maintenance database.

        Copying needs no other session on the demo database (a running runserver counts)."""
        connection.close()
        try:
            with connection._nodb_cursor() as cursor:
                cursor.execute(sql)
        except Exception as error:
            raise CommandError(
                f"{sql} failed: {error}. Stop other processes using the demo database "
                f"(runserver, a shell) and run this again."
            ) from error

    def drop_copy(self) -> None:
        if self._copied_database:
            self._run_admin_sql(f'DROP DATABASE IF EXISTS "{self._copied_database}"')

    def loop(self, scratch: Path, environment: dict[str, str]) -> None:
        def run(*command: str) -> str:
            result = subprocess.run(
                [sys.executable, *command], cwd=scratch, env=environment, capture_output=True,
                text=True, timeout=600,
            )  # fmt: skip
            if result.returncode != 0:
                raise CommandError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
            return result.stdout.strip()

        def step(title: str, *command: str) -> str:
            self.stdout.write(f"\n$ python -m django {' '.join(command)}   # {title}")
            output = run("-m", "django", *command)
            self.stdout.write("\n".join("  " + line for line in output.splitlines()))
            return output

        self.stdout.write("\nThe index advisor, on a scratch copy of the project and database:")
        step("what would speed up the statements the pages ran", "dbperf_indexes", "suggest",
             "--app", "scheduler", "--write")  # fmt: skip
        module = scratch / "example_project" / "scheduler" / "dbperf_indexes.py"
        if not module.exists():
            self.stdout.write("\nNo suggestion was written: nothing more to show.")
            return
        self.stdout.write("\nThe reviewed declaration it wrote (scheduler/dbperf_indexes.py):")
        declaration = [line for line in module.read_text().splitlines() if "models.Index(" in line]
        self.stdout.write("\n".join("  " + line.strip() for line in declaration))
        before = float(run("-c", TIMING))
        step("plain makemigrations writes the migration", "makemigrations", "scheduler")
        step("and migrate builds the index", "migrate", "scheduler")
        step("a deploy gate: built, valid, used", "dbperf_indexes", "verify", "--app", "scheduler")
        after = float(run("-c", TIMING))
        self.stdout.write(
            f"\nThe logs page's query (?level=error): {before:.2f} ms before the index, "
            f"{after:.2f} ms after ({before / after:.1f}x), median of 30."
        )
