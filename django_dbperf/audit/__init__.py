"""``dbperf_audit``'s public API: request pages, report their queries and findings with the
fix and what it saves, and decide the CI gate (against a baseline, or on any finding).

The flow: URLs given, or every GET route (``crawl.py``) -> each requested once (``pages.py``) ->
failures by ``--fail-on`` kinds, or only what is new or worse than a baseline
(``baseline.py``) -> text, JSON or JUnit XML (``output.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django_dbperf.audit import baseline
from django_dbperf.audit.crawl import Route, routes
from django_dbperf.audit.pages import FindingImpact, PageAudit, audit_pages

FAIL_KINDS = ("nplusone", "duplicates", "budget", "slow")
DEFAULT_FAIL_ON = ("nplusone", "budget")


@dataclass
class AuditResult:
    pages: list[PageAudit]
    skipped: list[Route] = field(default_factory=list)
    failures: dict[str, list[str]] = field(default_factory=dict)  # url -> what failed
    baseline: Path | None = None

    @property
    def failed(self) -> bool:
        return bool(self.failures)


def page_failures(page: PageAudit, kinds: set[str]) -> list[str]:
    """Why ``page`` fails the gate without a baseline (a crash always does)."""
    found = []
    if page.error:
        found.append(f"the view failed: {page.error}")
    if "nplusone" in kinds and page.of_kind("nplusone"):
        found.append(f"{len(page.of_kind('nplusone'))} N+1 finding(s)")
    if "duplicates" in kinds and page.of_kind("duplicate"):
        found.append(f"{len(page.of_kind('duplicate'))} duplicate finding(s)")
    if "budget" in kinds and page.over_budget:
        found.append(f"{page.queries} queries, over the budget of {page.budget}")
    if "slow" in kinds and page.slow:
        found.append(f"{page.slow} slow statement(s)")
    return found


def run_audit(
    urls: Sequence[str],
    *,
    crawl: bool = False,
    include_admin: bool = False,
    include_debug: bool = False,
    user: Any = None,
    max_queries: int | None = None,
    fail_on: Sequence[str] = DEFAULT_FAIL_ON,
    baseline_path: Path | None = None,
    update_baseline: bool = False,
) -> AuditResult:
    """Audit ``urls`` (and every reachable GET route with ``crawl``). Raises
    ``baseline.BaselineError`` for a missing or malformed baseline, before any request."""
    known = None
    if baseline_path is not None and not update_baseline:
        known = baseline.read(baseline_path)
    targets = list(urls)
    skipped: list[Route] = []
    if crawl:
        for route in routes(include_admin=include_admin, include_debug=include_debug):
            if route.url is None:
                skipped.append(route)
            elif route.url not in targets:
                targets.append(route.url)
    result = AuditResult(audit_pages(targets, user=user, max_queries=max_queries), skipped)
    kinds = set(fail_on)
    if update_baseline and baseline_path is not None:
        baseline.write(baseline_path, result.pages)
        result.baseline = baseline_path
    elif known is not None:
        result.baseline = baseline_path
        for regression in baseline.regressions(known, result.pages, kinds | {"error"}):
            result.failures.setdefault(regression.url, []).append(regression.what)
    else:
        for page in result.pages:
            failures = page_failures(page, kinds)
            if failures:
                result.failures[page.url] = failures
    return result


__all__ = [
    "DEFAULT_FAIL_ON",
    "FAIL_KINDS",
    "AuditResult",
    "FindingImpact",
    "PageAudit",
    "Route",
    "run_audit",
]
