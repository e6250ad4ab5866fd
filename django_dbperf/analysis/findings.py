"""What the analysis reports: a problem, where it happens and the fix, in Django terms."""

from __future__ import annotations

from dataclasses import dataclass

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
    callsite: Callsite | None
    suggestion: str
    relation: str | None = None  # "app_label.Model.field" when known
    template: TemplateSite | None = None
    total_ms: float = 0.0

    @property
    def where(self) -> str:
        where = str(self.callsite) if self.callsite else "an unknown line"
        if self.template:
            where += f" (template {self.template})"
        return where

    @property
    def title(self) -> str:
        if self.kind == N_PLUS_ONE:
            subject = f"N+1 on {self.relation}" if self.relation else "N+1 query"
            return f"{subject}: {self.count} queries of the same shape from {self.where}"
        if self.kind == DUPLICATE:
            return (
                f"Duplicate query: the same SQL and parameters ran {self.count} times "
                f"at {self.where}"
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
            "template": str(self.template) if self.template else None,
            "total_ms": round(self.total_ms, 3),
            "fingerprint": self.fingerprint,
            "suggestion": self.suggestion,
        }
