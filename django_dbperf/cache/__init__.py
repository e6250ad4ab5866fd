"""Cached querysets in Valkey/Redis, invalidated by every write: ``qs.cached()``.

Public API: ``CachingQuerySet``, ``CachingManager`` (and their mixins), ``cached_as()``,
``invalidate()``, ``invalidate_tags()``, ``invalidate_all()`` and ``stats()``.

A read (``queryset.py``, ``calls.py``): key (``keys.py`` over ``shape.py``, values written by
``encode.py``; the database's identity from ``namespace.py``) -> the tables it depends on
(``tables.py``, ``prefetch.py``, ``dependencies.py``; narrowed to rows by ``narrow.py``; those
in ``skipped.py`` bypass) -> lookup of the entry and its versions in one round trip
(``store.py``) -> verify the signature (``signing.py``) -> decode (``payload.py``). A miss runs
the query under a capture and stores the result under the versions read before it.

A write (``invalidation.py``): the statement's tables (``tables.py``, with what the database
changes along with them, ``dependencies.py``) or the saved row (``narrow.py``) -> new versions
in ``store.py``, now and again at commit.
"""

from __future__ import annotations

from django.apps import apps
from django.db.models import Model

from django_dbperf.cache.calls import cached_as
from django_dbperf.cache.dependencies import DELETE, tables_changed_with
from django_dbperf.cache.invalidation import model_tables
from django_dbperf.cache.namespace import all_databases
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
    # As a DELETE of them would: database-level cascades and declared triggers too.
    STORE.bump(all_databases(tables_changed_with(frozenset(tables), DELETE)))


def invalidate_tags(*tags: str) -> None:
    """Invalidate every cached queryset stored with one of these tags."""
    for tag in tags:
        STORE.count(f"tag:{tag}", "invalidation")
    STORE.bump(tags=tags)


def invalidate_all() -> None:
    """Invalidate every cached queryset at once (the epoch is renewed)."""
    STORE.invalidate_all()


def stats() -> dict[str, dict[str, int]]:
    """Hit, miss, invalidation, bypass and rejected counters of every app instance, per model
    and tag (``"entries"`` counts entries that failed verification)."""
    return STORE.stats()
