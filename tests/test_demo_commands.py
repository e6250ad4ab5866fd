"""``make demo``'s commands: the demo superuser and the per-page query report."""

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
from example_project.scheduler.pages import NAIVE_PAGES, Page
from example_project.scheduler.report import measure
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


def test_demo_report_prints_every_page() -> None:
    seed_demo(events=5)
    output = run("demo_report", repeat=1)
    assert "Naive pages, 5 events" in output
    for page in NAIVE_PAGES:
        line = next(line for line in output.splitlines() if line.startswith(page.label + "  "))
        assert page.path() in line
        assert " 200 " in line
    assert "What django_dbperf found, with the fix for each:" in output
    assert 'fix: add .select_related("owner") to the Event queryset' in output


def test_demo_report_needs_seeded_data() -> None:
    with pytest.raises(CommandError, match=re.escape("run `manage.py seed_demo` first")):
        run("demo_report")


def test_demo_report_rejects_a_bad_repeat() -> None:
    with pytest.raises(CommandError, match="--repeat must be at least 1"):
        run("demo_report", repeat=0)
