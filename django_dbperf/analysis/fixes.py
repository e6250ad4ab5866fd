"""The one-line fix for a finding, written as the code a Django developer would type.

Every call printed here is valid Python with lookups a developer can type: names that are not
identifiers (hidden accessors such as ``+``) never reach a fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import django

from django_dbperf.analysis.provenance import Source
from django_dbperf.analysis.relations import (
    DEFERRED,
    FORWARD,
    GENERIC_FOREIGN_KEY,
    PARENT_LINK,
    PK_LOOKUP,
    SINGLE_VALUED,
    Relation,
)
from django_dbperf.capture import Callsite

HAS_FETCH_MODES = django.VERSION >= (6, 1)


def _verb(shape: str) -> str:
    return shape.split(" ", 1)[0].upper()


@dataclass(frozen=True)
class EagerPath:
    """A lookup path from the model whose rows were loaded one by one: ``"event__owner"``."""

    root: Relation  # the first hop, on that model
    path: str
    single_valued: bool  # every hop can be followed by select_related


def _valid_path(path: str) -> bool:
    return all(part.isidentifier() for part in path.split("__"))


def _where(source: Source | None) -> str:
    return f" evaluated at {source.evaluated_at}" if source and source.evaluated_at else ""


def _framework_built(eager: EagerPath, source: Source) -> str:
    assert source.built_for is not None
    rows, outer = source.built_for.__name__, source.model.__name__
    path = "__".join(part for part in (source.prefix, eager.path) if part)
    method = "select_related" if eager.single_valued else "prefetch_related"
    if source.specific_subqueries:
        return (
            f"the {rows} rows come from the {outer} queryset{_where(source)} through specific(), "
            f'which runs its own queries: add .{method}("{path}", '
            f"for_specific_subqueries=True) to that {outer} queryset"
        )
    return (
        f"the {rows} rows were loaded by the framework while iterating the {outer} queryset"
        f"{_where(source)}; {method}() on that queryset does not reach them: query "
        f'{rows} directly, e.g. {rows}.objects.filter(...).{method}("{path}")'
    )


def _framework_hint(method: str, path: str, module: str | None) -> str:
    """Where that queryset is set when a framework evaluates it."""
    if not module:
        return ""
    if module.startswith("django.contrib.admin."):
        if method == "select_related":
            return f' (in the ModelAdmin: list_select_related = ["{path}"], or get_queryset())'
        return " (in the ModelAdmin's get_queryset())"
    if module.startswith("rest_framework."):
        return " (the view's queryset, or its get_queryset())"
    return ""


def eager_load(eager: EagerPath, source: Source | None) -> str:
    """Extend the queryset the user wrote, with the full path from its rows."""
    if source is not None and source.built_for is not None:
        return _framework_built(eager, source)
    prefix = source.prefix if source else ""
    path = f"{prefix}__{eager.path}" if prefix else eager.path
    single = eager.single_valued and (source is None or source.single_valued)
    name = source.model.__name__ if source else eager.root.model.__name__
    method = "select_related" if single else "prefetch_related"
    fix = f'add .{method}("{path}") to the {name} queryset{_where(source)}'
    fix += _framework_hint(method, path, source.framework_module if source else None)
    if eager.root.kind == GENERIC_FOREIGN_KEY and django.VERSION >= (5, 0):
        fix += f' (or GenericPrefetch("{eager.path}", [querysets]) to choose each type\'s queryset)'
    if eager.root.kind == FORWARD and "__" not in path and HAS_FETCH_MODES:
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


def _by_verb(shape: str) -> str:
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


def reshaped_fix(relation: Relation, callsite: Callsite | None, framework: Callsite | None) -> str:
    """Per-row .values()/.values_list() on a relation: a prefetch cannot serve it."""
    name = relation.name if relation.named else "the relation"
    fix = (
        f"each row runs .values()/.values_list() on {name}, which a "
        f"prefetch_related() cache never serves: prefetch it (ordered with a Prefetch "
        f"queryset if needed) and read the rows in Python, e.g. [t.name for t in "
        f"obj.{name}.all()]"
    )
    if callsite is None and framework is not None:
        fix += (
            f"; the framework code at {framework} does this, so prefetching does not help "
            "there: change the field that renders it, or ignore this finding"
        )
    return fix


# Framework functions that load rows one by one, and what to do instead: (module, function).
FRAMEWORK_ROW_LOADS = {
    ("wagtail.models.specific", "get_specific"): (
        "each page loads its specific page type with a query of its own (Wagtail's .specific): "
        "call .specific() on the Page queryset you loop over, which loads each page type "
        "with one query"
    ),
}


def suggest(
    relation: Relation | None,
    shape: str,
    eager: EagerPath | None = None,
    source: Source | None = None,
    framework: tuple[str | None, str] | None = None,
) -> str:
    """The fix for ``shape`` repeated row by row, loading ``relation`` when it is known.

    ``framework`` is the (module, function) of the framework code that ran the queries.
    """
    if framework is not None and framework in FRAMEWORK_ROW_LOADS:
        return FRAMEWORK_ROW_LOADS[framework]
    if relation is None:
        return _by_verb(shape)
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
    if relation.kind == PARENT_LINK:
        return (
            f"each {name} loads its parent row again through its parent link; the parent's "
            f"fields are already on the {name} instance: read them there"
        )
    if not relation.named:
        return _by_verb(shape)
    if relation.kind not in SINGLE_VALUED and (fix := _aggregate_fix(relation, shape)):
        return fix
    eager = eager or EagerPath(relation, relation.name, relation.kind in SINGLE_VALUED)
    if not _valid_path(eager.path) or (source and source.prefix and not _valid_path(source.prefix)):
        return _by_verb(shape)
    return eager_load(eager, source)
