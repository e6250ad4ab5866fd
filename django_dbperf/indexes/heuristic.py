"""Suggestions without hypopg, labelled "unverified": nothing costed them.

PostgreSQL: the planner's own column statistics (``pg_stats``: n_distinct, null_frac) estimate
what share of the table the equality predicates keep; an index is suggested when that share
is small (``MAX_SHARE``), when the statement reads the first rows of a sort (ORDER BY ...
LIMIT), or for a range on a column stored in its order (``correlation``), which an index reads
without random I/O. SQLite: ``EXPLAIN QUERY PLAN`` says when a table is scanned in full or
sorted in a temporary b-tree; the candidate that would serve the statement is suggested.
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


def sqlite_guess(
    sql: str,
    params: Sequence[Any] | None,
    access: TableAccess,
    candidates: Sequence[Candidate],
    using: str,
) -> Guess | None:
    candidate = best_candidate(candidates)
    if candidate is None:
        return None
    try:
        plan = explain(sql, list(params) if params is not None else None, using=using)
    except (ExplainRefused, DatabaseError):
        return None
    lines = plan.text.splitlines()
    names = {access.table, access.alias or access.table}
    for line in lines:
        words = line.replace("`", " ").split()
        if "SCAN" in words and "INDEX" not in words and names & set(words):
            return Guess(candidate, f"EXPLAIN QUERY PLAN: {line.strip()}")
    if access.order_by and any("TEMP B-TREE" in line for line in lines):
        return Guess(candidate, "EXPLAIN QUERY PLAN: sorted in a temporary b-tree")
    return None
