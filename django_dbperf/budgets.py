"""Query budgets: the most queries (and duplicates) a view or a block may run.

``query_budget`` works as a decorator on sync and async views and functions, and as a context
manager. A view's own budget replaces the global ``DBPERF["QUERY_BUDGET"]`` for its requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from django_dbperf.decorating import run_inside
from django_dbperf.inspection import capture_queries
from django_dbperf.reporting import report_over_budget

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class BudgetScope:
    """Per request: whether the view declared its own budget (then the global one is skipped)."""

    declared: bool = False


_scope: ContextVar[BudgetScope | None] = ContextVar("dbperf_budget_scope", default=None)


@contextmanager
def budget_scope() -> Iterator[BudgetScope]:
    scope = BudgetScope()
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def _check_limit(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"query_budget({name}=...) must be a whole number >= 0, not {value!r}.")


def budget_problems(
    captured: capture_queries, max_queries: int | None, max_duplicates: int | None
) -> list[str]:
    """What exceeds the budget, in words; empty when within it."""
    problems = []
    if max_queries is not None and len(captured) > max_queries:
        problems.append(f"{len(captured)} queries, budget {max_queries}")
    if max_duplicates is not None:
        duplicates = sum(finding.count - 1 for finding in captured.duplicates)
        if duplicates > max_duplicates:
            problems.append(f"{duplicates} duplicate queries, budget {max_duplicates}")
    return problems


class query_budget:
    """Report when the decorated view/function, or the block, runs more queries than allowed."""

    def __init__(self, max_queries: int | None = None, max_duplicates: int | None = None) -> None:
        _check_limit("max_queries", max_queries)
        _check_limit("max_duplicates", max_duplicates)
        if max_queries is None and max_duplicates is None:
            raise ValueError("query_budget() needs max_queries, max_duplicates or both.")
        self.max_queries = max_queries
        self.max_duplicates = max_duplicates
        self.where = "a query_budget block"
        self._captures: list[capture_queries] = []

    def __enter__(self) -> capture_queries:
        scope = _scope.get()
        if scope is not None:
            scope.declared = True
        captured = capture_queries().__enter__()
        self._captures.append(captured)
        return captured

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        captured = self._captures.pop()
        captured.__exit__(exc_type, exc, traceback)
        if exc_type is None:
            problems = budget_problems(captured, self.max_queries, self.max_duplicates)
            report_over_budget(problems, captured.queries, self.where)

    def __call__(self, func: F) -> F:
        where = f"{func.__module__}.{func.__qualname__}"
        # Each call gets its own budget object, so concurrent calls never share state.
        limits = (self.max_queries, self.max_duplicates)

        def fresh() -> query_budget:
            budget = query_budget(*limits)
            budget.where = where
            return budget

        wrapper = run_inside(func, fresh)
        # Readable by tools (the toolbar panel); functools.wraps copies it to outer decorators.
        wrapper.dbperf_query_budget = limits  # type: ignore[attr-defined]
        return wrapper
