"""What ``dbperf_indexes`` prints: each action's result as text for people and as JSON.

Kept apart from the command so that the admin page and tests read the same data. The advisor
(and with it pglast, the ``advisor`` extra) is imported by ``suggest()`` only: ``verify`` and
``unused`` run without it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.management.base import CommandError
from django.db import connections

from django_dbperf.explain import ExplainRefused
from django_dbperf.indexes import modules
from django_dbperf.indexes.catalog import table_facts
from django_dbperf.indexes.verification import verify as verify_indexes

if TYPE_CHECKING:
    from django_dbperf.indexes.advisor import Advice, Suggestion

SQL_SHOWN = 160


@dataclass(frozen=True)
class Result:
    text: str
    data: Any
    failed: str | None = None  # set: the command exits non-zero with this message


def _short(sql: str) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= SQL_SHOWN else flat[: SQL_SHOWN - 1] + "…"


def _ms(value: float | None) -> str:
    return "unknown" if value is None else f"{value:,.1f} ms"


def suggestion_data(suggestion: Suggestion) -> dict[str, Any]:
    _, _, options = suggestion.index.deconstruct()
    return {
        "app": suggestion.app_label,
        "model": suggestion.model_name,
        "table": suggestion.table,
        "name": suggestion.index.name,
        "fields": list(options["fields"]),
        "condition": str(options["condition"]) if "condition" in options else None,
        "include": list(options.get("include", ())),
        "definition": suggestion.candidate.describe(),
        "method": suggestion.method,
        "verified": suggestion.verified,
        "saved_ms": suggestion.saved_ms,
        "write_cost_ms": suggestion.write_cost_ms,
        "reason": suggestion.reason,
        "views": [{"view": view, "saved_ms": ms} for view, ms in suggestion.views()],
        "shapes": [
            {
                "fingerprint": shape.key,
                "sql": shape.sql,
                "total_ms": shape.total_ms,
                "saving_pct": shape.saving_pct,
                "saved_ms": shape.saved_ms,
                "cost_before": shape.cost_before,
                "cost_after": shape.cost_after,
                "callsites": list(shape.callsites),
            }
            for shape in suggestion.shapes
        ],
    }


def advice_text(advice: Advice) -> list[str]:
    lines = [f"Index advice ({advice.method}): {advice.statements} statements read, "
             f"{advice.plans} plans costed."]  # fmt: skip
    lines += [f"Note: {note}" for note in advice.notes]
    if not advice.suggestions:
        lines.append("No index to suggest.")
    for number, suggestion in enumerate(advice.suggestions, 1):
        _, _, options = suggestion.index.deconstruct()
        lines.append("")
        lines.append(
            f"{number}. {suggestion.app_label}.{suggestion.model_name}: {suggestion.index.name}"
        )
        lines.append(f"   {suggestion.candidate.describe()}")
        declared = f"   fields={options['fields']}"
        if "condition" in options:
            declared += f" condition={options['condition']}"
        if "include" in options:
            declared += f" include={options['include']}"
        lines.append(declared)
        if suggestion.verified:
            lines.append(
                f"   saves about {_ms(suggestion.saved_ms)} of query time; its writes cost "
                f"about {_ms(suggestion.write_cost_ms)}"
            )
        else:
            lines.append(f"   {suggestion.evidence}: {suggestion.reason}")
        for shape in suggestion.shapes:
            saving = "" if shape.saving_pct is None else f", plan cost -{shape.saving_pct:.0f}%"
            lines.append(
                f"   - {shape.key} ({_ms(shape.total_ms)} total{saving}): {_short(shape.sql)}"
            )
            lines += [f"       at {site}" for site in shape.callsites[:3]]
        views = suggestion.views()
        if views:
            lines.append("   views: " + ", ".join(
                view if ms is None else f"{view} (-{ms:,.1f} ms)" for view, ms in views[:5]
            ))  # fmt: skip
    if advice.skipped:
        lines.append("")
        lines.append(f"Not suggested for ({len(advice.skipped)}):")
        lines += [f"  - {item.key}: {item.reason}" for item in advice.skipped[:20]]
        if len(advice.skipped) > 20:
            lines.append(f"  ... and {len(advice.skipped) - 20} more (--format json lists all)")
    return lines


def suggest(using: str, labels: list[str] | None, write: bool, min_saving: float | None) -> Result:
    if min_saving is not None and not 0 < min_saving < 100:
        raise CommandError(f"--min-saving is a percent between 0 and 100, not {min_saving}.")
    from django_dbperf.indexes.advisor import advise

    try:
        advice = advise(using, app_labels=labels, min_saving_pct=min_saving)
    except ExplainRefused as error:
        raise CommandError(str(error)) from None
    lines = advice_text(advice)
    data: dict[str, Any] = {
        "method": advice.method,
        "statements": advice.statements,
        "plans": advice.plans,
        "notes": advice.notes,
        "suggestions": [suggestion_data(item) for item in advice.suggestions],
        "skipped": [{"key": i.key, "sql": i.sql, "reason": i.reason} for i in advice.skipped],
    }
    if write:
        written = _write(advice.suggestions)
        data["written"] = written
        lines.append("")
        if not written:
            lines.append("Nothing written: no suggestion.")
        for item in written:
            lines.append(
                f"Wrote {item['path']}: {len(item['added'])} added, {len(item['kept'])} kept. "
                f"Review it, then run: python manage.py makemigrations {item['app']}"
            )
    return Result("\n".join(lines), data)


def _write(suggestions: list[Suggestion]) -> list[dict[str, Any]]:
    by_app: dict[str, list[Suggestion]] = defaultdict(list)
    for suggestion in suggestions:
        by_app[suggestion.app_label].append(suggestion)
    written = []
    for label in sorted(by_app):
        result = modules.write(apps.get_app_config(label), by_app[label])
        written.append(
            {"app": label, "path": str(result.path), "added": result.added, "kept": result.kept}
        )
    return written


def verify(using: str, labels: list[str] | None) -> Result:
    checks = verify_indexes(using, labels)
    failed = [check for check in checks if not check.passed]
    lines = [f"{len(checks)} declared indexes checked on {using!r}: {len(failed)} failed."]
    for check in checks:
        mark = "ok  " if check.passed else "FAIL"
        origin = " (dbperf)" if check.from_advisor else ""
        lines.append(f"{mark} {check.model} {check.name}{origin}: {check.describe()}")
        for shape in check.shapes:
            lines.append(f"       {shape.fingerprint}: {shape.verdict} ({shape.detail})")
    data = [
        {
            "model": check.model,
            "name": check.name,
            "state": check.state,
            "from_advisor": check.from_advisor,
            "shapes": [vars(shape) for shape in check.shapes],
        }
        for check in checks
    ]
    message = f"{len(failed)} index check(s) failed." if failed else None
    return Result("\n".join(lines), data, message)


def unused(using: str, labels: list[str] | None, min_scans: int, min_rows: int) -> Result:
    from django_dbperf.indexes.inventory import InventoryUnavailable, index_problems

    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_is_in_recovery()")
            (replica,) = cursor.fetchone()
        if replica:
            raise CommandError(
                f"The database {using!r} is a read-only replica: its scan counts only cover "
                f"queries run on it. Run 'unused' against the primary (--database)."
            )
    try:
        problems = index_problems(using, min_scans=min_scans, min_rows=min_rows)
    except InventoryUnavailable as error:
        raise CommandError(str(error)) from None
    # An unused index on a small table costs next to nothing: not worth a person's time.
    sizes = table_facts(sorted({problem.table for problem in problems}), using)
    problems = [
        problem
        for problem in problems
        if problem.kind not in ("unused", "redundant")
        or problem.table not in sizes
        or sizes[problem.table].rows >= min_rows
    ]
    if labels is not None:
        problems = [
            problem
            for problem in problems
            if problem.declaration.model and problem.declaration.model.split(".")[0] in labels
        ]
    lines = [f"{len(problems)} index problem(s) on {using!r}."]
    for problem in problems:
        lines.append("")
        lines.append(f"{problem.kind}: {problem.index or problem.table} ({problem.table})")
        lines.append(f"   {problem.reason}")
        where = problem.declaration
        lines.append(
            f"   declared by: {where.source}" + (f" at {where.location}" if where.location else "")
        )
        lines.append(f"   fix: {problem.advice}")
    data = [{**vars(problem), "declaration": vars(problem.declaration)} for problem in problems]
    return Result("\n".join(lines), data)
