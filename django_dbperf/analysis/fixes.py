"""The one-line fix for a finding, written as the code a Django developer would type."""

from __future__ import annotations

from dataclasses import dataclass

import django

from django_dbperf.analysis.relations import (
    DEFERRED,
    FORWARD,
    PK_LOOKUP,
    SINGLE_VALUED,
    Relation,
)

HAS_FETCH_MODES = django.VERSION >= (6, 1)


def _verb(shape: str) -> str:
    return shape.split(" ", 1)[0].upper()


@dataclass(frozen=True)
class EagerPath:
    """A lookup path from the queryset whose rows were loaded: ``"event__owner"``."""

    root: Relation  # the first hop, on the queryset's own model
    path: str
    single_valued: bool  # every hop can be followed by select_related


def eager_load(eager: EagerPath, loaded_at: str | None) -> str:
    name = eager.root.model.__name__
    where = f" evaluated at {loaded_at}" if loaded_at else ""
    method = "select_related" if eager.single_valued else "prefetch_related"
    fix = f'add .{method}("{eager.path}") to the {name} queryset{where}'
    if eager.root.kind == FORWARD and "__" not in eager.path and HAS_FETCH_MODES:
        fix += " (or .fetch_mode(models.FETCH_PEERS) to batch the lazy loads)"
    return fix


def _aggregate_fix(relation: Relation, shape: str) -> str | None:
    """Counting, or taking the first row of, a relation per row is an annotation."""
    name, accessor = relation.model.__name__, relation.name
    filtered = " AND " in shape.split(" WHERE ", 1)[-1]
    if shape.startswith("SELECT COUNT(*)"):
        condition = ", filter=Q(...)" if filtered else ""
        return (
            f'annotate the {name} queryset: .annotate({accessor}_count=Count("{accessor}"'
            f"{condition})) instead of counting per row"
        )
    if " LIMIT " in shape and " ORDER BY " in shape:
        target = relation.target.__name__ if relation.target else "Related"
        return (
            f"annotate the {name} queryset with the value you need from Subquery("
            f'{target}.objects.filter(...=OuterRef("pk")).order_by(...).values(...)[:1]), or '
            f'prefetch Prefetch("{accessor}", queryset={target}.objects.order_by(...), '
            f'to_attr="{accessor}_ordered") and take the first item'
        )
    return None


def suggest(
    relation: Relation | None,
    shape: str,
    eager: EagerPath | None = None,
    loaded_at: str | None = None,
) -> str:
    """The fix for ``shape`` repeated row by row, loading ``relation`` when it is known."""
    if relation is not None:
        name = relation.model.__name__
        if relation.kind == DEFERRED:
            return (
                f'stop deferring "{relation.name}": remove it from .defer()/.only() on the '
                f"{name} queryset, or add it to .only()"
            )
        if relation.kind == PK_LOOKUP:
            return (
                f"fetch the {name} rows at once before the loop: "
                f"{name}.objects.in_bulk(ids) or .filter(pk__in=ids)"
            )
        if relation.kind not in SINGLE_VALUED and (fix := _aggregate_fix(relation, shape)):
            return fix
        single = relation.kind in SINGLE_VALUED
        return eager_load(eager or EagerPath(relation, relation.name, single), loaded_at)
    verb = _verb(shape)
    if verb == "INSERT":
        return "create the rows with one bulk_create() call instead of one save() per row"
    if verb == "UPDATE":
        return "update the rows with one queryset.update() or bulk_update() call"
    if verb == "DELETE":
        return "delete the rows with one queryset .filter(...).delete() call"
    return (
        "run one query for all rows before the loop (e.g. .filter(field__in=values) or "
        "in_bulk()) instead of one query per row"
    )
