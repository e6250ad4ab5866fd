"""The coroutine frames awaiting the current worker thread's call (async views' ORM calls).

The async ORM runs each call in a worker thread (asgiref's ``sync_to_async``) whose stack ends at
the thread handler: the view's ``await Book.objects.aget(...)`` line is not on it. That line is
in the suspended coroutine chain of the task awaiting the worker. A capture started inside a
task remembers the task in a context variable; the worker thread runs in a copy of the task's
context, so it can read which task awaits it, and that task is suspended (so its chain holds
still) until the call returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import FrameType
from typing import Any

_task: ContextVar[asyncio.Task[Any] | None] = ContextVar("dbperf_awaiting_task", default=None)


@contextmanager
def remembering_task() -> Iterator[None]:
    """Remember the running task (if any) for worker threads started inside the block."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop running in this thread: a sync capture
        task = None
    if task is None:
        yield
        return
    token = _task.set(task)
    try:
        yield
    finally:
        _task.reset(token)


def _frame_and_next(awaitable: Any) -> tuple[FrameType | None, Any]:
    for frame_name, next_name in (
        ("cr_frame", "cr_await"),
        ("ag_frame", "ag_await"),
        ("gi_frame", "gi_yieldfrom"),
    ):
        if hasattr(awaitable, frame_name):
            return getattr(awaitable, frame_name), getattr(awaitable, next_name, None)
    return None, None


def awaited_frames() -> list[FrameType]:
    """The awaiting task's coroutine frames, innermost first; empty outside a worker thread."""
    task = _task.get()
    if task is None or task.done():
        return []
    frames: list[FrameType] = []
    awaitable: Any = task.get_coro()
    while awaitable is not None and len(frames) < 200:
        frame, awaitable = _frame_and_next(awaitable)
        if frame is not None:
            frames.append(frame)
    frames.reverse()
    return frames
