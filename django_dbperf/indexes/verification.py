"""After the build: every index the models declare exists and is valid, and each index the
advisor suggested is used by the statements it was suggested for (their plans name it).

Only a plan that does not name the index fails it: a statement the database refuses to plan,
or whose text was shortened in ``dbperf_indexes.py``, is reported as not checked.

A deploy gate: ``dbperf_indexes verify`` exits non-zero when any check fails.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from django.db import DatabaseError, connections

from django_dbperf.explain import ExplainRefused, explain
from django_dbperf.indexes.catalog import models_by_table, table_facts
from django_dbperf.indexes.declarations import declared

OK = "ok"
MISSING = "missing"
INVALID = "invalid"
NOT_USED = "not used"


@dataclass(frozen=True)
class ShapeCheck:
    fingerprint: str
    used: bool | None  # None: not checked (the statement could not be planned)
    detail: str  # the plan's first line, or why it could not be planned

    @property
    def verdict(self) -> str:
        if self.used is None:
            return "not checked"
        return "uses it" if self.used else "does not use it"


@dataclass(frozen=True)
class IndexCheck:
    model: str
    name: str
    state: str  # OK, MISSING, INVALID or NOT_USED
    from_advisor: bool
    shapes: tuple[ShapeCheck, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return self.state == OK

    def describe(self) -> str:
        if self.state == MISSING:
            return "does not exist: run migrate (or makemigrations, if no migration adds it)"
        if self.state == INVALID:
            return (
                "is INVALID (an interrupted concurrent build): run migrate again, which drops "
                "and rebuilds it, or REINDEX INDEX CONCURRENTLY"
            )
        if self.state == NOT_USED:
            unused = [check.fingerprint for check in self.shapes if check.used is False]
            return f"exists, but the plans of {', '.join(unused)} do not use it"
        if not self.shapes:
            return "exists, valid"
        if all(check.used is None for check in self.shapes):
            return "exists, valid; none of its statements could be planned to check its use"
        return "exists, valid, used by its statements"


def verify(using: str = "default", app_labels: Collection[str] | None = None) -> list[IndexCheck]:
    """One check per named index the models declare on ``using`` (Meta.indexes)."""
    by_table = models_by_table(using)
    wanted = {
        table: model
        for table, model in by_table.items()
        if app_labels is None or model._meta.app_label in app_labels
    }
    facts = table_facts(sorted(wanted), using)
    advisor = declared()
    checks: list[IndexCheck] = []
    for table, model in sorted(wanted.items()):
        existing = {index.name: index for index in (facts[table].indexes if table in facts else ())}
        for index in model._meta.indexes:
            name = index.name
            found = existing.get(name)
            from_advisor = name in advisor
            if found is None:
                state = MISSING
            elif not found.valid:
                state = INVALID
            else:
                state = OK
            shapes: tuple[ShapeCheck, ...] = ()
            if state == OK and from_advisor:
                shapes = tuple(_check_shape(name, record, using) for record in advisor[name].shapes)
                if any(check.used is False for check in shapes):
                    state = NOT_USED
            checks.append(IndexCheck(model._meta.label, name, state, from_advisor, shapes))
    return checks


def _check_shape(name: str, record: dict[str, object], using: str) -> ShapeCheck:
    fingerprint = str(record.get("fingerprint", "?"))
    sql = str(record.get("sql", ""))
    if record.get("shortened"):
        return ShapeCheck(fingerprint, None, "its SQL was shortened in dbperf_indexes.py")
    try:
        plan = explain(sql, None, using=using)
    except (ExplainRefused, DatabaseError) as error:
        return ShapeCheck(fingerprint, None, f"could not be planned: {error}")
    first = plan.text.splitlines()[0] if plan.text else ""
    quoted = connections[using].ops.quote_name(name)
    used = any(word in (name, quoted) for line in plan.text.splitlines() for word in line.split())
    return ShapeCheck(fingerprint, used, first)
