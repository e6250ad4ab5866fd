"""The example project's cached dashboard: served from the cache, never stale after a write."""

from __future__ import annotations

import pytest
from django.test import Client

from django_dbperf import capture_queries
from example_project.scheduler.models import Event
from example_project.scheduler.seeding import seed_demo

pytestmark = pytest.mark.django_db(transaction=True)


def test_cached_dashboard_is_the_optimized_page_without_queries(cache_alias: str) -> None:
    seed_demo(events=8)
    client = Client()
    fast = client.get("/fast/").content
    first = client.get("/cached/").content
    with capture_queries() as captured:
        second = client.get("/cached/").content
    assert first == second == fast
    assert len(captured) == 0


def test_cached_dashboard_shows_a_write_at_once(cache_alias: str) -> None:
    seed_demo(events=8)
    client = Client()
    client.get("/cached/")
    event = Event.objects.order_by("pk").first()
    assert event is not None
    Event.objects.filter(pk=event.pk).update(name="Renamed by a test")
    page = client.get("/cached/").content.decode()
    assert "Renamed by a test" in page
    assert client.get("/fast/").content.decode() == page


def test_demo_report_prints_the_cached_dashboards_hit_ratio(cache_alias: str) -> None:
    from io import StringIO

    from django.core.management import call_command
    from django.test import override_settings

    seed_demo(events=5)
    out = StringIO()
    with override_settings(DBPERF={"CACHE": {"ALIAS": cache_alias}}):
        call_command("demo_report", repeat=1, stdout=out)
    output = out.getvalue()
    assert "Cached dashboard (/cached/): 30 requests, 3 writes to the events" in output
    ratio = int(output.split("hit ratio ")[1].split("%")[0])
    assert ratio >= 90
    assert "every response checked matched the optimized page byte for byte" in output
