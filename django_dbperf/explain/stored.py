"""EXPLAIN of a statement shape from the statistics store, under the rules the admin and
``dbperf_explain`` share: stored SELECTs only, stored values only when none was masked,
ANALYZE only when ``STATS["EXPLAIN_ANALYZE"]`` allows it, ``STATS["EXPLAIN_TIMEOUT_MS"]``.

Who may ask is the caller's decision (the admin: superusers; the command: whoever can run it).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from django.db import connections

from django_dbperf.conf import get_config
from django_dbperf.explain import ExplainRefused, Plan, explain

if TYPE_CHECKING:
    from django_dbperf.stats.models import QueryShape


def stored_values(shape: QueryShape) -> list[Any] | None:
    """The stored parameter values when every one of them is real (none masked)."""
    from django_dbperf.stats.redact import REDACTED

    params = shape.params
    if not isinstance(params, list) or any(value == REDACTED for value in params):
        return None
    return params


def analyze_refusal(shape: QueryShape) -> str | None:
    """Why EXPLAIN ANALYZE (which runs the statement) may not run for ``shape``, or None."""
    from django_dbperf.stats.redact import REDACTED

    if not get_config()["STATS"]["EXPLAIN_ANALYZE"]:
        return (
            'EXPLAIN ANALYZE runs the statement, so it is off until DBPERF["STATS"]'
            '["EXPLAIN_ANALYZE"] = True; the plan alone (without ANALYZE) needs no setting.'
        )
    if not shape.is_select:
        return "EXPLAIN runs only for SELECT statements."
    params = shape.params
    if not isinstance(params, list):
        return (
            "EXPLAIN ANALYZE needs the statement's parameter values, and none were stored: set "
            'DBPERF["STATS"]["STORE_PARAMS"] = True and let the statement be recorded again.'
        )
    masked = sum(value == REDACTED for value in params)
    if masked:
        return (
            f"EXPLAIN ANALYZE needs every parameter value, and {masked} of {len(params)} were "
            'stored masked (personal data, see DBPERF["STATS"]["REDACT_COLUMNS"]): only the '
            "plan without ANALYZE can be shown."
        )
    return None


def explain_shape(shape: QueryShape, *, analyze: bool = False) -> Plan:
    """The plan of a stored statement shape, run on the database it was recorded on.

    Raises ExplainRefused, saying why, for a statement that is not a stored SELECT, a database
    not configured here, ANALYZE that ``analyze_refusal()`` forbids, or a database error.
    """
    if not shape.is_select:
        raise ExplainRefused(
            f"Statement {shape.fingerprint_id} is not a SELECT: EXPLAIN runs only for SELECT "
            "statements."
        )
    if shape.alias not in connections:
        raise ExplainRefused(f"The database {shape.alias!r} is not configured here.")
    if analyze and (refusal := analyze_refusal(shape)):
        raise ExplainRefused(refusal)
    return explain(
        shape.sql,
        stored_values(shape),
        using=shape.alias,
        analyze=analyze,
        timeout_ms=get_config()["STATS"]["EXPLAIN_TIMEOUT_MS"],
    )


def plan_data(plan: Plan) -> dict[str, Any]:
    """A plan as JSON-ready data: its text, and its tree as nested dicts."""
    return {
        "method": plan.method,
        "generic": plan.generic,
        "analyzed": plan.analyzed,
        "vendor": plan.vendor,
        "note": plan.note,
        "plan": plan.text,
        "tree": None if plan.tree is None else dataclasses.asdict(plan.tree),
    }
