"""The example project's scheduler app: demo seeding, the naive pages and their query growth."""

from __future__ import annotations

import hashlib
import json
from io import StringIO
from itertools import pairwise

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from example_project.scheduler import urls as scheduler_urls
from example_project.scheduler.models import (
    Event,
    EventServer,
    EventVariable,
    Job,
    JobLog,
    Server,
    Tag,
    Workflow,
    WorkflowConnection,
    WorkflowNode,
)
from example_project.scheduler.pages import NAIVE_PAGES, Page, PageUnavailable
from example_project.scheduler.seeding import (
    DemoDataExists,
    demo_usernames,
    reset_demo,
    seed_demo,
)

pytestmark = pytest.mark.django_db

COUNTED_MODELS = {
    "servers": Server,
    "tags": Tag,
    "workflows": Workflow,
    "events": Event,
    "event_servers": EventServer,
    "event_variables": EventVariable,
    "event_tags": Event.tags.through,
    "jobs": Job,
    "job_logs": JobLog,
    "workflow_nodes": WorkflowNode,
    "workflow_connections": WorkflowConnection,
}


def data_digest() -> str:
    """A hash of the seeded content, independent of primary keys."""
    events = Event.objects.order_by("pk").values_list(
        "name", "owner__username", "workflow__name", "schedule", "priority", "created_at"
    )
    links = EventServer.objects.order_by("event_id", "server__hostname").values_list(
        "event__name", "server__hostname", "enabled", "added_at"
    )
    jobs = Job.objects.order_by("pk").values_list(
        "event__name", "server__hostname", "status", "started_at", "exit_code"
    )
    logs = JobLog.objects.order_by("pk").values_list("level", "message", "created_at")
    content = repr([list(rows) for rows in (events, links, jobs, logs)])
    return hashlib.sha256(content.encode()).hexdigest()


def in_range(values: list[int], low: int, high: int) -> bool:
    return bool(values) and all(low <= value <= high for value in values)


# Seeding


def test_seed_demo_returns_the_counts_in_the_database() -> None:
    counts = seed_demo(20)

    assert counts["users"] == 20
    assert counts["servers"] == 50
    assert counts["tags"] == 15
    assert counts["events"] == 20
    assert counts["workflows"] == 1
    for key, model in COUNTED_MODELS.items():
        assert counts[key] == model.objects.count(), key
    assert get_user_model().objects.filter(username__in=demo_usernames()).count() == 20


def test_seed_demo_builds_the_documented_relationships() -> None:
    seed_demo(60)
    events = Event.objects.annotate(
        n_servers=Count("servers", distinct=True),
        n_variables=Count("variables", distinct=True),
        n_tags=Count("tags", distinct=True),
        n_jobs=Count("jobs", distinct=True),
    )

    assert in_range([event.n_servers for event in events], 2, 4)
    assert in_range([event.n_variables for event in events], 2, 5)
    assert in_range([event.n_tags for event in events], 1, 3)
    assert in_range([event.n_jobs for event in events], 2, 3)
    logs_per_job = Job.objects.annotate(n=Count("logs")).values_list("n", flat=True)
    assert in_range(list(logs_per_job), 2, 4)
    # Every job runs on one of its event's servers.
    links = set(EventServer.objects.values_list("event_id", "server_id"))
    assert all(pair in links for pair in Job.objects.values_list("event_id", "server_id"))
    assert Workflow.objects.count() == 3


def test_seed_demo_chains_workflow_nodes() -> None:
    seed_demo(100)
    nodes_per_workflow = Workflow.objects.annotate(n=Count("nodes")).values_list("n", flat=True)

    assert Workflow.objects.count() == 5
    assert in_range(list(nodes_per_workflow), 5, 10)
    for workflow in Workflow.objects.all():
        nodes = list(workflow.nodes.order_by("pk"))
        pairs = list(workflow.connections.order_by("pk").values_list("source_id", "target_id"))
        assert pairs == [(a.pk, b.pk) for a, b in pairwise(nodes)]
    with_event = WorkflowNode.objects.filter(event__isnull=False).count()
    assert with_event > WorkflowNode.objects.count() / 2


def test_seed_demo_rejects_bad_input_and_existing_data() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        seed_demo(0)
    seed_demo(3)
    with pytest.raises(DemoDataExists):
        seed_demo(3)


def test_same_seed_gives_the_same_data() -> None:
    call_command("seed_demo", events=30, seed=7, stdout=StringIO())
    first = data_digest()
    first_pks = set(Event.objects.values_list("pk", flat=True))
    call_command("seed_demo", events=30, seed=7, reset=True, stdout=StringIO())

    assert data_digest() == first
    # Really rebuilt, not left alone.
    assert first_pks.isdisjoint(Event.objects.values_list("pk", flat=True))


def test_different_seed_gives_different_data() -> None:
    call_command("seed_demo", events=30, seed=7, stdout=StringIO())
    first = data_digest()
    call_command("seed_demo", events=30, seed=8, reset=True, stdout=StringIO())

    assert data_digest() != first


def test_reset_removes_the_demo_data() -> None:
    seed_demo(5)
    reset_demo()

    for model in COUNTED_MODELS.values():
        assert not model.objects.exists(), model


# The management command


def test_command_seeds_and_prints_counts() -> None:
    out = StringIO()
    call_command("seed_demo", events=5, stdout=out)

    assert Event.objects.count() == 5
    assert "events=5" in out.getvalue()


def test_command_rejects_zero_events() -> None:
    with pytest.raises(CommandError, match="at least 1"):
        call_command("seed_demo", events=0)
    assert not Event.objects.exists()


def test_command_refuses_to_reseed_without_reset() -> None:
    call_command("seed_demo", events=5, stdout=StringIO())
    with pytest.raises(CommandError, match="--reset"):
        call_command("seed_demo", events=8, stdout=StringIO())
    assert Event.objects.count() == 5


# The naive pages


@pytest.fixture
def seeded() -> list[str]:
    seed_demo(10)
    return list(Event.objects.values_list("name", flat=True))


def test_naive_pages_cover_every_url() -> None:
    names = {pattern.name for pattern in scheduler_urls.urlpatterns}
    assert {page.url_name for page in NAIVE_PAGES} == names


@pytest.mark.parametrize("page", NAIVE_PAGES, ids=lambda page: page.url_name)
def test_every_page_shows_seeded_data(client: Client, seeded: list[str], page: Page) -> None:
    response = client.get(page.path())

    assert response.status_code == 200
    content = response.content.decode()
    assert any(name in content for name in seeded)
    if page.url_name.startswith("api_"):
        assert response["Content-Type"] == "application/json"
        json.loads(content)


def test_detail_pages_need_data() -> None:
    detail = next(page for page in NAIVE_PAGES if page.url_name == "event_detail")
    with pytest.raises(PageUnavailable, match="seed_demo"):
        detail.path()


def test_event_list_and_api_paginate_by_fifty(client: Client) -> None:
    seed_demo(60)
    html = client.get(reverse("scheduler:event_list"), {"page": 2}).content.decode()
    data = client.get(reverse("scheduler:api_events"), {"page": 2}).json()

    last = Event.objects.order_by("pk").last()
    first = Event.objects.order_by("pk").first()
    assert last is not None and first is not None
    assert last.name in html and first.name not in html
    assert (data["count"], data["page"], data["num_pages"]) == (60, 2, 2)
    assert [row["id"] for row in data["results"]] == list(
        Event.objects.order_by("pk").values_list("pk", flat=True)[50:]
    )


def test_api_event_detail_shape_and_secrets(client: Client, seeded: list[str]) -> None:
    event = Event.objects.order_by("pk").first()
    assert event is not None
    data = client.get(reverse("scheduler:api_event_detail", args=[event.pk])).json()

    assert data["name"] == event.name
    assert data["owner"] == event.owner.username
    assert sorted(data["servers"]) == sorted(s.hostname for s in event.servers.all())
    assert len(data["jobs"]) == event.jobs.count()
    assert all(job["logs"] for job in data["jobs"])
    assert data["variable_count"] == len(data["variables"])


def test_secret_values_never_leave_the_server(client: Client, seeded: list[str]) -> None:
    secret = EventVariable.objects.filter(is_secret=True).first()
    assert secret is not None
    html = client.get(reverse("scheduler:event_detail", args=[secret.event_id])).content
    api = client.get(reverse("scheduler:api_event_detail", args=[secret.event_id])).content

    assert secret.key.encode() in html and secret.key.encode() in api
    assert secret.value.encode() not in html
    assert secret.value.encode() not in api


def test_missing_detail_is_404(client: Client, seeded: list[str]) -> None:
    assert client.get(reverse("scheduler:event_detail", args=[999_999])).status_code == 404
    assert client.get(reverse("scheduler:api_event_detail", args=[999_999])).status_code == 404
    assert client.get(reverse("scheduler:workflow_detail", args=[999_999])).status_code == 404


@pytest.mark.parametrize("url_name", ["event_detail", "event_list", "dashboard"])
def test_event_names_are_escaped(client: Client, seeded: list[str], url_name: str) -> None:
    event = Event.objects.order_by("pk").first()
    assert event is not None
    event.name = "<script>x</script>"
    event.save()
    kwargs = {"pk": event.pk} if url_name == "event_detail" else {}

    content = client.get(reverse(f"scheduler:{url_name}", kwargs=kwargs)).content.decode()

    assert "&lt;script&gt;x&lt;/script&gt;" in content
    assert "<script>x</script>" not in content


# The point of the example: the naive dashboard's queries grow with the data


def count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("url_name", ["dashboard", "api_dashboard"])
def test_dashboard_queries_grow_with_events(client: Client, url_name: str) -> None:
    url = reverse(f"scheduler:{url_name}")
    seed_demo(10)
    small = count_queries(client, url)
    reset_demo()
    seed_demo(40)
    large = count_queries(client, url)

    assert large - small >= (40 - 10) * 2
