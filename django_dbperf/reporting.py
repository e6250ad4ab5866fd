"""What happens to findings and blown budgets: a log record, a warning, or an exception.

``DBPERF["ON_NPLUSONE"]`` chooses; the middleware and ``query_budget`` both report through here.
Inside a test assertion that prints findings itself (``reported_by_assertion()``), they are not
logged or warned about a second time.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from django_dbperf.analysis import Finding
from django_dbperf.analysis.sql_text import fingerprint_id, shorten_sql
from django_dbperf.capture import QueryRecord
from django_dbperf.conf import get_config
from django_dbperf.exceptions import NPlusOneError, NPlusOneWarning, QueryBudgetExceeded

logger = logging.getLogger("django_dbperf")

TOP_OFFENDERS = 5

# The kinds of finding an enclosing test assertion prints in its failure message; EVERY_KIND
# stands for all of them (assertMaxQueries, assertQueriesConstant).
_assertion_reports: ContextVar[frozenset[str]] = ContextVar(
    "dbperf_assertion_reports", default=frozenset()
)
EVERY_KIND = "*"


@contextmanager
def reported_by_assertion(kinds: Iterable[str] | None = None) -> Iterator[None]:
    """Inside the block, a test assertion reports findings of ``kinds`` (``None``: every kind).

    Set by ``DbPerfTestMixin``, the pytest fixture and the pytest marker around their capture,
    so that ``report_findings`` (the middleware) leaves those findings to the failure message.
    """
    added = frozenset([EVERY_KIND] if kinds is None else kinds)
    token = _assertion_reports.set(_assertion_reports.get() | added)
    try:
        yield
    finally:
        _assertion_reports.reset(token)


def _left_to_assertion(finding: Finding, kinds: frozenset[str]) -> bool:
    return EVERY_KIND in kinds or finding.kind in kinds


def report_findings(findings: Sequence[Finding], where: str) -> None:
    """Log, warn or raise for ``findings`` (of one request or block), as configured."""
    if not findings:
        return
    mode = get_config()["ON_NPLUSONE"]
    if mode == "raise":
        # Raise mode fails the request even inside an assertion: that is what it was set for.
        raise NPlusOneError(findings, where)
    # Only the kinds the enclosing assertion prints are left to it. Inside assertNoNPlusOne a
    # request's N+1 is also an N+1 of the asserted block, so the assertion fails and prints it;
    # the duplicates it would not print are still logged. assertMaxQueries prints every finding,
    # but only when it fails: when it passes, its block's findings go unlogged. The test made
    # the assertion the judge of that block, and a second copy of every finding in the test
    # report is the noise this removes.
    kinds = _assertion_reports.get()
    if kinds:
        findings = [finding for finding in findings if not _left_to_assertion(finding, kinds)]
    for finding in findings:
        if mode == "warn":
            warnings.warn(f"{finding} [{where}]", NPlusOneWarning, stacklevel=2)
        else:
            logger.warning(
                "%s [%s]", finding, where, extra={"dbperf": {**finding.as_dict(), "where": where}}
            )


def top_statements(records: Sequence[QueryRecord], limit: int = TOP_OFFENDERS) -> list[str]:
    """The most repeated statement shapes, as ``"12x SELECT ... (views.py:40)"`` lines."""
    counts = Counter(record.fingerprint for record in records)
    first_seen: dict[str, QueryRecord] = {}
    for record in records:
        first_seen.setdefault(record.fingerprint, record)
    lines = []
    for shape, count in counts.most_common(limit):
        callsite = first_seen[shape].callsite
        lines.append(f"{count}x {shape[:200]}" + (f" ({callsite})" if callsite else ""))
    return lines


def report_over_budget(problems: Sequence[str], records: Sequence[QueryRecord], where: str) -> None:
    """Log (or raise, in raise mode) a budget that ``problems`` say was exceeded."""
    if not problems:
        return
    offenders = "\n".join(f"  {line}" for line in top_statements(records))
    message = f"Over query budget in {where}: {'; '.join(problems)}.\nTop statements:\n{offenders}"
    if get_config()["ON_NPLUSONE"] == "raise":
        raise QueryBudgetExceeded(message)
    logger.warning(message, extra={"dbperf": {"where": where, "problems": list(problems)}})


def report_slow(query: QueryRecord, view: str | None, where: str) -> None:
    """One log line per slow query: how long, which shape, which view and line."""
    site = query.site
    details = {
        "duration_ms": round(query.duration_ms, 3),
        "fingerprint_id": fingerprint_id(query.fingerprint),
        "alias": query.alias,
        "view": view,
        "callsite": str(site) if site else None,
        "where": where,
    }
    logger.warning(
        "Slow query: %.1f ms, shape %s on %r, view %s, at %s: %s",
        query.duration_ms,
        details["fingerprint_id"],
        query.alias,
        view or "-",
        details["callsite"] or "an unknown line",
        shorten_sql(query.sql),
        extra={"dbperf": details},
    )
