"""The app's models: the statistics store's tables (defined in ``stats/models.py``), and the
admin pages that are not tables (unmanaged: no table, only an entry in the admin index)."""

from __future__ import annotations

from django.db import models

from django_dbperf.stats.models import (
    FindingStat,
    PgStatement,
    PgStatementHour,
    QueryShape,
    QueryShapeHour,
    QueryShapeSearch,
    QueryShapeSite,
    StoreCounter,
    ViewStat,
)

VIEW_PERMISSION = "django_dbperf.view_dbperf"


class AdminPage(models.Model):
    """A page of the admin that is not a table."""

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return str(self._meta.verbose_name)


class Dashboard(AdminPage):
    """The admin's overview page. Also carries the one permission every page asks for."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_dbperf", "Can view database performance pages and run EXPLAIN")]
        verbose_name = verbose_name_plural = "dashboard"


class DatabaseHealth(AdminPage):
    class Meta:
        managed = False
        default_permissions = ()
        verbose_name = verbose_name_plural = "database health"


class IndexAdvice(AdminPage):
    class Meta:
        managed = False
        default_permissions = ()
        verbose_name = verbose_name_plural = "index suggestions"


class CacheReport(AdminPage):
    class Meta:
        managed = False
        default_permissions = ()
        verbose_name = verbose_name_plural = "cached querysets"


__all__ = [
    "VIEW_PERMISSION",
    "CacheReport",
    "Dashboard",
    "DatabaseHealth",
    "FindingStat",
    "IndexAdvice",
    "PgStatement",
    "PgStatementHour",
    "QueryShape",
    "QueryShapeHour",
    "QueryShapeSearch",
    "QueryShapeSite",
    "StoreCounter",
    "ViewStat",
]
