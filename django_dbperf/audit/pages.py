"""Auditing pages: each URL requested once (GET, through Django's test client, as a user when
given), with what its queries cost and what fixing each finding would save.

Impact is estimated from the page's own measurements: an N+1 of N queries becomes one or two
queries once eager-loaded, so the fix saves N - 1 of them and that share of their time; a
statement run N times saves N - 1 runs. A view that raises is reported for its URL; the audit
goes on.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.test import Client, override_settings

from django_dbperf.analysis.findings import DUPLICATE, N_PLUS_ONE
from django_dbperf.conf import get_config
from django_dbperf.inspection import capture_queries


@dataclass(frozen=True)
class FindingImpact:
    kind: str  # "nplusone" or "duplicate"
    subject: str  # the relation ("app.Model.field"), else the model, else the statement id
    site: str  # "path:function": stable across edits above it (baselines compare this)
    where: str  # the lines, as findings print them
    suggestion: str
    queries: int
    ms: float
    saves_queries: int
    saves_ms: float
    fingerprint_id: str
    sql: str

    @property
    def key(self) -> str:
        return f"{self.kind} {self.subject} at {self.site}"


@dataclass
class PageAudit:
    url: str
    status: int | None = None
    queries: int = 0
    db_ms: float = 0.0
    budget: int | None = None
    slow: int = 0  # statements at or over SLOW_QUERY_MS
    findings: list[FindingImpact] = field(default_factory=list)
    error: str | None = None  # the view raised: type, message and the line

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and self.queries > self.budget

    def of_kind(self, kind: str) -> list[FindingImpact]:
        return [finding for finding in self.findings if finding.kind == kind]


def _site(finding: Any) -> str:
    site = finding.callsite or finding.framework
    if site is None:
        return "unknown"
    from django_dbperf.capture.roots import short_path

    return f"{short_path(site.path)}:{site.function}"


def _impact(finding: Any) -> FindingImpact:
    kind = "nplusone" if finding.kind == N_PLUS_ONE else "duplicate"
    saves = max(finding.count - 1, 0)
    share = saves / finding.count if finding.count else 0.0
    return FindingImpact(
        kind,
        finding.relation or finding.model or finding.fingerprint_id,
        _site(finding),
        finding.where,
        finding.suggestion,
        finding.count,
        finding.total_ms,
        saves,
        finding.total_ms * share,
        finding.fingerprint_id,
        finding.sql,
    )


def _error(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


def audit_page(client: Client, url: str, budget: int | None) -> PageAudit:
    page = PageAudit(url, budget=budget)
    slow_ms = get_config()["SLOW_QUERY_MS"]
    with capture_queries() as captured:
        try:
            response = client.get(url)
        except Exception as error:  # the view crashed: reported for this URL, the audit goes on
            page.error = _error(error)
        else:
            page.status = response.status_code
    page.queries = len(captured)
    page.db_ms = captured.total_ms
    page.slow = sum(1 for query in captured.queries if query.duration * 1000 >= slow_ms)
    page.findings = [
        _impact(finding) for finding in captured.findings if finding.kind in (N_PLUS_ONE, DUPLICATE)
    ]
    page.findings.sort(key=lambda item: (-item.saves_ms, item.key))
    return page


def audit_pages(
    urls: Iterable[str], *, user: Any = None, max_queries: int | None = None
) -> list[PageAudit]:
    """Each of ``urls``, requested once in order (as ``user`` when given)."""
    budget = max_queries if max_queries is not None else get_config()["QUERY_BUDGET"]
    client = Client()
    if user is not None:
        client.force_login(user)
    hosts = [*settings.ALLOWED_HOSTS, "testserver"]
    quiet = {**getattr(settings, "DBPERF", {}), "SAMPLE_RATE": 0.0, "ON_NPLUSONE": "log"}
    # The middleware would log every finding the audit reports anyway.
    logger = logging.getLogger("django_dbperf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with override_settings(ALLOWED_HOSTS=hosts, DBPERF=quiet):
            return [audit_page(client, url, budget) for url in urls]
    finally:
        logger.setLevel(level)
