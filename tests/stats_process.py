"""A separate process that records query statistics and flushes them, for the store's tests.

    python -m tests.stats_process SETTINGS_JSON migrate
    python -m tests.stats_process SETTINGS_JSON record ROUNDS FLUSH_EVERY
    python -m tests.stats_process SETTINGS_JSON record-and-exit ROUNDS
    python -m tests.stats_process SETTINGS_JSON totals

``SETTINGS_JSON`` is the ``DATABASES["default"]`` entry to use. ``record`` runs two statement
shapes per round inside ``capture_queries()``, records each round as a request and flushes
every ``FLUSH_EVERY`` rounds (and at the end), retrying failed flushes; ``record-and-exit``
never flushes (the process's exit does); ``totals`` prints the stored totals as JSON.
"""

from __future__ import annotations

import json
import sys


def setup(database: dict[str, object]) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={"default": database},
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_dbperf"],
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        DBPERF={"STATS": {"FLUSH_INTERVAL_S": 3600}},  # flushes only when told
    )
    django.setup()


def record(rounds: int, flush_every: int | None) -> None:
    from django.db import connection

    from django_dbperf import capture_queries, stats

    for number in range(1, rounds + 1):
        with capture_queries() as captured, connection.cursor() as cursor:
            cursor.execute("SELECT %s", [number])
            cursor.execute("SELECT %s, %s", [number, number])
        stats.record_request(captured.queries, [], view="process", sample_rate=1.0)
        if flush_every is not None and (number % flush_every == 0 or number == rounds):
            flush_until_written()


def flush_until_written() -> None:
    """A failed flush keeps its batch; the next one writes it (SQLite: a busy database)."""
    import time

    from django_dbperf import stats

    for _ in range(200):
        result = stats.flush()
        if result.written:
            return
        time.sleep(0.05)
    sys.exit(f"flush failed 200 times: {result.error}")


def totals() -> None:
    from django_dbperf.stats.models import QueryShape, QueryShapeHour, QueryShapeSite

    print(
        json.dumps(
            {
                "shapes": {s.fingerprint: s.sampled_calls for s in QueryShape.objects.all()},
                "hours": sum(h.sampled_calls for h in QueryShapeHour.objects.all()),
                "sites": sum(s.sampled_calls for s in QueryShapeSite.objects.all()),
            }
        )
    )


def main(argv: list[str]) -> None:
    setup(json.loads(argv[0]))
    command = argv[1]
    if command == "migrate":
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    elif command == "record":
        record(int(argv[2]), int(argv[3]))
    elif command == "record-and-exit":
        record(int(argv[2]), None)
    else:
        totals()


if __name__ == "__main__":
    main(sys.argv[1:])
