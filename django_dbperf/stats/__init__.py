"""The statistics store's intake: slow queries handed over by the middleware, kept in memory.

The middleware never writes to the database inside a request; it calls ``submit_slow_queries``
once per request, which appends to a bounded, thread-safe buffer that readers drain.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from django_dbperf.capture import QueryRecord

BUFFER_SIZE = 1000

_buffer: deque[SlowQuery] = deque(maxlen=BUFFER_SIZE)


@dataclass(frozen=True)
class SlowQuery:
    fingerprint: str
    sql: str
    duration_ms: float
    alias: str
    callsite: str | None
    path: str
    view: str | None
    at: float  # time.time()


def submit_slow_queries(records: Sequence[QueryRecord], *, path: str, view: str | None) -> None:
    """Keep the slow queries of one request (oldest entries fall out when the buffer is full)."""
    now = time.time()
    _buffer.extend(
        SlowQuery(
            fingerprint=record.fingerprint,
            sql=record.sql,
            duration_ms=record.duration_ms,
            alias=record.alias,
            callsite=str(record.callsite) if record.callsite else None,
            path=path,
            view=view,
            at=now,
        )
        for record in records
    )


def recent_slow_queries() -> list[SlowQuery]:
    """The buffered slow queries, oldest first."""
    return list(_buffer)


def drain_slow_queries() -> list[SlowQuery]:
    """Take every buffered slow query out of the buffer (for a flush to a durable store)."""
    drained = []
    while True:
        try:
            drained.append(_buffer.popleft())
        except IndexError:
            return drained
