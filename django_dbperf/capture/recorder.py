"""The capture engine: one ``execute_wrapper`` per connection, active only inside a capture.

The wrapper is installed once on every connection (``connection_created`` fires for each new
connection, in every thread) and does nothing unless a context variable holds an active
``Recorder``. Context variables follow a request into asgiref's ``sync_to_async`` worker
threads, which is where the async ORM runs its queries, so async views are captured too.
An uncaptured query pays one ``ContextVar.get()``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from django_dbperf.capture.awaiting import remembering_task
from django_dbperf.capture.callsite import (
    Callsite,
    LazyLoad,
    Origin,
    PendingOrigin,
    TemplateSite,
    inspect_stack,
)
from django_dbperf.capture.fetch_mode import fetching
from django_dbperf.capture.fingerprint import fingerprint
from django_dbperf.capture.request import RequestInfo

logger = logging.getLogger("django_dbperf")

# Queries nobody wrote: contrib.postgres looks up type OIDs on every new connection.
IGNORED_SQL = frozenset({"SELECT oid, typarray FROM pg_type WHERE typname = %s"})


_UNREAD = object()  # QueryRecord.origin not read from its frames yet


@dataclass(slots=True, eq=False)
class QueryRecord:
    """One executed statement, as the capture saw it."""

    sql: str
    params: Any
    many: bool
    alias: str
    duration: float  # seconds
    fingerprint: str
    callsite: Callsite | None  # the first line of the project's code
    lazy_load: LazyLoad | None = None
    template: TemplateSite | None = None
    framework: Callsite | None = None  # the framework line that ran it (Wagtail, admin, DRF)
    pending_origin: PendingOrigin | None = None  # read into ``origin`` when first asked
    request: RequestInfo | None = None  # set by QueryCountMiddleware once the response is made
    ignored: bool = False  # run inside ignore_queries(): counted, never part of a finding
    rows: int = -1  # the driver's row count (SQLite reports none for a SELECT: -1)

    _origin: Any = field(default=_UNREAD, init=False, repr=False)

    @property
    def origin(self) -> Origin | None:
        """The queryset whose evaluation ran this query (read from its frames once)."""
        origin = self._origin
        if origin is _UNREAD:
            pending = self.pending_origin
            origin = self._origin = pending.resolve() if pending is not None else None
            self.pending_origin = None  # the frames are not needed any more
        return origin  # type: ignore[no-any-return]

    @property
    def duration_ms(self) -> float:
        return self.duration * 1000

    @property
    def site(self) -> Callsite | None:
        """The line the query is attributed to: the project's, else the framework's."""
        return self.callsite or self.framework

    @property
    def callsite_key(self) -> tuple[str, int] | None:
        site = self.site
        return (site.path, site.line) if site else None


@dataclass(slots=True)
class Recorder:
    """Collects the queries of one capture; ``using`` limits it to some aliases."""

    using: frozenset[str] | None = None
    records: list[QueryRecord] = field(default_factory=list)

    def wants(self, alias: str) -> bool:
        return self.using is None or alias in self.using


_active: ContextVar[tuple[Recorder, ...]] = ContextVar("dbperf_recorders", default=())


def capture_wrapper(
    execute: Callable[..., Any],
    sql: str,
    params: Any,
    many: bool,
    context: dict[str, Any],
) -> Any:
    """The ``execute_wrapper`` installed on every connection; idle unless a capture is active.

    A plain function rather than a callable object: it is called for every query of the
    project, captured or not, and a function call is the cheaper of the two.
    """
    recorders = _active.get()
    if not recorders:
        return execute(sql, params, many, context)
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        duration = time.perf_counter() - started
        try:
            _record(recorders, sql, params, many, duration, context)
        except Exception:
            # A bug in the capture must never fail the query it observes.
            logger.exception("django_dbperf could not record a query; it ran normally")


def _record(
    recorders: tuple[Recorder, ...],
    sql: str,
    params: Any,
    many: bool,
    duration: float,
    context: dict[str, Any],
) -> None:
    shape = fingerprint(sql)  # hashes sql once; the IGNORED_SQL test below reuses it
    if sql in IGNORED_SQL:
        return
    alias = context["connection"].alias
    # skip=2: this frame and the wrapper's; the walk starts at Django's cursor code.
    stack = inspect_stack(skip=2)
    record = QueryRecord(
        sql,
        params,
        many,
        alias,
        duration,
        shape,
        stack.callsite,
        fetching.get() or stack.lazy_load,
        stack.template,
        stack.framework,
        stack.origin,
        None,
        False,
        _row_count(context["cursor"]),
    )
    if len(recorders) == 1 and recorders[0].using is None:
        recorders[0].records.append(record)
        return
    for recorder in recorders:
        if recorder.wants(alias):
            recorder.records.append(record)


def _row_count(cursor: Any) -> int:
    """Rows the statement returned or changed, when the driver tells (after a failed
    statement, or on SQLite for a SELECT, it does not)."""
    try:
        count = cursor.cursor.rowcount
    except Exception:
        return -1
    return count if isinstance(count, int) else -1


def install(connection: BaseDatabaseWrapper, **kwargs: object) -> None:
    """Add the capture wrapper to ``connection`` once (a ``connection_created`` receiver)."""
    wrappers = connection.execute_wrappers
    if capture_wrapper not in wrappers:
        # First, so it is the outermost wrapper, and so the pop() of a connection.execute_wrapper()
        # block that is open right now removes that block's own wrapper, never this one.
        wrappers.insert(0, capture_wrapper)


def install_on_open_connections() -> None:
    """Connections of this thread opened before the receiver was connected need it too."""
    for connection in connections.all(initialized_only=True):
        install(connection)


@contextmanager
def recording(using: frozenset[str] | None = None) -> Iterator[Recorder]:
    """Record the queries run inside the block (this context, and threads it hands work to)."""
    install_on_open_connections()
    recorder = Recorder(using)
    active = _marking_ignored(recorder) if _excluding_from_findings.get() else recorder
    token = _active.set((*_active.get(), active))
    try:
        with remembering_task():
            yield recorder
    finally:
        _active.reset(token)


@contextmanager
def ignoring_queries() -> Iterator[None]:
    """Queries inside the block are django_dbperf's own bookkeeping: no capture sees them."""
    token = _active.set(())
    try:
        yield
    finally:
        _active.reset(token)


class _IgnoredRecords(list[QueryRecord]):
    """Stands in for a recorder's ``records`` in ``_active`` inside ``excluding_from_findings()``:
    each record appended goes to the real list, marked ignored.

    Marking on append keeps ``_record`` unchanged, so queries outside such a block pay nothing
    for the feature. This list itself stays empty: only ``_record`` reaches it, to append.
    """

    __slots__ = ("target",)

    def __init__(self, target: list[QueryRecord]) -> None:
        super().__init__()
        self.target = target

    def append(self, record: QueryRecord) -> None:
        record.ignored = True
        self.target.append(record)


def _marking_ignored(recorder: Recorder) -> Recorder:
    """A view of ``recorder`` that shares its records list and marks what it appends."""
    target = recorder.records
    if isinstance(target, _IgnoredRecords):
        return recorder
    return replace(recorder, records=_IgnoredRecords(target))


# Inside excluding_from_findings(): read once per capture entered, never per query.
_excluding_from_findings: ContextVar[bool] = ContextVar("dbperf_excluding", default=False)


@contextmanager
def excluding_from_findings() -> Iterator[None]:
    """Queries inside the block are captured and counted, but marked ``ignored`` for analysis.

    Unlike ``ignoring_queries()``, every capture still sees them (counts keep matching Django's
    ``CaptureQueriesContext``); captures entered inside the block mark them too.
    """
    active = _active.set(tuple(_marking_ignored(recorder) for recorder in _active.get()))
    excluding = _excluding_from_findings.set(True)
    try:
        yield
    finally:
        _excluding_from_findings.reset(excluding)
        _active.reset(active)


def is_capturing() -> bool:
    return bool(_active.get())
