"""The querysets the cached dashboard (``/cached/``) reads, marked hot: ``dbperf_cache warm``
fills the cache with them after a deploy, so the first visitor does not pay for it. Listed in
``DBPERF["CACHE"]["WARM"]`` (settings.py), which imports this module."""

from __future__ import annotations

from django.db.models import QuerySet

from django_dbperf.cache import hot_queryset
from example_project.scheduler.dashboard import dashboard_events, dashboard_servers
from example_project.scheduler.models import Event, Server


@hot_queryset(model="scheduler.Event", tags=["dashboard"])
def cached_dashboard_events() -> QuerySet[Event]:
    return dashboard_events().cached()


@hot_queryset(model="scheduler.Server", tags=["dashboard"])
def cached_dashboard_servers() -> QuerySet[Server]:
    return dashboard_servers().cached()
