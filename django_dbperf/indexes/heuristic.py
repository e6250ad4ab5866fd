"""Suggestions without hypopg, labelled "unverified": nothing costed them.

PostgreSQL: the planner's own column statistics (``pg_stats``: n_distinct, null_frac) estimate
what share of the table the equality predicates keep; an index is suggested when that share
is small (``MAX_SHARE``), when the statement reads the first rows of a sort (ORDER BY ...
LIMIT), or for a range on a column stored in its order (``correlation``), which an index reads
without random I/O. SQLite: ``EXPLAIN QUERY PLAN`` says when a table is scanned in full or
sorted in a temporary b-tree; each candidate that would serve the statement is then built in a
transaction that is rolled back (SQLite's DDL is transactional; the table is locked for writes
meanwhile) and suggested only if the plan made with it uses it; finally all of them are built
together, and each statement goes to the index its plan then picks (an index no plan picks is
dropped), so that ``verify`` after ``migrate`` sees the same plans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connections

from django_dbperf.explain import ExplainRefused, explain
from django_dbperf.indexes.candidates import Candidate
from django_dbperf.indexes.catalog import TableFacts
from django_dbperf.indexes.parsing import TableAccess

MAX_SHARE = 0.05  # of the table's rows: below this an index scan beats reading everything
MIN_CORRELATION = 0.9  # |pg_stats.correlation| from which a range scan reads pages in order


@dataclass(frozen=True)
class Guess:
    candidate: Candidate
    reason: str


def best_candidate(candidates: Sequence[Candidate]) -> Candidate | None:
    """The fullest plain composite (equality columns, then the sort or range)."""
    plain = [candidate for candidate in candidates if not candidate.include]
    if not plain:
        return None
    return max(plain, key=lambda candidate: (len(candidate.columns), -len(candidate.condition)))


def _distinct(n_distinct: float, rows: float) -> float:
    return n_distinct if n_distinct > 0 else -n_distinct * max(rows, 1.0)


def postgres_guess(
    access: TableAccess, facts: TableFacts, candidates: Sequence[Candidate], using: str
) -> Guess | None:
    candidate = best_candidate(candidates)
    if candidate is None:
        return None
    stats: dict[str, tuple[float, float, float]] = {}
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT attname, n_distinct, null_frac, correlation FROM pg_stats "
            "WHERE schemaname = ANY(current_schemas(false)) AND tablename = %s",
            [access.table],
        )
        for name, n_distinct, null_frac, correlation in cursor.fetchall():
            stats[name] = (float(n_distinct), float(null_frac), float(correlation or 0.0))
    share = 1.0
    for column in [*access.equality, *access.joins]:
        if column in stats:
            share /= max(_distinct(stats[column][0], facts.rows), 1.0)
    for column, is_null in access.null_tests:
        if column in stats:
            null_frac = stats[column][1]
            share *= null_frac if is_null else 1.0 - null_frac
    if share <= MAX_SHARE:
        return Guess(candidate, f"pg_stats: the predicates keep about {share:.2%} of the rows")
    if access.order_by and access.limit:
        return Guess(candidate, "reads the first rows of a sort (ORDER BY ... LIMIT)")
    for column in access.ranges:
        # Rows in the table's physical order: a range read through an index stays sequential.
        if column in stats and abs(stats[column][2]) >= MIN_CORRELATION:
            correlation = stats[column][2]
            return Guess(
                candidate,
                f"pg_stats: a range on {column}, stored in its order (correlation "
                f"{correlation:.2f})",
            )
    return None


TRIAL_INDEX = "dbperf_trial_index"  # exists only inside a rolled-back transaction
MAX_TRIALS = 3  # candidates built per statement, fullest first


def sqlite_guess(
    query: Any, access: TableAccess, candidates: Sequence[Candidate], using: str
) -> Guess | None:
    """``query`` (a workload query: ``sql``, ``params``) scans or sorts ``access``'s table,
    and the first of the fullest candidates that its plan uses once built, if any."""
    sql, values = query.sql, _values(query)
    try:
        plan = explain(sql, values, using=using)
    except (ExplainRefused, DatabaseError):
        return None
    lines = plan.text.splitlines()
    names = {access.table, access.alias or access.table}
    problem = None
    for line in lines:
        words = _words(line)
        if "SCAN" in words and "INDEX" not in words and names & words:
            problem = line.strip()
            break
    if problem is None and access.order_by and any("TEMP B-TREE" in line for line in lines):
        problem = "sorted in a temporary b-tree"
    if problem is None:
        return None
    quote = connections[using].ops.quote_name
    plain = [candidate for candidate in candidates if not candidate.include]
    tried = sorted(plain, key=lambda c: (-len(c.columns), len(c.condition)))[:MAX_TRIALS]
    for candidate in tried:
        try:
            trial = explain(
                sql, values, using=using, sqlite_setup=[candidate.sql(quote, TRIAL_INDEX)]
            )
        except (ExplainRefused, DatabaseError):
            continue
        if TRIAL_INDEX in _words(trial.text):
            return Guess(
                candidate,
                f"EXPLAIN QUERY PLAN: {problem}; with the index built in a rolled-back "
                "transaction, the plan uses it",
            )
    return None


def sqlite_together[Use: tuple[Any, ...]](
    chosen: dict[Candidate, list[Use]], using: str
) -> dict[Candidate, list[Use]]:
    """``chosen`` (candidate -> its uses, each a tuple whose first item is the workload query)
    regrouped by the index each query's plan uses with every candidate built at once;
    candidates no plan uses are left out. A query whose plan then uses none keeps its own
    candidate (it used it alone)."""
    candidates = list(chosen)
    if len(candidates) < 2:
        return chosen
    quote = connections[using].ops.quote_name
    names = [f"{TRIAL_INDEX}_{number}" for number in range(len(candidates))]
    setup = [candidate.sql(quote, name) for candidate, name in zip(candidates, names, strict=True)]
    regrouped: dict[Candidate, list[Use]] = {}
    for own, uses in chosen.items():
        for use in uses:
            query, target = use[0], own
            try:
                plan = explain(query.sql, _values(query), using=using, sqlite_setup=setup)
            except (ExplainRefused, DatabaseError):
                plan = None
            if plan is not None:
                words = _words(plan.text)
                picked = [c for c, name in zip(candidates, names, strict=True) if name in words]
                target = picked[0] if picked else own
            regrouped.setdefault(target, []).append(use)
    return regrouped


def _values(query: Any) -> list[Any] | None:
    return list(query.params) if query.params is not None else None


def _words(plan_text: str) -> set[str]:
    """The names in an EXPLAIN QUERY PLAN text (SQLite may quote them with backticks)."""
    return set(plan_text.replace("`", " ").split())
