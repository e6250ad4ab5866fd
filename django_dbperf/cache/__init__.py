"""Cached querysets in Valkey/Redis, invalidated by every write: ``qs.cached()``.

Public API: ``CachingQuerySet``, ``CachingManager`` (and their mixins), ``cached_as()``,
``invalidate()``, ``invalidate_tags()``, ``invalidate_all()`` and ``stats()``.
"""

from __future__ import annotations

from django.apps import apps
from django.db.models import Model

from django_dbperf.cache.calls import cached_as
from django_dbperf.cache.invalidation import model_tables
from django_dbperf.cache.queryset import (
    CachingEagerManager,
    CachingEagerQuerySet,
    CachingManager,
    CachingManagerMixin,
    CachingQuerySet,
    CachingQuerySetMixin,
)
from django_dbperf.cache.store import STORE

__all__ = [
    "CachingEagerManager",
    "CachingEagerQuerySet",
    "CachingManager",
    "CachingManagerMixin",
    "CachingQuerySet",
    "CachingQuerySetMixin",
    "cached_as",
    "invalidate",
    "invalidate_all",
    "invalidate_tags",
    "stats",
]


def invalidate(*models_or_labels: type[Model] | str) -> None:
    """Invalidate every cached queryset that reads these models (``"app_label.Model"`` works)."""
    tables: set[str] = set()
    for item in models_or_labels:
        model = apps.get_model(item) if isinstance(item, str) else item
        tables |= model_tables(model)
    STORE.bump(tables)


def invalidate_tags(*tags: str) -> None:
    """Invalidate every cached queryset stored with one of these tags."""
    for tag in tags:
        STORE.count(f"tag:{tag}", "invalidation")
    STORE.bump(tags=tags)


def invalidate_all() -> None:
    """Invalidate every cached queryset at once (the epoch is renewed)."""
    STORE.invalidate_all()


def stats() -> dict[str, dict[str, int]]:
    """Hit, miss, invalidation and bypass counters of every app instance, per model and tag."""
    return STORE.stats()
