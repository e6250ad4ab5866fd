"""The advisor: a workload in, suggestions (named ``models.Index`` declarations with the shapes
and views they serve) out. ``advise()`` is the public function; the command and the admin
page only present what it returns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, models

from django_dbperf.conf import get_config
from django_dbperf.explain import ExplainRefused
from django_dbperf.indexes import costing, heuristic, selection
from django_dbperf.indexes.candidates import Candidate, candidates_for, condition_q
from django_dbperf.indexes.catalog import TableFacts, table_facts
from django_dbperf.indexes.declarations import read_module, same_index
from django_dbperf.indexes.parsing import ParsedQuery, UnparsableQuery, parse_query
from django_dbperf.indexes.workload import WorkloadQuery, from_store

HYPOPG = "hypopg"
PG_STATS = "pg_stats heuristic (unverified)"
SQLITE = "SQLite query plan with a trial index (not costed)"


@dataclass(frozen=True)
class ShapeSaving:
    key: str
    sql: str
    total_ms: float
    saving_pct: float | None  # None: unverified
    saved_ms: float | None
    cost_before: float | None = None
    cost_after: float | None = None
    views: tuple[tuple[str, float], ...] = ()
    callsites: tuple[str, ...] = ()


@dataclass(frozen=True)
class Suggestion:
    app_label: str
    model_name: str
    table: str
    index: models.Index
    candidate: Candidate
    method: str
    shapes: tuple[ShapeSaving, ...]
    saved_ms: float | None
    write_cost_ms: float
    reason: str = ""

    @property
    def verified(self) -> bool:
        return self.method == HYPOPG

    @property
    def evidence(self) -> str:
        """What backs a suggestion without hypopg's costs: an estimate, or a trial build."""
        return "unverified" if self.method == PG_STATS else "not costed"

    def views(self) -> list[tuple[str, float | None]]:
        """Views it speeds up, with the estimated ms saved (None when unverified)."""
        saved: dict[str, float] = defaultdict(float)
        for shape in self.shapes:
            for view, ms in shape.views:
                share = ms / shape.total_ms if shape.total_ms else 0.0
                saved[view] += (shape.saved_ms or 0.0) * share
        ordered = sorted(saved.items(), key=lambda item: (-item[1], item[0]))
        return [(view, ms if self.verified else None) for view, ms in ordered]


@dataclass(frozen=True)
class Skipped:
    key: str
    sql: str
    reason: str


@dataclass
class Advice:
    method: str
    suggestions: list[Suggestion] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    statements: int = 0
    plans: int = 0


def _setting(name: str) -> Any:
    return get_config()["INDEXES"][name]


def _method(using: str) -> tuple[str, str | None]:
    vendor = connections[using].vendor
    if vendor == "sqlite":
        return SQLITE, None
    if vendor != "postgresql":
        raise ExplainRefused(f"The index advisor reads PostgreSQL and SQLite, not {vendor}.")
    missing = costing.hypopg_missing_reason(using)
    return (HYPOPG, None) if missing is None else (PG_STATS, missing)


@dataclass
class _Plan:
    query: WorkloadQuery
    parsed: ParsedQuery
    accesses: list[tuple[Any, TableFacts, list[Candidate]]]


def advise(
    using: str = "default",
    *,
    queries: Sequence[WorkloadQuery] | None = None,
    app_labels: Collection[str] | None = None,
    min_saving_pct: float | None = None,
    min_rows: int | None = None,
) -> Advice:
    """Suggestions for database ``using`` from ``queries`` (default: the statistics store)."""
    method, missing = _method(using)
    advice = Advice(method)
    if missing:
        advice.notes.append(f"Suggestions are unverified: {missing}.")
    workload = (
        list(queries) if queries is not None else from_store(using, size=_setting("WORKLOAD_SIZE"))
    )
    advice.statements = len(workload)
    if not workload:
        advice.notes.append(
            "No statements to read: the statistics store is empty for this database (enable "
            "DBPERF['STATS'] and let requests run, or run dbperf_flush)."
        )
        return advice
    min_saving = min_saving_pct if min_saving_pct is not None else _setting("MIN_COST_SAVING_PCT")
    floor = min_rows if min_rows is not None else _setting("MIN_TABLE_ROWS")
    parsed, write_ms = _parse(workload, advice)
    facts = table_facts(sorted({a.table for p in parsed for a in p[1].tables}), using)
    plans = _plans(parsed, facts, app_labels, floor, advice)
    if method == HYPOPG:
        _costed(plans, facts, write_ms, float(min_saving) / 100, using, advice)
    else:
        _guessed(plans, method, using, advice)
    _drop_declared(advice)
    return advice


def _parse(
    workload: Sequence[WorkloadQuery], advice: Advice
) -> tuple[list[tuple[WorkloadQuery, ParsedQuery]], dict[str, float]]:
    parsed: list[tuple[WorkloadQuery, ParsedQuery]] = []
    write_ms: dict[str, float] = defaultdict(float)
    for query in workload:
        try:
            result = parse_query(query.sql)
        except UnparsableQuery as error:
            advice.skipped.append(Skipped(query.key, query.sql, f"cannot be parsed: {error}"))
            continue
        if result.written:
            write_ms[result.written] += query.total_ms
        if result.kind == "select":
            parsed.append((query, result))
    return parsed, write_ms


def _plans(
    parsed: list[tuple[WorkloadQuery, ParsedQuery]],
    facts: dict[str, TableFacts],
    app_labels: Collection[str] | None,
    floor: int,
    advice: Advice,
) -> list[_Plan]:
    plans: list[_Plan] = []
    for query, result in parsed:
        accesses = []
        for access in result.tables:
            if _internal(access, facts.get(access.table)):
                continue
            table = facts.get(access.table)
            why = _why_not(access.table, table, floor)
            if why:
                advice.skipped.append(Skipped(query.key, query.sql, why))
                continue
            assert table is not None and table.model is not None
            if app_labels is not None and table.model._meta.app_label not in app_labels:
                continue
            found = candidates_for(access, table, dict(query.constants))
            if found:
                accesses.append((access, table, found))
        if accesses:
            plans.append(_Plan(query, result, accesses))
    return plans


def _internal(access: Any, table: TableFacts | None) -> bool:
    """The catalogue, Django's migration log and this app's own tables: never advised on."""
    if access.schema in ("pg_catalog", "information_schema") or access.table.startswith("pg_"):
        return True
    if access.table == "django_migrations":
        return True
    return (
        table is not None
        and table.model is not None
        and (table.model._meta.app_label == "django_dbperf")
    )


def _why_not(name: str, table: TableFacts | None, floor: int) -> str | None:
    if table is None:
        return f"the table {name!r} does not exist in this database"
    if table.model is None:
        return (
            f"the table {name!r} maps to no installed model (only tables a model declares can "
            f"get an index through migrations)"
        )
    if 0 <= table.rows < floor:
        return f"the table {name!r} is small ({table.rows:,.0f} rows < MIN_TABLE_ROWS {floor:,})"
    return None


def _costed(
    plans: list[_Plan],
    facts: dict[str, TableFacts],
    write_ms: dict[str, float],
    min_saving: float,
    using: str,
    advice: Advice,
) -> None:
    prepared: list[costing.CostedQuery] = []
    by_key: dict[str, _Plan] = {}
    for plan in plans:
        candidates = [candidate for _, _, found in plan.accesses for candidate in found]
        try:
            prepared.append(
                costing.prepare(
                    plan.query.key,
                    plan.query.sql,
                    plan.query.params,
                    candidates,
                    numbered_form=plan.query.source == "pg",
                )
            )
        except ExplainRefused as error:
            advice.skipped.append(Skipped(plan.query.key, plan.query.sql, str(error)))
            continue
        by_key[plan.query.key] = plan
    result = costing.cost_workload(prepared, using)
    advice.plans = result.plans
    for key, why in result.errors.items():
        advice.skipped.append(Skipped(key, by_key[key].query.sql, why))
    totals = {key: plan.query.total_ms for key, plan in by_key.items()}
    counts = {name: len(table.indexes) for name, table in facts.items()}
    costs = selection.write_costs(write_ms, counts, list(facts))
    for choice in selection.choose(result, totals, costs, min_saving=min_saving):
        shapes = tuple(
            _shape(
                by_key[key].query, share, result.before[key], result.alone[(choice.candidate, key)]
            )
            for key, share in sorted(
                choice.savings.items(), key=lambda item: (-totals[item[0]], item[0])
            )
        )
        saved = sum(shape.saved_ms or 0.0 for shape in shapes)
        table = facts[choice.candidate.table]
        advice.suggestions.append(
            _suggestion(choice.candidate, table, HYPOPG, shapes, saved, choice.write_cost_ms, "")
        )
    for key, plan in by_key.items():
        if key in result.before and not any(
            key in {shape.key for shape in suggestion.shapes} for suggestion in advice.suggestions
        ):
            advice.skipped.append(
                Skipped(key, plan.query.sql, _no_saving_reason(result, key, min_saving))
            )


def _no_saving_reason(result: costing.Costing, key: str, min_saving: float) -> str:
    best = max(
        (result.saving(candidate, other) for candidate, other in result.alone if other == key),
        default=0.0,
    )
    return (
        f"no index saves {min_saving:.0%} of its plan cost (best: {best:.0%}), or what one "
        f"saves costs more in writes"
    )


def _shape(query: WorkloadQuery, share: float, before: float, after: float) -> ShapeSaving:
    return ShapeSaving(
        query.key,
        query.sql,
        query.total_ms,
        share * 100,
        query.total_ms * share,
        before,
        after,
        query.views,
        query.callsites,
    )


def _guessed(plans: list[_Plan], method: str, using: str, advice: Advice) -> None:
    grouped: dict[Candidate, list[tuple[WorkloadQuery, str, TableFacts]]] = {}
    for plan in plans:
        for access, table, found in plan.accesses:
            if method == SQLITE:
                guess = heuristic.sqlite_guess(plan.query, access, found, using)
            else:
                guess = heuristic.postgres_guess(access, table, found, using)
            if guess is None:
                continue
            grouped.setdefault(guess.candidate, []).append((plan.query, guess.reason, table))
    if method == SQLITE:
        grouped = heuristic.sqlite_together(grouped, using)
    for candidate, uses in sorted(grouped.items(), key=lambda item: item[0].describe()):
        shapes = tuple(
            ShapeSaving(query.key, query.sql, query.total_ms, None, None, None, None, query.views,
                        query.callsites)
            for query, _, _ in uses
        )  # fmt: skip
        advice.suggestions.append(
            _suggestion(candidate, uses[0][2], method, shapes, None, 0.0, uses[0][1])
        )
    advice.suggestions.sort(key=lambda item: -sum(shape.total_ms for shape in item.shapes))


def _suggestion(
    candidate: Candidate,
    table: TableFacts,
    method: str,
    shapes: tuple[ShapeSaving, ...],
    saved: float | None,
    write_cost: float,
    reason: str,
) -> Suggestion:
    assert table.model is not None
    fields = [
        f"{'-' if desc else ''}{table.field_name(column)}" for column, desc in candidate.columns
    ]
    first = str(table.field_name(candidate.columns[0][0]))
    options: dict[str, Any] = {"fields": fields}
    condition = condition_q(candidate, table)
    if condition is not None:
        options["condition"] = condition
    if candidate.include:
        options["include"] = [table.field_name(column) for column in candidate.include]
    meta = table.model._meta
    index = models.Index(**options, name=candidate.name(str(meta.model_name), first))
    return Suggestion(
        meta.app_label, meta.object_name or "", table.table, index, candidate, method, shapes,
        saved, write_cost, reason,
    )  # fmt: skip


def _drop_declared(advice: Advice) -> None:
    """Leave out what a model already declares and what a person rejected."""
    from django.apps import apps

    kept = []
    rejected: dict[str, tuple[str, ...]] = {}  # app label -> its module's REJECTED, read once
    for suggestion in advice.suggestions:
        app_config = apps.get_app_config(suggestion.app_label)
        model = app_config.get_model(suggestion.model_name)
        if app_config.label not in rejected:
            contents = read_module(app_config)
            rejected[app_config.label] = contents.rejected if contents is not None else ()
        if suggestion.index.name in rejected[app_config.label]:
            advice.notes.append(f"{suggestion.index.name} is in REJECTED: not suggested.")
            continue
        if any(same_index(index, suggestion.index) for index in model._meta.indexes):
            advice.notes.append(
                f"{suggestion.model_name} already declares {suggestion.candidate.describe()}: "
                f"run makemigrations and migrate to build it."
            )
            continue
        kept.append(suggestion)
    advice.suggestions = kept
