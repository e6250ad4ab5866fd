"""Slow statements linked to their page in the admin, looked up when the panel is rendered.

Read from the statistics store at render, never while the request runs: the toolbar's stored
stats stay plain JSON, and a page that was flushed since the request links to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import DatabaseError, transaction
from django.urls import NoReverseMatch, reverse

from django_dbperf.capture import ignoring_queries
from django_dbperf.conf import get_config
from django_dbperf.stats.models import QueryShape

CHANGE_URL = "admin:django_dbperf_queryshape_change"


def with_links(shapes: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each slow shape (``summary.slow_summary``) with ``url`` (its admin page) or ``note``
    (why there is no link)."""
    rows = [dict(shape) for shape in shapes]
    if not rows:
        return rows
    config = get_config()["STATS"]
    try:
        # The store's own bookkeeping: no capture counts it. In a savepoint, so a store that
        # cannot be read (not migrated) leaves a request's open transaction usable.
        with ignoring_queries(), transaction.atomic(using=config["DATABASE"]):
            found = (
                QueryShape.objects.using(config["DATABASE"])
                .filter(fingerprint_id__in={row["fingerprint_id"] for row in rows})
                .values_list("pk", "alias", "fingerprint_id")
            )
            stored = {(alias, shape_id): pk for pk, alias, shape_id in found}
    except DatabaseError as error:
        for row in rows:
            row["url"] = None
            row["note"] = f"The statistics store could not be read ({error})."
        return rows
    for row in rows:
        pk = stored.get((row["alias"], row["fingerprint_id"]))
        row["url"], row["note"] = None, None
        if pk is None:
            row["note"] = _not_stored(config)
            continue
        try:
            row["url"] = reverse(CHANGE_URL, args=[pk])
        except NoReverseMatch:
            row["note"] = "Stored, but the Django admin is not in this project's URLs."
    return rows


def _not_stored(config: Mapping[str, Any]) -> str:
    if not config["ENABLED"]:
        return 'Not stored: DBPERF["STATS"]["ENABLED"] is False.'
    return (
        "Not in the statistics store yet: QueryCountMiddleware records it, and each process "
        f"writes what it recorded every {config['FLUSH_INTERVAL_S']:g} s. Reopen this panel then."
    )
