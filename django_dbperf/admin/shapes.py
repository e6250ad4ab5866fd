"""Slow queries: statement shapes sortable by total time, mean, p95 and calls; a detail page
with the formatted SQL, the views and lines that issue it, percentiles, the hourly trend, the
linked pg_stat_statements row, and EXPLAIN (a POST naming a stored shape, never SQL)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from django_dbperf.admin.base import ReadOnlyAdmin
from django_dbperf.admin.charts import Point, trend_svg
from django_dbperf.analysis.sql_text import format_sql, shorten_sql
from django_dbperf.conf import get_config
from django_dbperf.stats.models import (
    PgStatement,
    QueryShape,
    QueryShapeHour,
    QueryShapeSearch,
    QueryShapeSite,
    ViewStat,
)
from django_dbperf.stats.search import terms

TREND_HOURS = 14 * 24
MIN_TREND_HOURS = 24
TOP_VIEWS_IN_FILTER = 100
SITES_SHOWN = 50


def milliseconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


class ViewFilter(admin.SimpleListFilter):
    """The views (``resolver_match.view_name``) that issue the most database time."""

    title = "view"
    parameter_name = "view"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        views = ViewStat.objects.using(model_admin.using()).order_by("-total_ms")
        names = views.values_list("view", flat=True)[:TOP_VIEWS_IN_FILTER]
        return [(view, view or "(no view)") for view in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        shapes = QueryShapeSite.objects.filter(view=value).values("shape_id")
        return queryset.filter(pk__in=shapes)


class AliasFilter(admin.SimpleListFilter):
    """The configured databases: from settings, not a DISTINCT over every stored shape."""

    title = "database"
    parameter_name = "alias"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        from django.conf import settings

        return [(alias, alias) for alias in settings.DATABASES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset if value is None else queryset.filter(alias=value)


@admin.register(QueryShape)
class QueryShapeAdmin(ReadOnlyAdmin):
    list_display = [
        "shape_link", "alias", "calls_column", "total_column", "mean_column", "p95_column",
        "max_column", "nplusone_findings", "last_seen",
    ]  # fmt: skip
    list_display_links = None
    list_filter = [AliasFilter, ViewFilter, ("last_seen", admin.DateFieldListFilter), "is_select"]
    search_fields = ["search__text"]  # see get_search_results
    ordering = ["-total_ms"]
    list_per_page = 50
    change_list_template = "admin/django_dbperf/queryshape/change_list.html"

    @staticmethod
    def using() -> str:
        return str(get_config()["STATS"]["DATABASE"])

    def get_queryset(self, request: HttpRequest) -> QuerySet[QueryShape]:
        shapes: QuerySet[QueryShape] = super().get_queryset(request)
        return shapes.using(self.using()).defer("histogram", "fingerprint", "params")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[QueryShape], search_term: str
    ) -> tuple[QuerySet[QueryShape], bool]:
        """Every word in the statement's names or its shape id: see search.py."""
        words = terms(search_term)
        if not words:
            return queryset, False
        matching = QueryShapeSearch.objects.all()
        for word in words:
            matching = matching.filter(text__contains=word)
        return queryset.filter(pk__in=matching.values("shape_id")), False

    @admin.display(description="statement", ordering="fingerprint_id")
    def shape_link(self, shape: QueryShape) -> str:
        from django.urls import reverse

        url = reverse("admin:django_dbperf_queryshape_change", args=[shape.pk])
        return format_html(
            '<a href="{}"><code>{}</code></a><br><span class="dbperf-sql">{}</span>',
            url,
            shape.fingerprint_id,
            shorten_sql(shape.sql, 160),
        )

    @admin.display(description="calls (est.)", ordering="-calls")
    def calls_column(self, shape: QueryShape) -> str:
        return f"{shape.calls:,.0f}"

    @admin.display(description="total time (est.)", ordering="-total_ms")
    def total_column(self, shape: QueryShape) -> str:
        return milliseconds(shape.total_ms)

    @admin.display(description="mean", ordering="-mean_ms")
    def mean_column(self, shape: QueryShape) -> str:
        return milliseconds(shape.mean_ms)

    @admin.display(description="p95", ordering="-p95_ms")
    def p95_column(self, shape: QueryShape) -> str:
        return milliseconds(shape.p95_ms)

    @admin.display(description="max", ordering="-max_ms")
    def max_column(self, shape: QueryShape) -> str:
        return milliseconds(shape.max_ms)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra = {"sample_rate": get_config()["SAMPLE_RATE"], **(extra_context or {})}
        return super().changelist_view(request, extra)

    def page_urls(self) -> list[URLPattern]:
        return [
            *super().page_urls(),
            path("<int:pk>/", self.guarded(self.detail_view), name=self.url_name("change")),
            path(
                "<int:pk>/explain/",
                self.guarded(require_POST(self.explain_view)),
                name=self.url_name("explain"),
            ),
        ]

    # --- detail -----------------------------------------------------------------------------

    def detail_view(self, request: HttpRequest, pk: int, **extra: Any) -> HttpResponse:
        shape = get_object_or_404(QueryShape.objects.using(self.using()), pk=pk)
        context = {
            **self.admin_site.each_context(request),
            **self.detail_context(shape),
            "opts": self.model._meta,
            "title": f"Statement {shape.fingerprint_id}",
            "can_analyze": self.may_analyze(request, shape),
            **extra,
        }
        return TemplateResponse(request, "admin/django_dbperf/queryshape/detail.html", context)

    def detail_context(self, shape: QueryShape) -> dict[str, Any]:
        using = self.using()
        sites = list(
            QueryShapeSite.objects.using(using)
            .filter(shape=shape)
            .order_by("-total_ms")[:SITES_SHOWN]
        )
        views = (
            QueryShapeSite.objects.using(using)
            .filter(shape=shape)
            .values("view")
            .annotate(calls=Sum("calls"), total=Sum("total_ms"))
            .order_by("-total")
        )
        now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
        earliest = now - dt.timedelta(hours=TREND_HOURS - 1)
        hours = list(QueryShapeHour.objects.using(using).filter(shape=shape, hour__gte=earliest))
        # From the first hour with data (bars stay readable for a new shape), at least a day.
        first = min((hour.hour for hour in hours), default=now)
        start = min(max(first, earliest), now - dt.timedelta(hours=MIN_TREND_HOURS - 1))
        chart = trend_svg(
            [Point(hour.hour, hour.calls, hour.p95_ms) for hour in hours],
            start=start,
            hours=int((now - start).total_seconds() // 3600) + 1,
            bar_label="calls",
            line_label="ms p95",
        )
        statements = (
            list(
                PgStatement.objects.using(using).filter(queryid=shape.queryid).order_by("-toplevel")
            )
            if shape.queryid is not None
            else []
        )
        return {
            "shape": shape,
            "formatted_sql": format_sql(shape.sql),
            "sites": sites,
            "views": list(views),
            "chart": chart,
            "pg_statements": statements,
            "percentiles": [
                ("p50", milliseconds(shape.p50_ms)),
                ("p95", milliseconds(shape.p95_ms)),
                ("p99", milliseconds(shape.p99_ms)),
                ("max", milliseconds(shape.max_ms)),
                ("mean", milliseconds(shape.mean_ms)),
            ],
            "sample_rate": get_config()["SAMPLE_RATE"],
        }

    # --- EXPLAIN ----------------------------------------------------------------------------

    def may_analyze(self, request: HttpRequest, shape: QueryShape) -> bool:
        """EXPLAIN ANALYZE runs the statement: a setting, a superuser, a SELECT with values."""
        from django_dbperf.explain.stored import analyze_refusal

        return bool(request.user.is_superuser and analyze_refusal(shape) is None)

    def explain_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        from django_dbperf.explain import ExplainRefused
        from django_dbperf.explain.stored import explain_shape

        shape = get_object_or_404(QueryShape.objects.using(self.using()), pk=pk)
        analyze = request.POST.get("analyze") == "1"
        if analyze and not self.may_analyze(request, shape):
            messages.error(request, "EXPLAIN ANALYZE is not allowed for this statement or user.")
            return self.detail_view(request, pk)
        try:
            plan = explain_shape(shape, analyze=analyze)
        except ExplainRefused as refused:
            messages.error(request, f"EXPLAIN refused: {refused}")
            return self.detail_view(request, pk)
        return self.detail_view(request, pk, plan=plan)
