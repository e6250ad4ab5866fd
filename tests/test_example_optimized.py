"""The example project's optimized pages: the same output as the naive ones, in constant queries."""

from __future__ import annotations

import unittest

import django
import pytest
from django.test import Client, TestCase, override_settings
from django.urls import reverse

from django_dbperf import capture_queries
from django_dbperf.testing import DbPerfTestMixin
from example_project.scheduler import fast_urls
from example_project.scheduler.models import Event, Workflow
from example_project.scheduler.pages import NAIVE_PAGES, OPTIMIZED_PAGES, PAGE_PAIRS, Page
from example_project.scheduler.seeding import seed_demo

SIZES = (5, 40)
MAX_DASHBOARD_QUERIES = 5
FAST = {page.url_name: page for page in OPTIMIZED_PAGES}
NAIVE = {page.url_name: page for page in NAIVE_PAGES}


def pair_id(pair: tuple[Page, Page]) -> str:
    return pair[1].url_name


def get(client: Client, path: str) -> bytes:
    response = client.get(path)
    assert response.status_code == 200, path
    return bytes(response.content)


# Which pages there are


def test_optimized_pages_cover_every_fast_url() -> None:
    # Every optimized twin, plus the cached dashboard (tests/test_cache_example.py).
    names = {pattern.name for pattern in fast_urls.urlpatterns} - {"cached_dashboard"}
    assert set(FAST) == names
    assert all(name.startswith("fast_") for name in names)


def test_every_naive_page_has_its_twin_under_fast() -> None:
    assert [naive.url_name for naive, _ in PAGE_PAIRS] == [page.url_name for page in NAIVE_PAGES]
    for naive, fast in PAGE_PAIRS:
        assert fast.url_name == f"fast_{naive.url_name}"
        assert fast.label == naive.label
    assert reverse("scheduler:fast_dashboard") == "/fast/"
    assert reverse("scheduler:fast_api_events") == "/fast/api/events/"


# The same output as the naive pages


@pytest.mark.django_db
@pytest.mark.parametrize("pair", PAGE_PAIRS, ids=pair_id)
def test_optimized_page_shows_what_the_naive_one_shows(
    client: Client, pair: tuple[Page, Page]
) -> None:
    seed_demo(20)
    naive, fast = pair
    before, after = client.get(naive.path()), client.get(fast.path())

    assert (before.status_code, after.status_code) == (200, 200)
    assert after["Content-Type"] == before["Content-Type"]
    if naive.url_name.startswith("api_"):
        assert after.json() == before.json()
    else:
        # Same templates, same rows: the very same HTML.
        assert after.content.decode() == before.content.decode()
    names = Event.objects.values_list("name", flat=True)
    assert any(name in after.content.decode() for name in names)


@pytest.mark.django_db
def test_every_detail_page_matches(client: Client) -> None:
    seed_demo(25)
    for pk in Workflow.objects.values_list("pk", flat=True):
        assert get(client, f"/fast/workflows/{pk}/") == get(client, f"/workflows/{pk}/")
    for pk in Event.objects.values_list("pk", flat=True):
        assert get(client, f"/fast/events/{pk}/") == get(client, f"/events/{pk}/")
        fast = client.get(f"/fast/api/events/{pk}/").json()
        assert fast == client.get(f"/api/events/{pk}/").json()


@pytest.mark.django_db
def test_every_list_page_matches(client: Client) -> None:
    seed_demo(60)
    for number in (1, 2, 3):  # 3 is past the end: both show the last page
        query = f"?page={number}"
        assert get(client, f"/fast/events/{query}") == get(client, f"/events/{query}")
        fast = client.get(f"/fast/api/events/{query}").json()
        assert fast == client.get(f"/api/events/{query}").json()


@pytest.mark.django_db
def test_dashboard_summary_numbers(client: Client) -> None:
    seed_demo(30)
    data = client.get("/fast/api/dashboard/").json()
    summary = data["summary"]

    assert summary["events"] == len(data["events"]) == 30
    assert summary["servers"] == len(data["server_failures"]) == 50
    statuses = ("queued", "running", "succeeded", "failed")
    assert summary["jobs"] == sum(summary[f"jobs_{status}"] for status in statuses)
    assert summary["jobs_failed"] == sum(row["failed_jobs"] for row in data["server_failures"])


@pytest.mark.django_db
def test_missing_detail_is_404_on_the_fast_pages(client: Client) -> None:
    seed_demo(3)
    for name in ("fast_event_detail", "fast_api_event_detail", "fast_workflow_detail"):
        assert client.get(reverse(f"scheduler:{name}", args=[999_999])).status_code == 404


# Their queries


class OptimizedQueriesTests(DbPerfTestMixin, TestCase):
    def request(self, path: str) -> None:
        response = self.client.get(path)
        self.assertEqual(response.status_code, 200, path)

    def assertConstantPerEvents(self, page: Page) -> None:
        """Same number of queries after seeding each of ``SIZES`` events."""
        paths: dict[str, str] = {}

        def setup(events: int) -> None:
            seed_demo(events=events)
            paths["page"] = page.path()  # detail pages: the first row of this seed

        self.assertQueriesConstant(lambda: self.request(paths["page"]), sizes=SIZES, setup=setup)

    def check_fast_and_naive(self, url_name: str) -> None:
        self.assertConstantPerEvents(FAST[f"fast_{url_name}"])
        # The sizes are big enough to make the naive page grow: the check above means something.
        with self.assertRaisesRegex(AssertionError, "grows with the data"):
            self.assertConstantPerEvents(NAIVE[url_name])

    def test_fast_dashboard_is_constant(self) -> None:
        self.check_fast_and_naive("dashboard")

    def test_fast_api_dashboard_is_constant(self) -> None:
        self.check_fast_and_naive("api_dashboard")

    def test_fast_event_list_is_constant(self) -> None:
        self.check_fast_and_naive("event_list")

    def test_fast_api_events_is_constant(self) -> None:
        self.check_fast_and_naive("api_events")

    def test_fast_workflow_detail_is_constant(self) -> None:
        self.check_fast_and_naive("workflow_detail")

    def test_fast_dashboards_within_budget_and_without_nplusone(self) -> None:
        seed_demo(events=40)
        for name in ("fast_dashboard", "fast_api_dashboard"):
            path = FAST[name].path()
            with self.assertMaxQueries(MAX_DASHBOARD_QUERIES), self.assertNoNPlusOne():
                self.request(path)

    def test_no_fast_page_has_findings(self) -> None:
        seed_demo(events=40)
        for page in OPTIMIZED_PAGES:
            path = page.path()
            with self.subTest(page.url_name):
                self.assertNoNPlusOne(self.request, path)
                self.assertNoDuplicateQueries(self.request, path)
                with capture_queries() as captured:
                    self.request(path)
                self.assertEqual(captured.findings, [], path)

    @unittest.skipIf(django.VERSION < (6, 1), "fetch modes are Django 6.1")
    def test_no_fast_page_loads_a_relation_lazily(self) -> None:
        # FETCH_RAISE on the eager managers: a relation a page reads but did not load raises.
        seed_demo(events=10)
        with override_settings(DBPERF={"DEFAULT_FETCH_MODE": "FETCH_RAISE"}):
            for page in OPTIMIZED_PAGES:
                with self.subTest(page.url_name):
                    self.request(page.path())

    def test_fast_pages_run_fewer_queries(self) -> None:
        seed_demo(events=40)
        counts: dict[str, tuple[int, int]] = {}
        for naive, fast in PAGE_PAIRS:
            counts[naive.url_name] = (self.count(naive.path()), self.count(fast.path()))
        for name, (before, after) in counts.items():
            self.assertLess(after, before, name)
        self.assertLessEqual(counts["dashboard"][1], MAX_DASHBOARD_QUERIES)

    def count(self, path: str) -> int:
        with capture_queries() as captured:
            self.request(path)
        return len(captured)
