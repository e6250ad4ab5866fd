"""The pages that are not tables: the dashboard, database health and cached querysets."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import connections
from django.http import HttpRequest

from django_dbperf import extras
from django_dbperf.admin.base import PageAdmin
from django_dbperf.conf import cache_configured, get_config
from django_dbperf.models import CacheReport, Dashboard, DatabaseHealth, IndexAdvice
from django_dbperf.stats.models import FindingStat, QueryShape, StoreCounter, ViewStat

TOP = 10


def cache_totals() -> dict[str, Any] | None:
    """Cached querysets' counters, per model and tag, and their sum; None when not set up."""
    if not cache_configured():
        return None
    from django_dbperf import cache as dbperf_cache

    return dbperf_cache.counters()


def health_or_error(using: str) -> tuple[Any, str | None]:
    """The database's health, or why it could not be read (the page shows either)."""
    from django_dbperf.health import database_health

    try:
        return database_health(using), None
    except Exception as error:
        return None, f"{type(error).__name__}: {error}"


@admin.register(Dashboard)
class DashboardAdmin(PageAdmin):
    template = "admin/django_dbperf/dashboard.html"

    def context(self, request: HttpRequest) -> dict[str, Any]:
        config = get_config()
        using = config["STATS"]["DATABASE"]
        views = ViewStat.objects.using(using).order_by("-total_ms")[:TOP]
        shapes = (
            QueryShape.objects.using(using)
            .defer("histogram", "fingerprint")
            .order_by("-total_ms")[:TOP]
        )
        nplusone = (
            FindingStat.objects.using(using)
            .filter(kind="n_plus_one")
            .order_by("-occurrences")[:TOP]
        )
        counters = dict(StoreCounter.objects.using(using).values_list("name", "value"))
        health, health_error = (None, None)
        if connections[using].vendor == "postgresql":
            health, health_error = health_or_error(using)
        return {
            "views": list(views),
            "shapes": list(shapes),
            "nplusone": list(nplusone),
            "cache": cache_totals(),
            "health": health,
            "health_error": health_error,
            "overflow": counters.get("overflow", 0),
            "sample_rate": config["SAMPLE_RATE"],
            "stats_enabled": config["STATS"]["ENABLED"],
        }


@admin.register(DatabaseHealth)
class DatabaseHealthAdmin(PageAdmin):
    template = "admin/django_dbperf/health.html"

    def context(self, request: HttpRequest) -> dict[str, Any]:
        aliases = list(connections)
        alias = request.GET.get("database", "default")
        if alias not in aliases:
            alias = aliases[0]
        health, error = health_or_error(alias)
        return {"health": health, "health_error": error, "alias": alias, "aliases": aliases}


@admin.register(CacheReport)
class CacheReportAdmin(PageAdmin):
    template = "admin/django_dbperf/cache.html"

    def context(self, request: HttpRequest) -> dict[str, Any]:
        from django_dbperf.cache.store import STORE

        return {
            "cache": cache_totals(),
            "bypass_reasons": sorted(STORE.bypass_reasons().items()) if cache_configured() else [],
        }


@admin.register(IndexAdvice)
class IndexAdviceAdmin(PageAdmin):
    """The index advisor on demand: it plans statements (hypopg), so it runs on a POST only."""

    template = "admin/django_dbperf/indexes.html"

    def context(self, request: HttpRequest) -> dict[str, Any]:
        aliases = list(connections)
        alias = request.POST.get("database") or request.GET.get("database", "default")
        if alias not in aliases:
            alias = aliases[0]
        context: dict[str, Any] = {"alias": alias, "aliases": aliases, "advice": None}
        # Without pglast the page says which extra to install, instead of a form that crashes.
        context["missing_extra"] = extras.missing("advisor", "The index advisor")
        if request.method != "POST" or context["missing_extra"]:
            return context
        from django_dbperf.indexes.advisor import advise
        from django_dbperf.indexes.presenting import suggestion_data

        try:
            advice = advise(alias)
        except Exception as error:  # the page says why; the store or database may be down
            context["error"] = f"{type(error).__name__}: {error}"
            return context
        shapes = dict(
            QueryShape.objects.using(get_config()["STATS"]["DATABASE"])
            .filter(alias=alias)
            .values_list("fingerprint_id", "pk")
        )
        context["advice"] = advice
        context["suggestions"] = [
            {**suggestion_data(item), "code": _declaration(item)} for item in advice.suggestions
        ]
        for item in context["suggestions"]:
            for shape in item["shapes"]:
                shape["pk"] = shapes.get(shape["fingerprint"])
        return context


def _declaration(suggestion: Any) -> str:
    from django.db.migrations.writer import MigrationWriter

    text, _ = MigrationWriter.serialize(suggestion.index)
    return str(text)
