"""The query budgets of a request, as ``QueryCountMiddleware`` applies them: the view's own
``@query_budget``, else ``DBPERF["QUERY_BUDGET"]``; and what this request's queries exceed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django_dbperf.budgets import budget_problems, query_budget
from django_dbperf.conf import get_config
from django_dbperf.inspection import capture_queries

_MAX_WRAPPERS = 20  # decorators followed through __wrapped__


def declared_budget(view: Callable[..., Any] | None) -> query_budget | None:
    """The ``@query_budget`` of a function view, through any decorators around it.

    ``query_budget`` puts its limits on the wrapper it returns (``dbperf_query_budget``).
    A budget applied inside a class-based view's methods is not found (``method_decorator``
    applies it per call).
    """
    func: Any = view
    for _ in range(_MAX_WRAPPERS):
        if func is None:
            return None
        limits = getattr(func, "dbperf_query_budget", None)
        if limits is not None:
            return query_budget(*limits)
        func = getattr(func, "__wrapped__", None)
    return None


def budget_rows(captured: capture_queries, view: Callable[..., Any] | None) -> list[dict[str, Any]]:
    """The budgets that could apply to the request, which one does, and what it exceeds.

    Counted over the whole request (a ``@query_budget`` view's own report counts the view
    function only: the same queries, unless middleware or a lazily rendered response query).
    """
    rows = []
    declared = declared_budget(view)
    if declared is not None:
        source = f"@query_budget on {getattr(view, '__qualname__', 'the view')}"
        rows.append(_row(captured, source, declared.max_queries, declared.max_duplicates))
    global_budget = get_config()["QUERY_BUDGET"]
    if global_budget is not None:
        row = _row(captured, 'DBPERF["QUERY_BUDGET"]', global_budget, None)
        row["applies"] = declared is None
        rows.append(row)
    return rows


def _row(
    captured: capture_queries, source: str, max_queries: int | None, max_duplicates: int | None
) -> dict[str, Any]:
    problems = budget_problems(captured, max_queries, max_duplicates)
    return {
        "source": source,
        "max_queries": max_queries,
        "max_duplicates": max_duplicates,
        "problems": problems,
        "exceeded": bool(problems),
        "applies": True,
    }
