"""What the analysis reports: a problem, where it happens and the fix, in Django terms."""

from __future__ import annotations

from dataclasses import dataclass

from django_dbperf.analysis.sql_text import fingerprint_id, shorten_sql
from django_dbperf.capture import Callsite, TemplateSite

N_PLUS_ONE = "n_plus_one"
DUPLICATE = "duplicate"
UNUSED_EAGER_LOAD = "unused_eager_load"


@dataclass(frozen=True)
class Finding:
    kind: str  # N_PLUS_ONE, DUPLICATE or UNUSED_EAGER_LOAD
    count: int  # how many times the statement ran
    fingerprint: str
    sql: str  # one example of the statement as sent
    callsite: Callsite | None  # the first line of the project's code that ran it
    suggestion: str
    relation: str | None = None  # "app_label.Model.field", only when it can be eager-loaded
    template: TemplateSite | None = None
    total_ms: float = 0.0
    model: str | None = None  # "app_label.Model" whose rows were loaded one by one, when known
    framework: Callsite | None = None  # the framework line (Wagtail, admin, DRF) that ran it
    callsites: tuple[Callsite, ...] = ()  # every line that ran it (duplicates run from several)

    @property
    def fingerprint_id(self) -> str:
        """A short, stable name for the statement shape (for ignore rules and reports)."""
        return fingerprint_id(self.fingerprint)

    @property
    def where(self) -> str:
        primary = self.callsite or self.framework
        where = str(primary) if primary else "an unknown line"
        if self.callsite and self.framework:
            where += f" (through {self.framework})"
        others = [site for site in self.callsites if site not in (self.callsite, self.framework)]
        if others:
            where += " and " + ", ".join(str(site) for site in others)
        if self.callsite is None and self.framework:
            where += " in the framework (no project line ran it)"
        if self.template:
            where += f" (template {self.template})"
        return where

    @property
    def title(self) -> str:
        if self.kind == N_PLUS_ONE:
            subject = (
                f"N+1 on {self.relation}"
                if self.relation
                else f"N+1 query on {self.model}"
                if self.model
                else "N+1 query"
            )
            return f"{subject}: {self.count} queries of the same shape from {self.where}"
        if self.kind == DUPLICATE:
            return (
                f"Duplicate query: the same SQL and parameters ran {self.count} times "
                f"at {self.where}: {shorten_sql(self.sql)} [{self.fingerprint_id}]"
            )
        return f"Unused eager load of {self.relation} at {self.where}"

    def __str__(self) -> str:
        return f"{self.title}\n  fix: {self.suggestion}"

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form, for logs and reports."""
        return {
            "kind": self.kind,
            "relation": self.relation,
            "count": self.count,
            "callsite": str(self.callsite) if self.callsite else None,
            "framework": str(self.framework) if self.framework else None,
            "callsites": [str(site) for site in self.callsites],
            "model": self.model,
            "template": str(self.template) if self.template else None,
            "total_ms": round(self.total_ms, 3),
            "fingerprint": self.fingerprint,
            "fingerprint_id": self.fingerprint_id,
            "suggestion": self.suggestion,
        }
