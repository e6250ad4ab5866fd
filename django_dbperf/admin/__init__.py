"""django_dbperf in the Django admin, under ``/admin/django_dbperf/``: the dashboard, slow
queries (statement shapes), findings, pg_stat_statements rows, database health, index
suggestions and cached querysets. Read-only; every page and POST needs
``django_dbperf.view_dbperf`` (base.py)."""

from __future__ import annotations

from django_dbperf.admin.findings import FindingStatAdmin
from django_dbperf.admin.pages import (
    CacheReportAdmin,
    DashboardAdmin,
    DatabaseHealthAdmin,
    IndexAdviceAdmin,
)
from django_dbperf.admin.pg_statements import PgStatementAdmin
from django_dbperf.admin.shapes import QueryShapeAdmin

__all__ = [
    "CacheReportAdmin",
    "DashboardAdmin",
    "DatabaseHealthAdmin",
    "FindingStatAdmin",
    "IndexAdviceAdmin",
    "PgStatementAdmin",
    "QueryShapeAdmin",
]
