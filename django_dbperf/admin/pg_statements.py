"""pg_stat_statements rows as watched since the store began, each linked to the Django views
and lines whose sampled queries have its queryid, or marked as issued by code never sampled."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from django_dbperf.admin.base import ReadOnlyAdmin
from django_dbperf.admin.shapes import milliseconds
from django_dbperf.analysis.sql_text import shorten_sql
from django_dbperf.conf import get_config
from django_dbperf.stats.models import PgStatement, QueryShape, QueryShapeSite

SITES_PER_ROW = 3
NOT_SAMPLED = "not seen in sampled requests (task workers, cron, other apps, or not yet linked)"


class LinkedChangeList(ChangeList):
    """The page's rows with their Django code, in one more query whatever the page size."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        rows: list[PgStatement] = list(self.result_list)
        if not rows:
            return
        # Every stored shape has at least one (view, line) row: its sites name its shape too.
        sites = (
            QueryShapeSite.objects.using(get_config()["STATS"]["DATABASE"])
            .filter(shape__queryid__in={row.queryid for row in rows})
            .select_related("shape")
            .only("view", "callsite", "framework", "shape__queryid", "shape__fingerprint_id")
            .order_by("-total_ms")
        )
        shapes: dict[int, dict[int, QueryShape]] = defaultdict(dict)
        lines: dict[int, list[QueryShapeSite]] = defaultdict(list)
        for site in sites:
            queryid = site.shape.queryid
            assert queryid is not None
            shapes[queryid][site.shape.pk] = site.shape
            lines[queryid].append(site)
        for row in rows:
            row.dbperf_shapes = list(shapes[row.queryid].values())  # type: ignore[attr-defined]
            row.dbperf_sites = lines[row.queryid][:SITES_PER_ROW]  # type: ignore[attr-defined]


@admin.register(PgStatement)
class PgStatementAdmin(ReadOnlyAdmin):
    list_display = [
        "query_column", "django_code", "calls", "total_column", "mean_column", "rows",
        "last_seen",
    ]  # fmt: skip
    list_display_links = None
    search_fields = ["query"]
    ordering = ["-total_ms"]
    list_per_page = 50

    change_list_template = "admin/django_dbperf/pgstatement/change_list.html"

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        from django.db import connections

        from django_dbperf.stats.pg_statements import has_extension

        # The databases this store watches: its own, and those sampled queries ran on.
        using = get_config()["STATS"]["DATABASE"]
        recorded = QueryShape.objects.using(using).values_list("alias", flat=True).distinct()
        watched = sorted({using, *recorded} & set(connections))
        databases = [alias for alias in watched if connections[alias].vendor == "postgresql"]
        extra = {
            "postgres_databases": databases,
            "without_extension": [alias for alias in databases if not has_extension(alias)],
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LinkedChangeList

    def get_queryset(self, request: HttpRequest) -> QuerySet[PgStatement]:
        return super().get_queryset(request).using(get_config()["STATS"]["DATABASE"])

    @admin.display(description="statement")
    def query_column(self, row: PgStatement) -> str:
        return format_html("<code>{}</code>", shorten_sql(row.query, 200))

    @admin.display(description="Django code")
    def django_code(self, row: PgStatement) -> str:
        shapes = getattr(row, "dbperf_shapes", [])
        if not shapes:
            return format_html('<span class="dbperf-unsampled">{}</span>', NOT_SAMPLED)
        links = format_html_join(
            " ",
            '<a href="{}"><code>{}</code></a>',
            (
                (reverse("admin:django_dbperf_queryshape_change", args=[s.pk]), s.fingerprint_id)
                for s in shapes
            ),
        )
        sites = format_html_join(
            "",
            "<br>{} <code>{}</code>",
            (
                (site.view or "(no view)", site.callsite or site.framework or "?")
                for site in getattr(row, "dbperf_sites", [])
            ),
        )
        return format_html("{}{}", links, sites)

    @admin.display(description="total time", ordering="-total_ms")
    def total_column(self, row: PgStatement) -> str:
        return milliseconds(row.total_ms)

    @admin.display(description="mean")
    def mean_column(self, row: PgStatement) -> str:
        return milliseconds(row.mean_ms)
