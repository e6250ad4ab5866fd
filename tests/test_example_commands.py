"""The management commands on the example project's own pages and data (SQLite and PostgreSQL):
``dbperf_report`` and ``dbperf_explain`` over what its naive pages recorded, and
``dbperf_cache warm`` filling its cached dashboard (``dbperf_audit`` and ``dbperf_indexes`` on
the example project: test_command_audit.py and test_indexes_loop.py)."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client, override_settings

from django_dbperf import capture_queries, stats
from django_dbperf.cache.store import STORE
from django_dbperf.stats.flusher import FLUSHER
from django_dbperf.stats.models import QueryShape
from example_project.scheduler.hot import cached_dashboard_events, cached_dashboard_servers
from tests.helpers import queries

pytestmark = pytest.mark.django_db(transaction=True)
HOT = [
    "example_project.scheduler.hot.cached_dashboard_events",
    "example_project.scheduler.hot.cached_dashboard_servers",
]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def seeded() -> Iterator[None]:
    FLUSHER.buffer.take()
    call_command("seed_demo", events=20, reset=True, stdout=StringIO())
    yield
    FLUSHER.buffer.take()


def test_report_and_explain_on_what_the_event_list_recorded(seeded: None) -> None:
    with capture_queries() as captured:
        assert Client().get("/events/").status_code == 200
    stats.record_request(
        captured.queries, captured.findings, view="scheduler:event_list", sample_rate=1.0
    )
    assert stats.flush().written
    report = run("dbperf_report", "--view", "scheduler:event_list")
    assert "scheduler.Event.owner at example_project/scheduler/views.py" in report
    assert 'fix: add .select_related("owner") to the Event queryset' in report
    shape = QueryShape.objects.filter(sql__contains='FROM "scheduler_event"').first()
    assert shape is not None
    plan = run("dbperf_explain", shape.fingerprint_id)
    assert f"EXPLAIN of {shape.fingerprint_id}" in plan and "scheduler_event" in plan


def test_warm_fills_the_cached_dashboard(seeded: None, redis_cache: str) -> None:
    STORE.reset()
    with override_settings(DBPERF={"CACHE": {"ALIAS": redis_cache, "WARM": HOT}}):
        run("dbperf_cache", "clear")
        output = run("dbperf_cache", "warm", "--tag", "dashboard")
        assert "cached_dashboard_events (scheduler.Event): 20 rows" in output
        assert "2 warmed, 0 failed" in output
        # The dashboard's events and servers now come from the cache: no query.
        assert queries(lambda: list(cached_dashboard_events()))[1] == 0
        assert queries(lambda: list(cached_dashboard_servers()))[1] == 0
    STORE.reset()
