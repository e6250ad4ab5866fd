"""The scheduler's pages and JSON endpoints, written the naive way.

No select_related, prefetch_related or annotate anywhere: templates and serializers reach
through relations row by row, which is the "before" picture django-dbperf measures and fixes.
"""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from example_project.scheduler import dashboard as dashboard_stats
from example_project.scheduler.models import (
    NEWEST_JOBS_FIRST,
    NEWEST_LOGS_FIRST,
    Event,
    JobLog,
    Workflow,
)
from example_project.scheduler.serializers import (
    serialize_dashboard,
    serialize_event_detail,
    serialize_event_page,
)

PAGE_SIZE = 50
LATEST_LOGS = 100


def _event_page(request: HttpRequest) -> Page:
    # Ordered explicitly: Event has no Meta.ordering and pagination needs a stable order.
    paginator = Paginator(Event.objects.order_by("pk"), PAGE_SIZE)
    return paginator.get_page(request.GET.get("page"))


@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    context = {
        "events": Event.objects.order_by("pk"),
        "summary": dashboard_stats.summary(),
        "server_failures": dashboard_stats.server_failures(),
    }
    return render(request, "scheduler/dashboard.html", context)


@require_safe
def event_list(request: HttpRequest) -> HttpResponse:
    return render(request, "scheduler/event_list.html", {"page": _event_page(request)})


@require_safe
def event_detail(request: HttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(Event, pk=pk)
    context = {"event": event, "jobs": event.jobs.order_by(*NEWEST_JOBS_FIRST)}
    return render(request, "scheduler/event_detail.html", context)


@require_safe
def workflow_detail(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = get_object_or_404(Workflow, pk=pk)
    return render(request, "scheduler/workflow_detail.html", {"workflow": workflow})


def latest_logs(logs: QuerySet[JobLog], request: HttpRequest) -> QuerySet[JobLog]:
    """The newest logs, of one level with ``?level=error``."""
    level = request.GET.get("level")
    if level in JobLog.Level.values:
        logs = logs.filter(level=level)
    return logs.order_by(*NEWEST_LOGS_FIRST)[:LATEST_LOGS]


@require_safe
def log_list(request: HttpRequest) -> HttpResponse:
    # Filtering and sorting on unindexed columns of the biggest table: part of the "before"
    # picture, which `dbperf_indexes suggest` answers with an index (make demo shows it).
    logs = latest_logs(JobLog.objects.all(), request)
    return render(request, "scheduler/log_list.html", {"logs": logs, "levels": JobLog.Level})


@require_safe
def api_events(request: HttpRequest) -> JsonResponse:
    return JsonResponse(serialize_event_page(_event_page(request)))


@require_safe
def api_event_detail(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse(serialize_event_detail(get_object_or_404(Event, pk=pk)))


@require_safe
def api_dashboard(request: HttpRequest) -> JsonResponse:
    return JsonResponse(serialize_dashboard())
