"""Turn captured queries into findings: N+1 (by statement shape and callsite) and duplicates.

An N+1 is one statement shape run from one line with at least ``threshold`` *different*
parameter sets: one query per row. The same SQL with the same parameters, however often and
from wherever, is a duplicate: the fix is to reuse the result, not to eager-load.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

from django_dbperf.analysis import relations
from django_dbperf.analysis.findings import DUPLICATE, N_PLUS_ONE, Finding
from django_dbperf.analysis.fixes import EagerPath, reshaped_fix, suggest
from django_dbperf.analysis.provenance import find_source
from django_dbperf.analysis.relations import EAGER_KINDS, SINGLE_VALUED, Relation
from django_dbperf.capture import Callsite, LazyLoad, QueryRecord, TemplateSite

# Transaction control repeats by design (atomic() in a loop): never a finding.
_CONTROL_VERBS = ("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT", "SET")

# Shape, line, template line, and the relation a descriptor named: article.publisher and
# article.writer.publisher send the same SQL from one line, yet are two loads to fix apart.
GroupKey = tuple[str, tuple[str, int] | None, TemplateSite | None, Hashable]


@functools.lru_cache(maxsize=4096)
def _is_control(shape: str) -> bool:
    return shape.startswith(_CONTROL_VERBS)


def _frozen(value: Any) -> Hashable:
    """A value equal only for parameters the database receives as equal (1 is not True)."""
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(_frozen(item) for item in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((str(k), _frozen(v)) for k, v in value.items())))
    hash(value)
    return (type(value), value)


_SEQUENCES = (list, tuple)


def params_key(params: Any) -> Hashable:
    """The identity of a statement's parameters, for telling repeats from variations."""
    if type(params) in _SEQUENCES:
        # The common case, flat values: their types and values, without recursion.
        flat = (tuple(map(type, params)), tuple(params))
        try:
            hash(flat)
            return flat
        except TypeError:  # a list parameter (an array): the recursive form below
            pass
    try:
        return _frozen(params)
    except TypeError:  # an unhashable adapter value: compare its text
        return ("repr", repr(params))


@functools.lru_cache(maxsize=1024)
def _field(load: LazyLoad) -> Hashable:
    """The field a lazy load read, by the model that declares it: rows of several subclasses
    (page types of one page tree) loading an inherited field are one loop."""
    try:
        declared_on = load.model._meta.get_field(load.name).model
    except Exception:
        declared_on = load.model
    return (load.kind, declared_on, load.name)


def _group(records: Sequence[QueryRecord]) -> dict[GroupKey, list[QueryRecord]]:
    groups: dict[GroupKey, list[QueryRecord]] = {}
    for record in records:
        if not _is_control(record.fingerprint):
            load = record.lazy_load
            key = (record.fingerprint, record.callsite_key, record.template, load and _field(load))
            groups.setdefault(key, []).append(record)
    return groups


def _distinct_params(group: list[QueryRecord], enough: int) -> int:
    """How many different parameter sets the group ran with (counting stops at ``enough``)."""
    seen: set[Hashable] = set()
    for record in group:
        seen.add(params_key(record.params))
        if len(seen) >= enough:
            break
    return len(seen)


def _relation(group: list[QueryRecord]) -> Relation | None:
    loads = Counter(record.lazy_load for record in group if record.lazy_load is not None)
    if loads:
        return relations.from_lazy_load(loads.most_common(1)[0][0])
    return relations.from_sql(group[0].fingerprint, group[0].params)


def sites(group: Sequence[QueryRecord]) -> tuple[Callsite, ...]:
    """Every line that ran the group, in order: the project's, else the framework's."""
    return tuple(dict.fromkeys(record.site for record in group if record.site is not None))


def _framework(record: QueryRecord) -> Callsite | None:
    return record.framework if record.framework != record.callsite else None


Found = list[tuple[list[QueryRecord], Relation | None]]


def _interleaved(
    parent: list[QueryRecord], child: list[QueryRecord], order: dict[int, int]
) -> bool:
    """The child's loads started inside the parent's loop: its rows are the parent's results."""
    first_child = order[id(child[0])]
    return order[id(parent[0])] < first_child < order[id(parent[-1])]


def _same_loop(parent: QueryRecord, child: QueryRecord) -> bool:
    """Whether two row-by-row loads can be hops of one loop (with interleaving, checked apart).

    The same project line; or, where no project line ran them (a template, a serializer), the
    same template or both framework code: nested loops there are different framework lines.
    """
    if parent.callsite is not None or child.callsite is not None:
        return parent.callsite_key == child.callsite_key
    if parent.template is not None or child.template is not None:
        return (
            parent.template is not None
            and child.template is not None
            and parent.template.name == child.template.name
        )
    return True


def _eager_path(found: Found, index: int, order: dict[int, int]) -> EagerPath | None:
    """Join nested hops of one loop: Node.event, then Event.owner, is "event__owner"."""
    group, relation = found[index]
    if relation is None or relation.kind not in EAGER_KINDS or not relation.named:
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
                and candidate.named
                and candidate.target is not None
                and issubclass(candidate.target, root.model)
                and _same_loop(other[0], group[0])
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


def _fix(
    records: Sequence[QueryRecord],
    found: Found,
    index: int,
    order: dict[int, int],
    skip: set[int],
) -> str:
    group, relation = found[index]
    eager = _eager_path(found, index, order)
    root = eager.root if eager else relation
    source = None
    if root is not None and root.kind in EAGER_KINDS:
        source = find_source(records, order[id(group[0])], root.model, skip)
    framework = group[0].framework
    ran_by = (framework.module, framework.function) if framework else None
    if relation is not None and all(r.origin is not None and r.origin.reshaped for r in group):
        # .values() per row: a prefetch would be loaded and then not read.
        return reshaped_fix(relation, group[0].callsite, framework)
    return suggest(relation, group[0].fingerprint, eager, source, ran_by)


def _finding(kind: str, group: list[QueryRecord], relation: Relation | None, fix: str) -> Finding:
    first = group[0]
    return Finding(
        kind=kind,
        count=len(group),
        fingerprint=first.fingerprint,
        sql=first.sql,
        callsite=first.callsite,
        suggestion=fix,
        relation=relation.label if relation else None,
        template=first.template,
        total_ms=sum(record.duration_ms for record in group),
        model=relation.model_label if relation else None,
        framework=_framework(first),
        callsites=sites(group),
    )


def _n_plus_one_groups(records: Sequence[QueryRecord], threshold: int) -> Found:
    """Groups that load something per row: ``threshold`` parameter sets, or a relation's loads.

    Loading a relation row by row repeats parameters when rows share a related object (ten
    books by two authors), so a group whose relation is known needs only varying parameters.
    Anything else needs ``threshold`` different parameter sets: ``request.user`` loaded twice
    and another user once is a duplicate, not an N+1.
    """
    found: Found = []
    for group in _group(records).values():
        if len(group) < threshold:
            continue
        distinct = _distinct_params(group, threshold)
        if distinct < 2:
            continue
        relation = _relation(group)
        eager = relation is not None and relation.kind in EAGER_KINDS and relation.named
        if distinct >= threshold or eager:
            found.append((group, relation))
    return found


def find_n_plus_one(records: Sequence[QueryRecord], threshold: int) -> list[Finding]:
    """Statements of one shape run from one line with ``threshold`` or more parameter sets."""
    return _analyse(records, threshold, duplicates=False)


def find_duplicates(records: Sequence[QueryRecord], threshold: int = 3) -> list[Finding]:
    """The same SQL with the same parameters run more than once (outside N+1 loops)."""
    return [f for f in _analyse(records, threshold, n_plus_one=False) if f.kind == DUPLICATE]


def _duplicate_groups(records: Sequence[QueryRecord], skip: set[int]) -> list[list[QueryRecord]]:
    same_sql: dict[str, list[QueryRecord]] = {}
    for record in records:
        if id(record) not in skip and not _is_control(record.fingerprint):
            same_sql.setdefault(record.sql, []).append(record)
    # Parameters are compared only where the SQL text repeats.
    groups: dict[tuple[str, Hashable], list[QueryRecord]] = {}
    for sql, candidates in same_sql.items():
        if len(candidates) > 1:
            for record in candidates:
                groups.setdefault((sql, params_key(record.params)), []).append(record)
    return [group for group in groups.values() if len(group) > 1]


_REUSE = (
    "run it once and reuse the result (keep it in a variable, or use cached_property for a "
    "value read in several places)"
)


def _analyse(
    records: Sequence[QueryRecord],
    threshold: int,
    *,
    n_plus_one: bool = True,
    duplicates: bool = True,
) -> list[Finding]:
    found = _n_plus_one_groups(records, threshold)
    skip = {id(record) for group, _ in found for record in group}
    duplicated = _duplicate_groups(records, skip) if duplicates else []
    if not found and not duplicated:
        return []  # a clean request: no positions to index
    order = {id(record): position for position, record in enumerate(records)}
    findings = []
    if n_plus_one:
        for index, (group, relation) in enumerate(found):
            fix = _fix(records, found, index, order, skip)
            findings.append(_finding(N_PLUS_ONE, group, relation, fix))
    for group in duplicated:
        findings.append(_duplicate(records, group, order, skip))
    return findings


def _duplicate(
    records: Sequence[QueryRecord], group: list[QueryRecord], order: dict[int, int], skip: set[int]
) -> Finding:
    """The same row loaded again and again by a lazy load is fixed by loading it eagerly."""
    relation = None
    if all(record.lazy_load is not None for record in group):
        relation = _relation(group)
    if relation is None or relation.kind not in EAGER_KINDS or not relation.named:
        return _finding(DUPLICATE, group, relation, _REUSE)
    fix = _fix(records, [(group, relation)], 0, order, skip)
    return _finding(DUPLICATE, group, relation, f"{_REUSE}; or {fix}")


def analyse(records: Sequence[QueryRecord], threshold: int) -> list[Finding]:
    return _analyse(records, threshold)
