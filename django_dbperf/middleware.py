"""``QueryCountMiddleware``: queries, database time and findings per request (sync and async).

A sampled request runs inside ``capture_queries()``; an unsampled one pays a call to
``random.random()``. The middleware never queries the database itself: slow queries go to the
statistics store's in-memory buffer through one function call, and slow ones are logged.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from django_dbperf.budgets import budget_problems, budget_scope
from django_dbperf.capture import is_capturing
from django_dbperf.capture.request import stamp_request, view_name
from django_dbperf.conf import get_config
from django_dbperf.exceptions import NPlusOneError, QueryBudgetExceeded
from django_dbperf.inspection import capture_queries
from django_dbperf.reporting import logger, report_findings, report_over_budget, report_slow
from django_dbperf.stats import record_request

QUERY_COUNT_HEADER = "X-DB-Query-Count"


def _sampled(config: Mapping[str, Any]) -> float:
    """How many requests this one stands for when captured (``1 / SAMPLE_RATE``); 0.0 when
    it is not captured. Inside a capture (a test's assertion) it is always captured, standing
    for itself: its findings then know the request, for ignore rules by path or view."""
    rate = config["SAMPLE_RATE"]
    if not config["ENABLED"]:
        return 0.0
    if rate >= 1 or is_capturing():
        return 1.0
    return 1.0 / rate if random.random() < rate else 0.0


def _where(request: HttpRequest) -> str:
    view = view_name(request)
    return f"{request.method} {request.path}" + (f" ({view})" if view else "")


def _add_headers(response: HttpResponseBase, captured: capture_queries) -> None:
    timing = f'db;dur={captured.total_ms:.1f};desc="{len(captured)} queries"'
    existing = response.headers.get("Server-Timing")
    response.headers["Server-Timing"] = f"{existing}, {timing}" if existing else timing
    response.headers[QUERY_COUNT_HEADER] = str(len(captured))


class QueryCountMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        config = get_config()
        weight = _sampled(config)
        if not weight:
            return self.get_response(request)
        with budget_scope() as scope, capture_queries() as captured:
            response = self.get_response(request)
        self.safely_finish(request, response, captured, config, weight, scope.declared)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        config = get_config()
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        weight = _sampled(config)
        if not weight:
            return await get_response(request)
        with budget_scope() as scope, capture_queries() as captured:
            response = await get_response(request)
        self.safely_finish(request, response, captured, config, weight, scope.declared)
        return response

    def safely_finish(self, *args: Any, **kwargs: Any) -> None:
        """``finish()``, where only the exceptions raise mode asks for can fail the request."""
        try:
            self.finish(*args, **kwargs)
        except (NPlusOneError, QueryBudgetExceeded):
            raise
        except Exception:
            logger.exception("django_dbperf could not report on a request; it was served as is")

    def finish(
        self,
        request: HttpRequest,
        response: HttpResponseBase,
        captured: capture_queries,
        config: Mapping[str, Any],
        weight: float,
        budget_declared: bool,
    ) -> None:
        """Headers, slow queries, findings and the global budget, for one captured request."""
        if config["HEADERS"]:
            _add_headers(response, captured)
        where = _where(request)
        # Stamped before the findings are read, so DBPERF["IGNORE"]'s path and view rules apply
        # here and in every capture around this request (the records are shared).
        view = stamp_request(request, captured.queries)
        slow_seconds = config["SLOW_QUERY_MS"] / 1000
        for query in captured.queries:
            if query.duration >= slow_seconds:
                report_slow(query, view, where)
        findings = captured.findings
        # Recorded before reporting: raise mode ends finish() there.
        record_request(captured.queries, findings, view=view or "", sample_rate=1.0 / weight)
        report_findings(findings, where)
        budget = config["QUERY_BUDGET"]
        if budget is not None and not budget_declared:
            report_over_budget(budget_problems(captured, budget, None), captured.queries, where)
