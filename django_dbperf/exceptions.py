"""Exceptions and warnings django_dbperf raises for problems found in a project's queries."""

from __future__ import annotations

from collections.abc import Sequence

from django_dbperf.analysis import Finding


class NPlusOneWarning(UserWarning):
    """Issued per finding when ``DBPERF["ON_NPLUSONE"]`` is ``"warn"``."""


class NPlusOneError(Exception):
    """Raised when ``DBPERF["ON_NPLUSONE"]`` is ``"raise"`` and a request has findings."""

    def __init__(self, findings: Sequence[Finding], where: str = "") -> None:
        self.findings = list(findings)
        heading = f"{len(self.findings)} database problem(s)" + (f" in {where}" if where else "")
        lines = [f"{heading}:"]
        lines += [f"{number}. {finding}" for number, finding in enumerate(self.findings, 1)]
        super().__init__("\n".join(lines))


class QueryBudgetExceeded(Exception):
    """Raised when a query budget is exceeded and ``DBPERF["ON_NPLUSONE"]`` is ``"raise"``."""
