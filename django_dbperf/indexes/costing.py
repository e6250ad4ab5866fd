"""Evidence with hypopg: each statement's plan cost before and after hypothetical indexes.

Passes like Dexter's: every single-column candidate at once, then every candidate at once
(so the planner picks among them), then each index some plan used, alone, to know what it
saves by itself. Candidates go to hypopg in batches of at most ``BATCH`` with a reset between,
so it never runs out of object ids. hypopg's indexes live in this session only and are reset
afterwards whatever happens; nothing is built and no statement is run.

Plans use the stored values when every value was stored, else a generic plan: ``EXPLAIN
(GENERIC_PLAN)`` on PostgreSQL 16 and later, ``PREPARE`` + ``plan_cache_mode =
force_generic_plan`` before (prepared afresh each time: a cached generic plan would not see
hypothetical indexes created after it).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from django.db import DatabaseError, connections, transaction

from django_dbperf.explain import ExplainRefused, Statement, check_statement
from django_dbperf.indexes.candidates import Candidate

BATCH = 500  # hypothetical indexes alive at once (Dexter's figure)
PLAN_TIMEOUT_MS = 5000


class HypopgMissing(Exception):
    """hypopg is not installed in the database; the message says how to install it."""


@dataclass(frozen=True)
class CostedQuery:
    key: str
    statement: Statement
    params: tuple[Any, ...] | None
    candidates: tuple[Candidate, ...]
    numbered_form: bool = False  # pg_stat_statements' text: $n placeholders, no values


@dataclass
class Costing:
    before: dict[str, float] = field(default_factory=dict)  # query key -> plan cost
    alone: dict[tuple[Candidate, str], float] = field(default_factory=dict)
    used: dict[str, set[Candidate]] = field(default_factory=dict)  # in the all-at-once plans
    errors: dict[str, str] = field(default_factory=dict)  # query key -> why it has no cost
    plans: int = 0  # EXPLAINs run

    def saving(self, candidate: Candidate, key: str) -> float:
        """The share of ``key``'s cost ``candidate`` alone saves (0..1)."""
        before = self.before.get(key)
        after = self.alone.get((candidate, key))
        if not before or after is None or after >= before:
            return 0.0
        return (before - after) / before


def hypopg_installed(using: str) -> bool:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'hypopg'")
        return cursor.fetchone() is not None


def hypopg_missing_reason(using: str) -> str | None:
    """None when hypopg can be used on ``using``, else what to do about it."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return f"hypopg needs PostgreSQL; {using!r} is {connection.vendor}"
    if hypopg_installed(using):
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg'")
        available = cursor.fetchone() is not None
    if available:
        return (
            f"hypopg is available but not created in the database {using!r}: run "
            f"CREATE EXTENSION hypopg; (it only adds functions)"
        )
    return (
        "hypopg is not installed on the database server (Debian/Ubuntu: apt-get install "
        "postgresql-<version>-hypopg; then CREATE EXTENSION hypopg;)"
    )


def prepare(
    key: str,
    sql: str,
    params: Sequence[Any] | None,
    candidates: Sequence[Candidate],
    *,
    numbered_form: bool = False,
) -> CostedQuery:
    """A statement ready to cost; raises ExplainRefused for one that is not a single SELECT."""
    if numbered_form:
        params = None
    statement = check_statement(sql, params, dialect="postgresql", numbered_form=numbered_form)
    values = tuple(params) if params is not None else None
    return CostedQuery(key, statement, values, tuple(candidates), numbered_form)


class _Planner:
    def __init__(self, using: str) -> None:
        self.connection = connections[using]
        self.version = int(cast(Any, self.connection).pg_version)
        self.quote = self.connection.ops.quote_name

    def cost(self, query: CostedQuery) -> tuple[float, set[str]]:
        """The plan's total cost and the indexes it scans."""
        document = self._explain(query)
        if isinstance(document, str):
            document = json.loads(document)
        top = document[0]["Plan"]
        return float(top["Total Cost"]), set(_index_names(top))

    def _explain(self, query: CostedQuery) -> Any:
        statement = query.statement
        setup = [f"SET LOCAL statement_timeout = {PLAN_TIMEOUT_MS}"]
        cleanup = None
        if query.params is not None or statement.placeholders == 0:
            # No values for $n text: None keeps the driver from reading its '%' signs.
            values = None if query.numbered_form else list(query.params or ())
            sql, params = f"EXPLAIN (FORMAT JSON) {statement.text}", values
        elif self.version >= 160000:
            sql, params = f"EXPLAIN (GENERIC_PLAN, FORMAT JSON) {statement.numbered}", None
        else:
            name = f"dbperf_cost_{secrets.token_hex(6)}"
            setup += ["SET LOCAL plan_cache_mode = force_generic_plan"]
            setup += [f"PREPARE {name} AS {statement.numbered}"]
            nulls = ", ".join(["NULL"] * statement.placeholders)
            sql, params, cleanup = f"EXPLAIN (FORMAT JSON) EXECUTE {name}({nulls})", None, name
        try:
            with transaction.atomic(using=self.connection.alias):
                try:
                    with self.connection.cursor() as cursor:
                        for line in setup:
                            cursor.execute(line)
                        cursor.execute(sql, params)
                        ((document,),) = cursor.fetchall()
                        return document
                finally:
                    transaction.set_rollback(True, using=self.connection.alias)
        finally:
            if cleanup is not None:
                with self.connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT 1 FROM pg_prepared_statements WHERE name = %s", [cleanup]
                    )
                    if cursor.fetchone() is not None:
                        cursor.execute(f"DEALLOCATE {cleanup}")

    @contextmanager
    def hypothetical(self, candidates: Sequence[Candidate]) -> Iterator[dict[str, Candidate]]:
        """The candidates as hypothetical indexes (hypopg name -> candidate), reset after."""
        names: dict[str, Candidate] = {}
        try:
            with self.connection.cursor() as cursor:
                for candidate in candidates:
                    cursor.execute(
                        "SELECT indexname FROM hypopg_create_index(%s)",
                        [candidate.sql(self.quote)],
                    )
                    (name,) = cursor.fetchone()
                    names[name] = candidate
            yield names
        finally:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT hypopg_reset()")


def _index_names(node: dict[str, Any]) -> Iterator[str]:
    if "Index Name" in node:
        yield node["Index Name"]
    for child in node.get("Plans", ()):
        yield from _index_names(child)


def _batches(
    queries: Sequence[CostedQuery], pick: Any
) -> Iterator[tuple[list[CostedQuery], list[Candidate]]]:
    """Queries grouped so that the union of their picked candidates stays within BATCH."""
    group: list[CostedQuery] = []
    union: dict[Candidate, None] = {}
    for query in queries:
        mine = [candidate for candidate in query.candidates if pick(candidate)]
        if not mine:
            continue
        if group and len(union.keys() | set(mine)) > BATCH:
            yield group, list(union)
            group, union = [], {}
        group.append(query)
        union.update(dict.fromkeys(mine[:BATCH]))
    if group:
        yield group, list(union)


def cost_workload(queries: Sequence[CostedQuery], using: str) -> Costing:
    """Run the passes; a statement the database refuses to plan is noted and left out."""
    planner = _Planner(using)
    costing = Costing()
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT hypopg_reset()")
    live: list[CostedQuery] = []
    for query in queries:
        try:
            costing.before[query.key], _ = planner.cost(query)
            costing.plans += 1
            live.append(query)
        except (DatabaseError, ExplainRefused) as error:
            costing.errors[query.key] = f"the database could not plan it: {error}".strip()
    winners: set[Candidate] = set()
    for pick in (lambda c: len(c.columns) == 1 and c.kind == "single", lambda c: True):
        for group, batch in _batches(live, pick):
            with planner.hypothetical(batch) as names:
                for query in group:
                    _, used = planner.cost(query)
                    costing.plans += 1
                    chosen = {names[name] for name in used if name in names}
                    costing.used.setdefault(query.key, set()).update(chosen)
                    winners |= chosen
    # A partial or covering variant loses to its plain twin when both exist (the planner
    # picks one), yet alone it may save as much for less: cost the variants of winning
    # queries alone too.
    for query in live:
        if costing.used.get(query.key):
            winners |= {c for c in query.candidates if c.condition or c.include}
    for winner in sorted(winners, key=lambda candidate: candidate.describe()):
        with planner.hypothetical([winner]):
            for query in live:
                if winner in query.candidates:
                    costing.alone[(winner, query.key)], _ = planner.cost(query)
                    costing.plans += 1
    return costing
