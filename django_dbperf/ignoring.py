"""``ignore_queries()``: queries that are counted but never part of a finding (third-party code).

A context manager and a decorator for functions and coroutine functions. Captures still see
and count the queries (``len()``, budgets, headers keep matching ``CaptureQueriesContext``);
the analysis leaves them out. ``DBPERF["IGNORE"]`` does the same by rule, without touching code.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, TypeVar, overload

from django_dbperf.capture.recorder import excluding_from_findings
from django_dbperf.decorating import run_inside

F = TypeVar("F", bound=Callable[..., Any])


class IgnoredQueries:
    """What ``ignore_queries()`` returns: usable as ``with`` block and as decorator."""

    def __init__(self) -> None:
        # One entry per open ``with``, so an instance can be entered again while open.
        self._blocks: list[AbstractContextManager[None]] = []

    def __enter__(self) -> None:
        block = excluding_from_findings()
        block.__enter__()
        self._blocks.append(block)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._blocks.pop().__exit__(exc_type, exc, traceback)

    def __call__(self, func: F) -> F:
        return run_inside(func, excluding_from_findings)


@overload
def ignore_queries[G: Callable[..., Any]](func: G) -> G: ...


@overload
def ignore_queries(func: None = None) -> IgnoredQueries: ...


def ignore_queries[G: Callable[..., Any]](func: G | None = None) -> G | IgnoredQueries:
    """Leave the queries of a block or function out of findings; they are still counted.

    ``with ignore_queries(): ...``, ``@ignore_queries`` or ``@ignore_queries()``; works on sync
    and async functions. Not to be confused with silencing a capture: the queries stay in
    ``captured.queries`` and in every count.
    """
    ignored = IgnoredQueries()
    return ignored if func is None else ignored(func)
