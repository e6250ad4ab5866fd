"""The capture engine: one ``execute_wrapper`` per connection, active only inside a capture.

The wrapper is installed once on every connection (``connection_created`` fires for each new
connection, in every thread) and does nothing unless a context variable holds an active
``Recorder``. Context variables follow a request into asgiref's ``sync_to_async`` worker
threads, which is where the async ORM runs its queries, so async views are captured too.
An uncaptured query pays one ``ContextVar.get()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from django_dbperf.capture.callsite import Callsite, LazyLoad, TemplateSite, inspect_stack
from django_dbperf.capture.fetch_mode import current_lazy_load
from django_dbperf.capture.fingerprint import fingerprint

# Queries nobody wrote: contrib.postgres looks up type OIDs on every new connection.
IGNORED_SQL = frozenset({"SELECT oid, typarray FROM pg_type WHERE typname = %s"})


@dataclass(slots=True)
class QueryRecord:
    """One executed statement, as the capture saw it."""

    sql: str
    params: Any
    many: bool
    alias: str
    duration: float  # seconds
    fingerprint: str
    callsite: Callsite | None
    lazy_load: LazyLoad | None = None
    template: TemplateSite | None = None

    @property
    def duration_ms(self) -> float:
        return self.duration * 1000

    @property
    def callsite_key(self) -> tuple[str, int] | None:
        return (self.callsite.path, self.callsite.line) if self.callsite else None


@dataclass(slots=True)
class Recorder:
    """Collects the queries of one capture; ``using`` limits it to some aliases."""

    using: frozenset[str] | None = None
    records: list[QueryRecord] = field(default_factory=list)

    def wants(self, alias: str) -> bool:
        return self.using is None or alias in self.using


_active: ContextVar[tuple[Recorder, ...]] = ContextVar("dbperf_recorders", default=())
_ignoring: ContextVar[bool] = ContextVar("dbperf_ignoring", default=False)


def _record(recorders: tuple[Recorder, ...], record: QueryRecord) -> None:
    for recorder in recorders:
        if recorder.wants(record.alias):
            recorder.records.append(record)


class CaptureWrapper:
    """The ``execute_wrapper`` installed on every connection."""

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        recorders = _active.get()
        if not recorders or _ignoring.get() or sql in IGNORED_SQL:
            return execute(sql, params, many, context)
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            duration = time.perf_counter() - started
            # skip=1: this frame; the walk starts at Django's cursor code.
            callsite, lazy_load, template = inspect_stack(skip=1)
            lazy_load = current_lazy_load() or lazy_load
            alias = context["connection"].alias
            record = QueryRecord(
                sql, params, many, alias, duration, fingerprint(sql), callsite, lazy_load, template
            )
            _record(recorders, record)


WRAPPER = CaptureWrapper()


def install(connection: BaseDatabaseWrapper, **kwargs: object) -> None:
    """Add the capture wrapper to ``connection`` once (a ``connection_created`` receiver)."""
    wrappers = connection.execute_wrappers
    if WRAPPER not in wrappers:
        # First, so it is the outermost wrapper, and so the pop() of a connection.execute_wrapper()
        # block that is open right now removes that block's own wrapper, never this one.
        wrappers.insert(0, WRAPPER)


def install_on_open_connections() -> None:
    """Connections of this thread opened before the receiver was connected need it too."""
    for connection in connections.all(initialized_only=True):
        install(connection)


@contextmanager
def recording(using: frozenset[str] | None = None) -> Iterator[Recorder]:
    """Record the queries run inside the block (this context, and threads it hands work to)."""
    install_on_open_connections()
    recorder = Recorder(using)
    token = _active.set((*_active.get(), recorder))
    try:
        yield recorder
    finally:
        _active.reset(token)


@contextmanager
def ignoring_queries() -> Iterator[None]:
    """Queries inside the block are django_dbperf's own bookkeeping: no capture sees them."""
    token = _ignoring.set(True)
    try:
        yield
    finally:
        _ignoring.reset(token)


def is_capturing() -> bool:
    return bool(_active.get())
