"""What happens to findings and blown budgets: a log record, a warning, or an exception.

``DBPERF["ON_NPLUSONE"]`` chooses; the middleware and ``query_budget`` both report through here.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Sequence

from django_dbperf.analysis import Finding
from django_dbperf.capture import QueryRecord
from django_dbperf.conf import get_config
from django_dbperf.exceptions import NPlusOneError, NPlusOneWarning, QueryBudgetExceeded

logger = logging.getLogger("django_dbperf")

TOP_OFFENDERS = 5


def report_findings(findings: Sequence[Finding], where: str) -> None:
    """Log, warn or raise for ``findings`` (of one request or block), as configured."""
    if not findings:
        return
    mode = get_config()["ON_NPLUSONE"]
    if mode == "raise":
        raise NPlusOneError(findings, where)
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
