"""``FETCH_RECORD``: a Django 6.1 fetch mode that names each lazy load for the capture.

Django's public seam for lazy loads is the fetch mode: its ``fetch(fetcher, instance)`` runs for
every forward foreign key, one-to-one and deferred field loaded on access. This mode tells the
capture which relation it is loading, then fetches exactly like its delegate (``FETCH_ONE`` by
default, or ``FETCH_PEERS`` to batch the loads).

Querysets opt in with ``.fetch_mode(FETCH_RECORD)``. Querysets that do not are still named from
Django's descriptor frames (see ``callsite``), which also covers Django 5.2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import django

from django_dbperf.capture.callsite import LazyLoad

# The lazy load a RecordingFetchMode is running in this context (read by the capture wrapper).
fetching: ContextVar[LazyLoad | None] = ContextVar("dbperf_fetching", default=None)


def current_lazy_load() -> LazyLoad | None:
    """The lazy load a ``RecordingFetchMode`` is running in this context, if any."""
    return fetching.get()


def describe_fetch(fetcher: Any, instance: Any) -> LazyLoad:
    """What ``fetcher`` (a descriptor or deferred attribute) is about to load on ``instance``."""
    from django.db.models.fields.related_descriptors import (
        ForwardManyToOneDescriptor,
        ReverseOneToOneDescriptor,
    )

    model = type(instance)
    if type(fetcher).__name__ == "GenericForeignKeyDescriptor":
        return LazyLoad("generic_foreign_key", model, fetcher.field.name)
    if isinstance(fetcher, ReverseOneToOneDescriptor):
        return LazyLoad("reverse_one_to_one", model, fetcher.related.get_accessor_name())
    if isinstance(fetcher, ForwardManyToOneDescriptor):
        return LazyLoad("forward", model, fetcher.field.name)
    return LazyLoad("deferred", model, fetcher.field.attname)


@contextmanager
def _announcing(lazy_load: LazyLoad) -> Iterator[None]:
    token = fetching.set(lazy_load)
    try:
        yield
    finally:
        fetching.reset(token)


if django.VERSION >= (6, 1):
    from django.db.models.fetch_modes import FETCH_ONE, FetchMode

    class RecordingFetchMode(FetchMode):
        """Fetch like ``delegate``, announcing each lazy load to active captures."""

        __slots__ = ("delegate", "track_peers")

        def __init__(self, delegate: FetchMode = FETCH_ONE) -> None:
            self.delegate = delegate
            # FETCH_PEERS needs Django to track each instance's peers; FETCH_ONE does not.
            self.track_peers = delegate.track_peers

        def fetch(self, fetcher: Any, instance: Any) -> None:
            with _announcing(describe_fetch(fetcher, instance)):
                self.delegate.fetch(fetcher, instance)

        def __reduce__(self) -> tuple[Any, ...]:
            return (RecordingFetchMode, (self.delegate,))

        def __repr__(self) -> str:
            return f"RecordingFetchMode({self.delegate!r})"

    FETCH_RECORD = RecordingFetchMode()
