"""Cached querysets in Valkey/Redis, invalidated by every write: ``qs.cached()``.

Public API: ``CachingQuerySet``, ``CachingManager`` (and their mixins), ``cached_as()``,
``invalidate()``, ``invalidate_tags()``, ``invalidate_all()``, ``stats()``, ``counters()``, and
the querysets warmed before traffic arrives: ``@hot_queryset`` and ``warm()`` (``warming.py``).

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

from collections.abc import Iterable
from typing import Any

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
from django_dbperf.cache.warming import HotQueryset, Warmed, WarmReport, hot_queryset, warm

__all__ = [
    "CachingEagerManager",
    "CachingEagerQuerySet",
    "CachingManager",
    "CachingManagerMixin",
    "CachingQuerySet",
    "CachingQuerySetMixin",
    "HotQueryset",
    "WarmReport",
    "Warmed",
    "cached_as",
    "counters",
    "hot_queryset",
    "invalidate",
    "invalidate_all",
    "invalidate_tags",
    "stats",
    "warm",
]

EVENTS = ("hit", "miss", "invalidation", "bypass", "rejected")


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


def counters(models: Iterable[str] = (), tags: Iterable[str] = ()) -> dict[str, Any]:
    """``stats()`` as the admin and ``dbperf_cache stats`` show them.

    ``{"subjects": [(name, counts)...] sorted, "totals": counts, "hit_ratio": float | None}``.
    With ``models`` (labels) or ``tags``, only those subjects, every counter zero until they
    have some. The totals add up the models (a tag counts the same reads again), or the tags
    when only tags were asked for.
    """
    models, tags = list(models), list(tags)
    subjects = stats()
    if models or tags:
        wanted = [*models, *(f"tag:{tag}" for tag in tags)]
        subjects = {name: subjects.get(name, dict.fromkeys(EVENTS, 0)) for name in wanted}
    summed = [
        counts
        for name, counts in subjects.items()
        if not name.startswith("tag:") or (tags and not models)
    ]
    totals = {event: sum(counts[event] for counts in summed) for event in EVENTS}
    reads = totals["hit"] + totals["miss"]
    return {
        "subjects": sorted(subjects.items()),
        "totals": totals,
        "hit_ratio": totals["hit"] / reads if reads else None,
    }
