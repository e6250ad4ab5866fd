"""Plain-dict serializers for the JSON endpoints.

Each one walks relations attribute by attribute, so serializing a list of events issues
queries per event: the "N+1 inside a JSON serializer" case. Given the optimized querysets
(``fast_views``), the same code reads loaded rows and runs no query at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.paginator import Page

from example_project.scheduler import dashboard
from example_project.scheduler.models import Event, EventVariable, Job, JobLog


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def serialize_event(event: Event) -> dict[str, Any]:
    return {
        "id": event.pk,
        "name": event.name,
        "owner": event.owner.username,
        "workflow": event.workflow.name if event.workflow else None,
        "schedule": event.schedule,
        "enabled": event.enabled,
        "priority": event.priority,
        "next_run_at": _iso(event.next_run_at),
        "tags": [tag.name for tag in event.tags.all()],
        "servers": [server.hostname for server in event.servers.all()],
        "variable_count": event.variable_count,
    }


def serialize_event_page(page: Page) -> dict[str, Any]:
    """One page of the events list, as the JSON endpoints return it."""
    return {
        "count": page.paginator.count,
        "page": page.number,
        "num_pages": page.paginator.num_pages,
        "results": [serialize_event(event) for event in page],
    }


def serialize_variable(variable: EventVariable) -> dict[str, Any]:
    return {"key": variable.key, "value": variable.display_value, "is_secret": variable.is_secret}


def serialize_log(log: JobLog) -> dict[str, Any]:
    return {"level": log.level, "message": log.message, "created_at": _iso(log.created_at)}


def serialize_job(job: Job) -> dict[str, Any]:
    return {
        "id": job.pk,
        "status": job.status,
        "server": job.server.hostname,
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "exit_code": job.exit_code,
        "logs": [serialize_log(log) for log in job.logs.all()],
    }


def serialize_event_detail(event: Event) -> dict[str, Any]:
    return {
        **serialize_event(event),
        "variables": [serialize_variable(variable) for variable in event.variables.all()],
        "jobs": [serialize_job(job) for job in event.jobs_newest_first()],
    }


def serialize_dashboard_event(event: Event) -> dict[str, Any]:
    last_job = event.last_job()
    return {
        "id": event.pk,
        "name": event.name,
        "owner": event.owner.username,
        "server_count": event.server_count,
        "tags": [tag.name for tag in event.tags.all()],
        "last_job_status": last_job.status if last_job else None,
    }


def serialize_dashboard(data: dashboard.Dashboard | None = None) -> dict[str, Any]:
    """The dashboard as JSON; computed the naive way unless ``data`` is given."""
    data = dashboard.naive() if data is None else data
    return {
        "summary": data.summary,
        "server_failures": data.server_failures,
        "events": [serialize_dashboard_event(event) for event in data.events],
    }
