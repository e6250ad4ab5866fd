"""The optimized twin of every naive page: same templates and serializers, eager querysets.

Each view asks the models' ``eager`` managers for what its page shows (a declared profile,
``including()`` with ``Prefetch`` objects, ``including_counts()`` in ``dashboard.optimized()``),
so its number of queries stays the same whatever the number of rows.
"""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from example_project.scheduler import dashboard as dashboard_data
from example_project.scheduler.models import (
    NEWEST_JOBS_FIRST,
    Event,
    Job,
    JobLog,
    Workflow,
    WorkflowConnection,
    WorkflowNode,
)
from example_project.scheduler.serializers import (
    serialize_dashboard,
    serialize_event_detail,
    serialize_event_page,
)
from example_project.scheduler.views import PAGE_SIZE, latest_logs

# Built per request, not at import: an eager manager's queryset takes the DBPERF settings
# (its fetch mode) of the moment it is made.


def newest_jobs() -> Prefetch:
    """Every run of an event, newest first, with its server joined and its logs: two queries."""
    # Logs by pk: the naive pages read them unordered, which in practice is the order they were
    # written in; a prefetch over many jobs has to say so.
    logs = Prefetch("logs", queryset=JobLog.objects.order_by("pk"))
    runs = Job.eager.including(logs).order_by(*NEWEST_JOBS_FIRST)
    return Prefetch("jobs", queryset=runs, to_attr="newest_jobs")


def workflow_graph() -> tuple[Prefetch, Prefetch]:
    """Nodes with their event and its owner, connections with both ends: one query each."""
    # By pk, like the logs above: the naive page reads both unordered.
    return (
        Prefetch("nodes", queryset=WorkflowNode.eager.order_by("pk")),
        Prefetch("connections", queryset=WorkflowConnection.eager.order_by("pk")),
    )


def _event_page(request: HttpRequest) -> Page:
    # The "list" profile: owner and workflow joined; tags, servers and variables prefetched for
    # the page's 50 events. (including_counts("variables") would count in the same query, but
    # with a GROUP BY over every event before the page is cut: slower as the table grows.)
    events = Event.eager.order_by("pk")
    return Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))


def _render_dashboard(request: HttpRequest, data: dashboard_data.Dashboard) -> HttpResponse:
    context = {
        "events": data.events,
        "summary": data.summary,
        "server_failures": data.server_failures,
    }
    return render(request, "scheduler/dashboard.html", context)


@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    return _render_dashboard(request, dashboard_data.optimized())


@require_safe
def cached_dashboard(request: HttpRequest) -> HttpResponse:
    """The optimized dashboard served from the cache (``qs.cached()``) until its data changes."""
    return _render_dashboard(request, dashboard_data.optimized(cached=True))


@require_safe
def event_list(request: HttpRequest) -> HttpResponse:
    return render(request, "scheduler/event_list.html", {"page": _event_page(request)})


def _event_with_everything(pk: int) -> Event:
    # The "list" profile (the manager's default), and every job with its server and logs.
    return get_object_or_404(Event.eager.including(newest_jobs()), pk=pk)


@require_safe
def event_detail(request: HttpRequest, pk: int) -> HttpResponse:
    event = _event_with_everything(pk)
    context = {"event": event, "jobs": event.jobs_newest_first()}
    return render(request, "scheduler/event_detail.html", context)


@require_safe
def workflow_detail(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = get_object_or_404(Workflow.eager.including(*workflow_graph()), pk=pk)
    return render(request, "scheduler/workflow_detail.html", {"workflow": workflow})


@require_safe
def log_list(request: HttpRequest) -> HttpResponse:
    # One query: each log joined with its job, the job's event and its server.
    logs = latest_logs(JobLog.eager.all(), request)
    return render(request, "scheduler/log_list.html", {"logs": logs, "levels": JobLog.Level})


@require_safe
def api_events(request: HttpRequest) -> JsonResponse:
    return JsonResponse(serialize_event_page(_event_page(request)))


@require_safe
def api_event_detail(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse(serialize_event_detail(_event_with_everything(pk)))


@require_safe
def api_dashboard(request: HttpRequest) -> JsonResponse:
    return JsonResponse(serialize_dashboard(dashboard_data.optimized()))
