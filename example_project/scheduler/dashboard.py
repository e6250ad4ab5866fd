"""The dashboard's summary numbers, computed the naive way: one query per status and per server."""

from __future__ import annotations

from typing import Any

from example_project.scheduler.models import Event, Job, Server


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
