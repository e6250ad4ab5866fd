"""The dashboard's numbers: the naive way (a query per status and per server), and in 5 queries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet

from example_project.scheduler.models import NEWEST_JOBS_FIRST, Event, Job, Server


@dataclass(frozen=True)
class Dashboard:
    """What the dashboard shows: headline counts, failed jobs per server, every event."""

    summary: dict[str, int]
    server_failures: list[dict[str, Any]]
    events: Iterable[Event]


def summary() -> dict[str, int]:
    """Headline counts; a separate COUNT query for each number."""
    counts = {
        "events": Event.objects.count(),
        "enabled_events": Event.objects.filter(enabled=True).count(),
        "servers": Server.objects.count(),
        "active_servers": Server.objects.filter(is_active=True).count(),
        "jobs": Job.objects.count(),
    }
    for status in Job.Status:
        counts[f"jobs_{status.value}"] = Job.objects.filter(status=status).count()
    return counts


def server_failures() -> list[dict[str, Any]]:
    """Failed jobs per server, counted by looping over the servers (one query each)."""
    return [
        {
            "name": server.name,
            "hostname": server.hostname,
            "failed_jobs": server.jobs.filter(status=Job.Status.FAILED).count(),
        }
        for server in Server.objects.all()
    ]


def naive() -> Dashboard:
    """About 4 queries per event, plus one per server and 9 for the summary."""
    return Dashboard(summary(), server_failures(), Event.objects.order_by("pk"))


def job_counts(cached: bool = False) -> dict[str, int]:
    """Jobs in total and per status, in one aggregate query."""
    per_status = {
        f"jobs_{status.value}": Count("pk", filter=Q(status=status)) for status in Job.Status
    }
    jobs = Job.eager.plain()
    return (jobs.cached() if cached else jobs).aggregate(jobs=Count("pk"), **per_status)


def dashboard_events() -> QuerySet[Event]:
    """The dashboard's events: owners joined, servers counted, tags and latest job prefetched."""
    # A sliced prefetch: each event's newest job, for all events in one query (a window function).
    newest = Job.objects.only("event", "status").order_by(*NEWEST_JOBS_FIRST)[:1]
    latest_job = Prefetch("jobs", queryset=newest, to_attr="latest_jobs")
    return (
        Event.eager.profile("dashboard")
        .including(latest_job)
        .including_counts("servers")
        # Only the columns the page shows (a column read later would cost a query per event,
        # which tests/test_example_optimized.py would catch as an N+1).
        .only("name", "enabled", "owner__username")
        .order_by("pk")
    )


def dashboard_servers() -> QuerySet[Server]:
    """The dashboard's servers with their failed jobs counted."""
    failed = Count("jobs", filter=Q(jobs__status=Job.Status.FAILED))
    # Meta.ordering is dropped from queries with GROUP BY: say it again, as the naive loop has it.
    return Server.cache.annotate(failed_jobs=failed).order_by("name")


def optimized(cached: bool = False) -> Dashboard:
    """The same numbers and rows in 5 queries, however many events there are.

    The events with their owners joined and their servers counted (``including_counts``), their
    tags, their latest jobs; the servers with their failed jobs counted; the jobs per status.
    The dashboard lists every event and every server anyway, so their counts come from those
    rows rather than from four more COUNT queries. ``cached=True`` serves all of it from the
    cache until a table it reads changes (``/cached/``).
    """
    events_query, servers_query = dashboard_events(), dashboard_servers()
    if cached:
        events_query, servers_query = events_query.cached(), servers_query.cached()
    events, servers = list(events_query), list(servers_query)
    counts = {
        "events": len(events),
        "enabled_events": sum(event.enabled for event in events),
        "servers": len(servers),
        "active_servers": sum(server.is_active for server in servers),
        **job_counts(cached),
    }
    failures = [
        {"name": server.name, "hostname": server.hostname, "failed_jobs": server.failed_jobs}
        for server in servers
    ]
    return Dashboard(counts, failures, events)
