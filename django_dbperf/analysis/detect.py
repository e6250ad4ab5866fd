"""Turn captured queries into findings: N+1 (by statement shape and callsite) and duplicates."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence

from django_dbperf.analysis import relations
from django_dbperf.analysis.findings import DUPLICATE, N_PLUS_ONE, Finding
from django_dbperf.analysis.fixes import EagerPath, suggest
from django_dbperf.analysis.relations import MANY_TO_MANY, REVERSE_FK, SINGLE_VALUED, Relation
from django_dbperf.capture import QueryRecord, TemplateSite

# Transaction control repeats by design (atomic() in a loop): never a finding.
_CONTROL_VERBS = ("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT", "SET")

# Relation kinds that eager loading fixes (deferred fields and pk lookups are fixed otherwise).
EAGER_KINDS = SINGLE_VALUED | {REVERSE_FK, MANY_TO_MANY}

GroupKey = tuple[str, tuple[str, int] | None, TemplateSite | None]


@functools.lru_cache(maxsize=4096)
def _is_control(shape: str) -> bool:
    return shape.startswith(_CONTROL_VERBS)


def _group(records: Sequence[QueryRecord]) -> dict[GroupKey, list[QueryRecord]]:
    groups: dict[GroupKey, list[QueryRecord]] = {}
    for record in records:
        if not _is_control(record.fingerprint):
            key = (record.fingerprint, record.callsite_key, record.template)
            groups.setdefault(key, []).append(record)
    return groups


def _relation(group: list[QueryRecord]) -> Relation | None:
    loads = Counter(record.lazy_load for record in group if record.lazy_load is not None)
    if loads:
        return relations.from_lazy_load(loads.most_common(1)[0][0])
    return relations.from_sql(group[0].fingerprint)


def _loaded_at(records: Sequence[QueryRecord], relation: Relation, position: int) -> str | None:
    """Where the rows that were then loaded one by one came from: the last query of their table."""
    table = f'FROM "{relation.model._meta.db_table}"'
    for record in reversed(records[:position]):
        if table in record.fingerprint and record.callsite is not None:
            return str(record.callsite)
    return None


Found = list[tuple[list[QueryRecord], Relation | None]]


def _interleaved(
    parent: list[QueryRecord], child: list[QueryRecord], order: dict[int, int]
) -> bool:
    """The child's loads started inside the parent's loop: its rows are the parent's results."""
    first_child = order[id(child[0])]
    return order[id(parent[0])] < first_child < order[id(parent[-1])]


def _eager_path(found: Found, index: int, order: dict[int, int]) -> EagerPath | None:
    """Join nested hops of one loop: Node.event, then Event.owner, is "event__owner"."""
    group, relation = found[index]
    if relation is None or relation.kind not in EAGER_KINDS:
        return None
    path, root, single = relation.name, relation, relation.kind in SINGLE_VALUED
    used, current = {index}, index
    while True:
        parent = next(
            (
                i
                for i, (other, candidate) in enumerate(found)
                if i not in used
                and candidate is not None
                and candidate.kind in EAGER_KINDS
                and candidate.target is root.model
                and other[0].callsite_key == group[0].callsite_key
                and _interleaved(other, found[current][0], order)
            ),
            None,
        )
        if parent is None:
            return EagerPath(root, path, single)
        used.add(parent)
        current = parent
        parent_relation = found[parent][1]
        assert parent_relation is not None  # the search above only matches known relations
        root = parent_relation
        path = f"{root.name}__{path}"
        single = single and root.kind in SINGLE_VALUED


def find_n_plus_one(records: Sequence[QueryRecord], threshold: int) -> list[Finding]:
    """Statements of one shape run ``threshold`` or more times from one line."""
    repeated = [group for group in _group(records).values() if len(group) >= threshold]
    if not repeated:
        return []
    found: Found = [(group, _relation(group)) for group in repeated]
    order = {id(record): position for position, record in enumerate(records)}
    findings = []
    for index, (group, relation) in enumerate(found):
        first = group[0]
        eager = _eager_path(found, index, order)
        root = eager.root if eager else relation
        loaded_at = _loaded_at(records, root, order[id(first)]) if root else None
        findings.append(
            Finding(
                kind=N_PLUS_ONE,
                count=len(group),
                fingerprint=first.fingerprint,
                sql=first.sql,
                callsite=first.callsite,
                suggestion=suggest(relation, first.fingerprint, eager, loaded_at),
                relation=relation.label if relation else None,
                template=first.template,
                total_ms=sum(record.duration_ms for record in group),
            )
        )
    return findings


def find_duplicates(
    records: Sequence[QueryRecord], exclude: Sequence[Finding] = ()
) -> list[Finding]:
    """The same SQL with the same parameters run more than once (outside reported N+1s)."""
    excluded = {finding.fingerprint for finding in exclude}
    same_sql: dict[str, list[QueryRecord]] = {}
    for record in records:
        if record.fingerprint not in excluded and not _is_control(record.fingerprint):
            same_sql.setdefault(record.sql, []).append(record)
    # Parameters are compared (by repr) only where the SQL text repeats.
    groups: dict[tuple[str, str], list[QueryRecord]] = {}
    for sql, candidates in same_sql.items():
        if len(candidates) > 1:
            for record in candidates:
                groups.setdefault((sql, repr(record.params)), []).append(record)
    return [
        Finding(
            kind=DUPLICATE,
            count=len(group),
            fingerprint=group[0].fingerprint,
            sql=group[0].sql,
            callsite=group[0].callsite,
            suggestion="run it once and reuse the result (keep it in a variable, or use "
            "cached_property for a value read in several places)",
            template=group[0].template,
            total_ms=sum(record.duration_ms for record in group),
        )
        for group in groups.values()
        if len(group) > 1
    ]


def analyse(records: Sequence[QueryRecord], threshold: int) -> list[Finding]:
    n_plus_one = find_n_plus_one(records, threshold)
    return n_plus_one + find_duplicates(records, exclude=n_plus_one)
