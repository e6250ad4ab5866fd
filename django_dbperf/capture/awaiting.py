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
import inspect
import time
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


# How long a worker waits for the awaiting task to suspend (it is still running for a moment
# after handing the call to the worker): past this the callsite is left unknown, never guessed.
SUSPEND_WAIT_SECONDS = 0.5


def _suspended(coroutine: Any) -> bool:
    """Wait until ``coroutine`` is suspended: only then does its await chain hold still."""
    deadline = time.monotonic() + SUSPEND_WAIT_SECONDS
    while getattr(coroutine, "cr_running", False):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0)  # lets the event loop's thread reach its await
    return True


def awaited_frames() -> list[FrameType]:
    """The awaiting task's coroutine frames, innermost first; empty outside a worker thread."""
    task = _task.get()
    if task is None or task.done():
        return []
    frames: list[FrameType] = []
    awaitable: Any = task.get_coro()
    if not _suspended(awaitable):
        return []
    while awaitable is not None and len(frames) < 200:
        frame, awaitable = _frame_and_next(awaitable)
        if frame is not None:
            frames.append(frame)
    # The chain must end in a sync_to_async call: a task awaiting something else (its children
    # under asyncio.gather(), which inherited its context) is not the one this worker serves.
    if not frames or frames[-1].f_code is not _sync_to_async_code():
        return []
    frames.reverse()
    return frames


def _sync_to_async_code() -> Any:
    from asgiref.sync import SyncToAsync

    return inspect.unwrap(SyncToAsync.__call__).__code__
