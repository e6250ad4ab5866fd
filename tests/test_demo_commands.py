"""``make demo``'s commands: the demo superuser and the before/after report of every page."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client

from django_dbperf import capture_queries
from example_project.scheduler.management.commands import demo_report
from example_project.scheduler.pages import PAGE_PAIRS, Page
from example_project.scheduler.report import compare, measure
from example_project.scheduler.seeding import seed_demo

pytestmark = pytest.mark.django_db


def run(command: str, **options: object) -> str:
    out = StringIO()
    call_command(command, stdout=out, **options)
    return out.getvalue()


def printed_password(output: str) -> str:
    return output.split("password: ")[1].split()[0]


def test_demo_superuser_can_log_in_with_the_printed_password() -> None:
    output = run("demo_superuser")
    user = authenticate(username="admin", password=printed_password(output))
    assert user is not None
    assert user.is_superuser and user.is_staff
    assert "Created the demo superuser" in output


def test_demo_superuser_again_resets_the_password() -> None:
    first = printed_password(run("demo_superuser"))
    output = run("demo_superuser")
    second = printed_password(output)
    assert first != second
    assert "Reset the password" in output
    assert authenticate(username="admin", password=first) is None
    assert authenticate(username="admin", password=second) is not None
    assert get_user_model().objects.filter(username="admin").count() == 1


def test_demo_superuser_rejects_an_empty_username() -> None:
    with pytest.raises(CommandError, match="--username must not be empty"):
        run("demo_superuser", username=" ")


def test_capture_counts_every_query_past_djangos_log_limit() -> None:
    # CaptureQueriesContext keeps at most 9,000 queries; the report (and capture) must not.
    with capture_queries() as captured, connection.cursor() as cursor:
        for _ in range(9_100):
            cursor.execute("SELECT 1")
    assert len(captured) == 9_100
    assert captured.total_ms > 0


def test_measure_counts_the_queries_of_one_request() -> None:
    seed_demo(events=3)
    page = Page("Event list", "event_list")
    measurement = measure(Client(), page, repeat=2)
    with capture_queries() as captured:
        Client().get(page.path())
    assert measurement.status == 200
    assert measurement.queries == len(captured) > 3
    assert {finding.relation for finding in measurement.findings} >= {"scheduler.Event.owner"}
    assert measurement.total_ms >= measurement.db_ms > 0


def test_compare_measures_a_page_and_its_twin() -> None:
    seed_demo(events=3)
    naive, fast = Page("Event list", "event_list"), Page("Event list", "fast_event_list")
    comparison = compare(Client(), naive, fast, repeat=2)
    assert (comparison.before.path, comparison.after.path) == ("/events/", "/fast/events/")
    assert comparison.before.status == comparison.after.status == 200
    assert comparison.before.queries > comparison.after.queries
    assert comparison.before.findings and not comparison.after.findings
    assert comparison.speedup == comparison.before.total_ms / comparison.after.total_ms


def table_row(output: str, label: str) -> list[str]:
    """The cells of the before/after table's row for ``label`` (labels may contain spaces)."""
    line = next(line for line in output.splitlines() if line.startswith(label + "  "))
    return line[len(label) :].split()


@pytest.mark.django_db(transaction=True)  # the statistics are written by another thread
def test_demo_report_prints_every_page_before_and_after() -> None:
    from django.test import override_settings

    from django_dbperf.stats.flusher import FLUSHER
    from tests.test_middleware import MIDDLEWARE

    seed_demo(events=5)
    FLUSHER.buffer.take()
    with override_settings(MIDDLEWARE=MIDDLEWARE):  # the example project's has it too
        output = run("demo_report", repeat=1)
    assert "its optimized twin under /fast/ (after), 5 events, " in output
    assert "Queries before  Queries after  ms before  ms after  Speed-up" in output
    for naive, _ in PAGE_PAIRS:
        path, status, queries_before, queries_after, ms_before, ms_after, speedup = table_row(
            output, naive.label
        )
        assert path == naive.path()
        assert status == "200"
        assert int(queries_after) <= int(queries_before)
        assert float(ms_before) > 0 and float(ms_after) > 0
        assert speedup.endswith("x")
    dashboard = table_row(output, "Dashboard")
    assert int(dashboard[2]) > 5 * int(dashboard[3])
    # The naive pages' findings, with their fixes; none left on the optimized pages.
    assert "What django_dbperf found on the naive pages, with the fix for each:" in output
    assert 'fix: add .select_related("owner") to the Event queryset' in output
    assert "The optimized pages: no findings." in output
    # The admin has data: every page's statements, with its view's name.
    assert output.rstrip().endswith("are in the admin: /admin/django_dbperf/dashboard/")
    from django_dbperf.stats.models import QueryShapeSite

    views = set(QueryShapeSite.objects.values_list("view", flat=True))
    assert {"scheduler:dashboard", "scheduler:fast_dashboard"} <= views


def test_demo_report_prints_findings_left_on_the_optimized_pages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pair the event list with itself: its "optimized" side then has the naive findings.
    event_list = Page("Event list", "event_list")
    monkeypatch.setattr(demo_report, "PAGE_PAIRS", [(event_list, event_list)])
    seed_demo(events=5)
    output = run("demo_report", repeat=1)
    assert re.search(r"The optimized pages still have \d+ finding\(s\):", output)
    assert "no findings" not in output
    left = output.split("The optimized pages still have")[1]
    assert "Event list (/events/):" in left
    assert "N+1 on scheduler.Event.owner" in left


def test_demo_report_needs_seeded_data() -> None:
    with pytest.raises(CommandError, match=re.escape("run `manage.py seed_demo` first")):
        run("demo_report")


def test_demo_report_rejects_a_bad_repeat() -> None:
    with pytest.raises(CommandError, match="--repeat must be at least 1"):
        run("demo_report", repeat=0)
