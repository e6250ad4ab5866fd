"""The workload the advisor reads: statements with the time they cost, from the statistics
store (shapes, with their views and lines) and pg_stat_statements rows no shape accounts for.

Total time is what matters: a statement run a million times at 2 ms costs more than one run
ten times at 500 ms. A caller can also pass statements it captured itself (a test run, an
audit) as ``WorkloadQuery`` objects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError

from django_dbperf.conf import get_config

DEFAULT_SIZE = 200  # statements, by total time


@dataclass(frozen=True)
class WorkloadQuery:
    key: str  # the shape's fingerprint id, or "queryid:<n>" for a pg_stat_statements row
    sql: str  # Django's form (%s) or pg_stat_statements' ($1)
    params: tuple[Any, ...] | None  # stored values, only when none was masked
    total_ms: float
    calls: float
    views: tuple[tuple[str, float], ...] = ()  # (view name, ms it spent on this statement)
    callsites: tuple[str, ...] = ()
    source: str = "store"
    # Placeholder number (1-based) -> the value it had in every call seen: what the ORM knew
    # (is_active=True, status="open") though the statement shows a placeholder. Only from
    # captures, which see every call's values.
    constants: tuple[tuple[int, Any], ...] = ()


def _complete(params: Any) -> tuple[Any, ...] | None:
    from django_dbperf.stats.redact import REDACTED

    if not isinstance(params, list) or any(value == REDACTED for value in params):
        return None
    return tuple(params)


def from_store(alias: str, *, size: int = DEFAULT_SIZE) -> list[WorkloadQuery]:
    """The ``size`` statements that cost the most on database ``alias``, with their views and
    lines. Empty (never an error) when the store is off or its tables are missing."""
    from django_dbperf.stats.models import PgStatement, QueryShape, QueryShapeSite

    store = get_config()["STATS"]["DATABASE"]
    try:
        shapes = list(
            QueryShape.objects.using(store)
            .filter(alias=alias)
            .order_by("-total_ms", "id")
            .values("id", "fingerprint_id", "sql", "params", "total_ms", "calls", "queryid")[:size]
        )
        views: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        sites: dict[int, set[str]] = defaultdict(set)
        for shape_id, view, callsite, total in (
            QueryShapeSite.objects.using(store)
            .filter(shape_id__in=[shape["id"] for shape in shapes])
            .values_list("shape_id", "view", "callsite", "total_ms")
        ):
            if view:
                views[shape_id][view] += total
            if callsite:
                sites[shape_id].add(callsite)
        known = {shape["queryid"] for shape in shapes if shape["queryid"] is not None}
        statements = list(
            PgStatement.objects.using(store)
            .exclude(queryid__in=known)
            .filter(toplevel=True)
            .order_by("-total_ms", "id")
            .values_list("queryid", "query", "total_ms", "calls")[:size]
        )
    except DatabaseError:
        return []
    found = [
        WorkloadQuery(
            shape["fingerprint_id"],
            shape["sql"],
            _complete(shape["params"]),
            float(shape["total_ms"]),
            float(shape["calls"]),
            tuple(sorted(views[shape["id"]].items(), key=lambda item: (-item[1], item[0]))),
            tuple(sorted(sites[shape["id"]])),
        )
        for shape in shapes
    ]
    found += [
        WorkloadQuery(f"queryid:{queryid}", query, None, float(total), float(calls), (), (), "pg")
        for queryid, query, total, calls in statements
    ]
    found.sort(key=lambda query: (-query.total_ms, query.key))
    return found[:size]


CONSTANT_TYPES = (bool, int, str)
MAX_CONSTANT_LENGTH = 64  # a longer string is data, not a flag or a status


def _constant(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_CONSTANT_LENGTH
    return isinstance(value, CONSTANT_TYPES)


def from_captured(queries: Iterable[Any], alias: str = "default") -> list[WorkloadQuery]:
    """Statements captured in this process (``capture_queries()``, a test run) as a workload:
    one entry per statement shape on ``alias``, with its summed time, one call's values and
    the values that were the same in every call."""
    from django_dbperf.analysis.sql_text import fingerprint_id

    grouped: dict[str, list[Any]] = defaultdict(list)
    for query in queries:
        if query.alias == alias and not query.many:
            grouped[query.fingerprint].append(query)
    found = []
    for fingerprint, calls in grouped.items():
        first = calls[0]
        params = tuple(first.params) if isinstance(first.params, list | tuple) else None
        constants: tuple[tuple[int, Any], ...] = ()
        if params is not None:
            constants = tuple(
                (number, value)
                for number, value in enumerate(params, 1)
                if _constant(value)
                and all(
                    isinstance(call.params, list | tuple)
                    and len(call.params) == len(params)
                    and type(call.params[number - 1]) is type(value)
                    and call.params[number - 1] == value
                    for call in calls
                )
            )
        total = sum(call.duration for call in calls) * 1000
        views = {call.request.view for call in calls if call.request and call.request.view}
        sites = {str(call.callsite) for call in calls if call.callsite is not None}
        found.append(
            WorkloadQuery(
                fingerprint_id(fingerprint),
                first.sql,
                params,
                total,
                float(len(calls)),
                tuple((view, total / len(views)) for view in sorted(views)),
                tuple(sorted(sites)),
                "captured",
                constants,
            )
        )
    found.sort(key=lambda query: (-query.total_ms, query.key))
    return found


def combined(*sources: Sequence[WorkloadQuery]) -> list[WorkloadQuery]:
    """Several sources as one workload: the same key counted once (its costliest reading)."""
    best: dict[str, WorkloadQuery] = {}
    for source in sources:
        for query in source:
            if query.key not in best or query.total_ms > best[query.key].total_ms:
                best[query.key] = query
    return sorted(best.values(), key=lambda query: (-query.total_ms, query.key))
