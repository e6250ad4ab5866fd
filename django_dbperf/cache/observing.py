"""Per-context observers of cache events: what cached querysets did during one request.

``store.py``'s counters add up every request of the process; ``observe_cache_events()`` also
hands each event of this context (and of the threads it hands work to, like a capture) to a
list of its own, e.g. for the django-debug-toolbar panel. Unobserved, an event costs one
``ContextVar.get()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import NamedTuple


class CacheEvent(NamedTuple):
    subject: str  # "app_label.Model", "tag:<tag>", or "entries" for entries failing verification
    event: str  # one of cache.EVENTS: hit, miss, invalidation, bypass, rejected
    reason: str | None  # why a read was served uncached, when the bypass says


OBSERVERS: ContextVar[tuple[list[CacheEvent], ...]] = ContextVar(
    "dbperf_cache_observers", default=()
)


@contextmanager
def observe_cache_events() -> Iterator[list[CacheEvent]]:
    """Inside the block, every cache event of this context is appended to the yielded list.

    Nested blocks each see their own events; an outer block also sees the inner one's.
    """
    events: list[CacheEvent] = []
    token = OBSERVERS.set((*OBSERVERS.get(), events))
    try:
        yield events
    finally:
        OBSERVERS.reset(token)
