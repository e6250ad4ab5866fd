"""Candidate indexes for one table access: single columns, then composites (equality columns
first, then the sort or one range column), partial ones for constant predicates, and covering
ones (``INCLUDE``) where a few more columns would spare the heap.

A candidate that an existing valid btree index already serves (as its left prefix) is dropped
here: costing it could only show that the planner is happy already.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from django.db.models import Q

from django_dbperf.indexes.catalog import ExistingIndex, TableFacts
from django_dbperf.indexes.parsing import Constant, TableAccess

MAX_KEY_COLUMNS = 3  # equality columns in one composite, before the sort or range column
MAX_INCLUDED = 3  # more than this and a covering index is too wide to be worth its writes
_CONDITION_OPERATORS = frozenset({"=", "<>", "IN", "IS NULL", "IS NOT NULL", "IS TRUE", "IS FALSE"})


@dataclass(frozen=True)
class Candidate:
    table: str
    columns: tuple[tuple[str, bool], ...]  # (column, descending)
    condition: tuple[Constant, ...] = ()  # a partial index's predicate, AND-ed
    include: tuple[str, ...] = ()

    @property
    def key_columns(self) -> tuple[str, ...]:
        return tuple(column for column, _ in self.columns)

    @property
    def kind(self) -> str:
        if self.condition:
            return "partial"
        if self.include:
            return "covering"
        return "single" if len(self.columns) == 1 else "composite"

    def _text(self, quote: Any) -> str:
        keys = ", ".join(
            f"{quote(column)}{' DESC' if desc else ''}" for column, desc in self.columns
        )
        text = f"({keys})"
        if self.include:
            text += f" INCLUDE ({', '.join(quote(column) for column in self.include)})"
        if self.condition:
            text += " WHERE " + " AND ".join(_predicate(item, quote) for item in self.condition)
        return text

    def sql(self, quote: Any, name: str | None = None) -> str:
        """``CREATE INDEX ON ...`` for hypopg, or ``CREATE INDEX name ON ...`` for a trial build
        (literals come from parsed SQL, quoted again)."""
        named = f"{quote(name)} " if name else ""
        return f"CREATE INDEX {named}ON {quote(self.table)} {self._text(quote)}"

    def describe(self) -> str:
        return f"{self.table} {self._text(str)}"

    def name(self, model_name: str, first_field: str) -> str:
        """A deterministic name within Django's 30 characters: dp_<model>_<field>_<hash>."""
        digest = hashlib.sha256(self.describe().encode()).hexdigest()[:8]
        return f"dp_{model_name.lower()[:8]}_{first_field.lower()[:8]}_{digest}"


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _predicate(constant: Constant, quote: Any) -> str:
    column = quote(constant.column)
    operator = constant.operator
    if operator in ("IS NULL", "IS NOT NULL", "IS TRUE", "IS FALSE"):
        return f"{column} {operator}"
    if operator == "IN":
        return f"{column} IN ({', '.join(_literal(value) for value in constant.values)})"
    value = constant.values[0]
    if operator == "=" and isinstance(value, bool):
        # As Django writes Q(flag=True) and as the planner matches it: the bare column.
        return column if value else f"NOT {column}"
    return f"{column} {operator} {_literal(value)}"


def condition_q(candidate: Candidate, facts: TableFacts) -> Q | None:
    """The partial index's predicate as Django's ``Q`` (field names), None if not partial."""
    if not candidate.condition:
        return None
    combined = Q()
    for constant in candidate.condition:
        field = facts.field_name(constant.column)
        operator, values = constant.operator, constant.values
        if operator == "IS NULL":
            term = Q(**{f"{field}__isnull": True})
        elif operator == "IS NOT NULL":
            term = Q(**{f"{field}__isnull": False})
        elif operator in ("IS TRUE", "IS FALSE"):
            term = Q(**{field or "": operator == "IS TRUE"})
        elif operator == "IN":
            term = Q(**{f"{field}__in": list(values)})
        elif operator == "<>":
            term = ~Q(**{field or "": values[0]})
        else:
            term = Q(**{field or "": values[0]})
        combined &= term
    return combined


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def serves(existing: ExistingIndex, candidate: Candidate) -> bool:
    """Whether a valid btree index already gives what the candidate would."""
    if not existing.valid or existing.method != "btree" or existing.partial:
        return False
    keys = candidate.key_columns
    if existing.columns[: len(keys)] != keys:
        return False
    if len(keys) > 1:  # a multi-column order is served forwards or wholly backwards
        wanted = tuple(desc for _, desc in candidate.columns)
        have = existing.descending[: len(keys)] or (False,) * len(keys)
        if wanted != tuple(have) and wanted != tuple(not desc for desc in have):
            return False
    covered = set(existing.columns) | set(existing.included)
    return set(candidate.include) <= covered and not candidate.condition


def _mappable(candidate: Candidate, facts: TableFacts) -> bool:
    columns = [*candidate.key_columns, *candidate.include]
    columns += [constant.column for constant in candidate.condition]
    return all(facts.field_name(column) is not None for column in columns)


def known_constants(access: TableAccess, known: Mapping[int, Any]) -> tuple[Constant, ...]:
    """Predicates whose placeholders held the same value in every call (``known``: placeholder
    number -> value), as constants: ``col = $1`` with $1 always True is ``col = TRUE``."""
    numbers: dict[str, list[int]] = {}
    for column, number in access.parameters:
        numbers.setdefault(column, []).append(number)
    found = []
    for column, used in numbers.items():
        if not all(number in known for number in used):
            continue
        values = tuple(known[number] for number in used)
        if column in access.equality and len(values) == 1:
            found.append(Constant(column, "=", values))
        elif column in access.in_lists and column not in access.equality:
            found.append(Constant(column, "IN", values))
    return tuple(found)


def candidates_for(
    access: TableAccess, facts: TableFacts, known: Mapping[int, Any] | None = None
) -> list[Candidate]:
    """The candidates worth costing for one table access, most basic first. ``known``: values
    the ORM always sent for some placeholders (partial-index material)."""
    table = access.table
    equal = _unique([*access.equality, *access.in_lists, *access.joins])[:MAX_KEY_COLUMNS]
    nulls = [column for column, _ in access.null_tests]
    order = tuple(access.order_by)
    tails: list[tuple[tuple[str, bool], ...]] = [order] if order else []
    tails += [((column, False),) for column in access.ranges if column not in equal]
    found: list[Candidate] = []

    def add(columns: tuple[tuple[str, bool], ...], **extra: Any) -> None:
        names = [column for column, _ in columns]
        if columns and len(set(names)) == len(names):
            found.append(Candidate(table, columns, **extra))

    for column in _unique([*equal, *access.ranges, *nulls, *(c for c, _ in order[:1])]):
        add(((column, False),))
    heads = [tuple((column, False) for column in equal)] if equal else [()]
    heads += [tuple((column, False) for column in pair) for pair in combinations(equal, 2)]
    for head in heads:
        for tail in tails or [()]:
            add(head + tuple(item for item in tail if item[0] not in equal))
    constants = tuple(item for item in access.constants if item.operator in _CONDITION_OPERATORS)
    constants += known_constants(access, known or {})
    if constants:
        fixed = {item.column for item in constants if item.operator != "IN"}
        keys = tuple((column, False) for column in equal if column not in fixed)
        for tail in tails or [()]:
            columns = keys + tuple(item for item in tail if item[0] not in fixed)
            add(columns or order, condition=constants)
    if access.referenced is not None:
        for candidate in [item for item in found if len(item.columns) > 1 or item.condition]:
            used = {*candidate.key_columns, *(item.column for item in candidate.condition)}
            rest = tuple(column for column in access.referenced if column not in used)
            if 0 < len(rest) <= MAX_INCLUDED:
                add(candidate.columns, condition=candidate.condition, include=rest)
    unique = list(dict.fromkeys(found))
    return [
        candidate
        for candidate in unique
        if _mappable(candidate, facts)
        and not any(serves(existing, candidate) for existing in facts.indexes)
    ]
