"""Retention: hours older than ``RETENTION_DAYS``, and shapes and findings not seen since."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from django_dbperf.stats.models import FindingStat, QueryShape, QueryShapeHour, ViewStat


def prune(days: int, using: str) -> dict[str, int]:
    """Delete what is older than ``days`` days; how many rows of each kind went."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    with transaction.atomic(using=using):
        hours, _ = QueryShapeHour.objects.using(using).filter(hour__lt=cutoff).delete()
        # A shape's sites and hours go with it (CASCADE).
        shapes = QueryShape.objects.using(using).filter(last_seen__lt=cutoff)
        shape_count = shapes.count()
        shapes.delete()
        findings, _ = FindingStat.objects.using(using).filter(last_seen__lt=cutoff).delete()
        ViewStat.objects.using(using).filter(last_seen__lt=cutoff).delete()
    return {"hours": hours, "shapes": shape_count, "findings": findings}
