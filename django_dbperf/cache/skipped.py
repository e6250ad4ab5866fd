"""Tables no cached read may use, so writes to them skip the cache server entirely.

With ``DBPERF["CACHE"]`` set, every write costs a round trip to Valkey/Redis, including writes
nobody caches: sessions, the admin log, the migration recorder. The models listed in
``DBPERF["CACHE"]["NOT_CACHED"]`` (and Django's ``django_migrations`` table) are skipped, and it
stays safe because the skip is enforced on both sides: a cached read that touches one of these
tables is served uncached (counted as a bypass), so no entry can depend on a version that writes
no longer bump.
"""

from __future__ import annotations

import functools

from django.apps import apps
from django.core.signals import setting_changed
from django.db.migrations.recorder import MigrationRecorder

from django_dbperf.conf import get_config

__all__ = ["skipped_reason", "skipped_tables"]


@functools.cache
def skipped_tables() -> frozenset[str]:
    """The tables of the ``NOT_CACHED`` models that are installed, and ``django_migrations``."""
    tables = {MigrationRecorder.Migration._meta.db_table}
    for label in get_config()["CACHE"]["NOT_CACHED"]:
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            continue  # not installed (the defaults name optional contrib apps)
        tables.add(model._meta.db_table)
    return frozenset(tables)


def skipped_reason(tables: frozenset[str]) -> str | None:
    """Why a read of ``tables`` is served uncached, if it touches a skipped one."""
    touched = tables & skipped_tables()
    if not touched:
        return None
    return f'it reads {", ".join(sorted(touched))}, which DBPERF["CACHE"]["NOT_CACHED"] lists'


def _forget(*, setting: str, **kwargs: object) -> None:
    if setting == "DBPERF":
        skipped_tables.cache_clear()


setting_changed.connect(_forget, dispatch_uid="django_dbperf.cache.skipped")
