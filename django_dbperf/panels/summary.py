"""One request as the panel stores it: plain JSON (the toolbar may keep it in a database).

Findings with their relation, lines and fix; the budgets; the cache events, counted per model
and tag; the slow statements by shape. Built once, after the response; nothing is queried.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from django.http import HttpRequest

from django_dbperf.analysis import DUPLICATE, N_PLUS_ONE, Finding
from django_dbperf.analysis.sql_text import fingerprint_id
from django_dbperf.cache import EVENTS
from django_dbperf.cache.observing import CacheEvent
from django_dbperf.capture import QueryRecord
from django_dbperf.capture.request import stamp_request
from django_dbperf.conf import cache_configured, get_config
from django_dbperf.inspection import capture_queries
from django_dbperf.panels.budget import budget_rows


def summarise(
    captured: capture_queries, events: Sequence[CacheEvent], request: HttpRequest
) -> dict[str, Any]:
    """The panel's stats for ``request``: what ``panel.html`` shows, JSON-serialisable."""
    match = getattr(request, "resolver_match", None)
    # As QueryCountMiddleware does (when it ran inside the toolbar it already has, with the
    # same values): the request's path and view, for DBPERF["IGNORE"] rules.
    view = stamp_request(request, captured.queries)
    findings = captured.findings
    others = [finding for finding in findings if finding.kind not in (N_PLUS_ONE, DUPLICATE)]
    return {
        "path": request.path,
        "view": view,
        "queries": len(captured),
        "total_ms": round(captured.total_ms, 3),
        "nplusone_threshold": captured.threshold,
        "n_plus_one": [finding_row(f) for f in findings if f.kind == N_PLUS_ONE],
        "duplicates": [finding_row(f) for f in findings if f.kind == DUPLICATE],
        "other_findings": [finding_row(finding) for finding in others],
        "budgets": budget_rows(captured, match.func if match is not None else None),
        "cache": cache_summary(events),
        "slow": slow_summary(captured.queries, float(get_config()["SLOW_QUERY_MS"])),
    }


def finding_row(finding: Finding) -> dict[str, Any]:
    return {**finding.as_dict(), "title": finding.title, "where": finding.where, "sql": finding.sql}


def cache_summary(events: Iterable[CacheEvent]) -> dict[str, Any]:
    """Counts per model and tag (``cache.counters()``'s shape, for this request only), and each
    reason a read was served uncached."""
    counts: dict[str, Counter[str]] = {}
    reasons: Counter[tuple[str, str | None]] = Counter()
    for event in events:
        counts.setdefault(event.subject, Counter())[event.event] += 1
        if event.event == "bypass":
            reasons[(event.subject, event.reason)] += 1
    subjects: list[dict[str, Any]] = [
        {"subject": subject, **{name: counts[subject][name] for name in EVENTS}}
        for subject in sorted(counts)
    ]
    # A tag counts the reads of its models again: the totals add up the models.
    models = [row for row in subjects if not row["subject"].startswith("tag:")]
    return {
        "configured": cache_configured(),
        "subjects": subjects,
        "totals": {name: sum(row[name] for row in models) for name in EVENTS},
        "bypasses": [
            {"subject": subject, "reason": reason, "count": count}
            for (subject, reason), count in sorted(
                reasons.items(), key=lambda item: (item[0][0], item[0][1] or "")
            )
        ],
    }


def slow_summary(queries: Sequence[QueryRecord], threshold_ms: float) -> dict[str, Any]:
    """Statements at or over ``SLOW_QUERY_MS`` (the middleware's test), one row per shape and
    database, slowest first."""
    shapes: dict[tuple[str, str], dict[str, Any]] = {}
    threshold = threshold_ms / 1000
    for query in queries:
        if query.duration < threshold:
            continue
        key = (query.alias, query.fingerprint)
        row = shapes.get(key)
        if row is None:
            site = query.site
            row = shapes[key] = {
                "alias": query.alias,
                "fingerprint_id": fingerprint_id(query.fingerprint),
                "sql": query.sql,
                "callsite": str(site) if site else None,
                "count": 0,
                "max_ms": 0.0,
                "total_ms": 0.0,
            }
        row["count"] += 1
        row["max_ms"] = round(max(row["max_ms"], query.duration_ms), 3)
        row["total_ms"] = round(row["total_ms"] + query.duration_ms, 3)
    ordered = sorted(shapes.values(), key=lambda row: (-row["max_ms"], row["fingerprint_id"]))
    return {"threshold_ms": threshold_ms, "shapes": ordered}
