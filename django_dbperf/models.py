"""The app's models: the statistics store's tables (defined in ``stats/models.py``)."""

from __future__ import annotations

from django_dbperf.stats.models import (
    FindingStat,
    PgStatement,
    PgStatementHour,
    QueryShape,
    QueryShapeHour,
    QueryShapeSite,
    StoreCounter,
)

__all__ = [
    "FindingStat",
    "PgStatement",
    "PgStatementHour",
    "QueryShape",
    "QueryShapeHour",
    "QueryShapeSite",
    "StoreCounter",
]
