"""N+1 and duplicate findings of sampled requests, by line and relation, with their fix."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from django_dbperf.admin.base import ReadOnlyAdmin
from django_dbperf.admin.shapes import milliseconds
from django_dbperf.conf import get_config
from django_dbperf.stats.models import FindingStat


@admin.register(FindingStat)
class FindingStatAdmin(ReadOnlyAdmin):
    list_display = [
        "where", "subject_column", "kind", "view", "occurrences", "queries", "time_column",
        "fix", "first_seen", "last_seen",
    ]  # fmt: skip
    list_display_links = None
    list_filter = ["kind", ("last_seen", admin.DateFieldListFilter)]
    search_fields = ["callsite", "subject", "view", "fingerprint_id"]
    ordering = ["callsite", "subject", "-occurrences"]  # grouped by line, then relation
    list_per_page = 100

    def get_queryset(self, request: HttpRequest) -> QuerySet[FindingStat]:
        using = get_config()["STATS"]["DATABASE"]
        return super().get_queryset(request).using(using).defer("fingerprint")

    @admin.display(description="line", ordering="callsite")
    def where(self, finding: FindingStat) -> str:
        return format_html("<code>{}</code>", finding.callsite or "an unknown line")

    @admin.display(description="relation or model", ordering="subject")
    def subject_column(self, finding: FindingStat) -> str:
        return finding.subject or f"shape {finding.fingerprint_id}"

    @admin.display(description="DB time", ordering="-total_ms")
    def time_column(self, finding: FindingStat) -> str:
        return milliseconds(finding.total_ms)

    @admin.display(description="fix")
    def fix(self, finding: FindingStat) -> str:
        return format_html('<span class="dbperf-fix">{}</span>', finding.suggestion)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        extra = {"subtitle": "Counts are of sampled requests.", **(extra_context or {})}
        return super().changelist_view(request, extra)
