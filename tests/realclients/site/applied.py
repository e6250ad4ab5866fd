"""The eager loads django_dbperf printed for a page, applied to that page's queryset as printed.

``APPLIED`` maps a page key (the naive page's id: "site-blog-index", "drf-list",
"admin-changelist", "api-pages") to the call texts a finding's fix names, such as
``.select_related("writer__publisher")`` or
``.prefetch_related("authors__author", for_specific_subqueries=True)``. The "applied" variants
of those pages pass their queryset through ``apply_fixes()``; the suite fills the registry from
what the naive page printed, then counts the queries of the applied page.

A text is parsed with ``ast``, never evaluated: only ``select_related`` and ``prefetch_related``
with string constants as arguments and constants as keyword values are accepted.
"""

from __future__ import annotations

import ast
from typing import Any

from django.db.models import QuerySet

APPLIED: dict[str, list[str]] = {}

METHODS = frozenset({"select_related", "prefetch_related"})


def parse_call(text: str) -> tuple[str, tuple[str, ...], dict[str, object]]:
    """``.method("a", "b", key=value)`` as ``(method, args, kwargs)``; ValueError otherwise."""
    if not text.startswith("."):
        raise ValueError(f"not a method call on a queryset: {text!r}")
    try:
        tree = ast.parse(f"queryset{text}", mode="eval")
    except SyntaxError as error:
        raise ValueError(f"not Python: {text!r}") from error
    call = tree.body
    if not (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and isinstance(call.func.value, ast.Name)
        and call.func.value.id == "queryset"
        and call.func.attr in METHODS
    ):
        raise ValueError(f"not a single .select_related() or .prefetch_related() call: {text!r}")
    args = []
    for arg in call.args:
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            raise ValueError(f"an argument is not a string constant: {text!r}")
        args.append(arg.value)
    kwargs: dict[str, object] = {}
    for keyword in call.keywords:
        if keyword.arg is None or not isinstance(keyword.value, ast.Constant):
            raise ValueError(f"a keyword argument is not a constant: {text!r}")
        kwargs[keyword.arg] = keyword.value.value
    return call.func.attr, tuple(args), kwargs


def apply_fixes[Q: QuerySet[Any]](queryset: Q, key: str) -> Q:
    """The queryset with every call registered under ``key`` applied, in order."""
    for text in APPLIED.get(key, []):
        method, args, kwargs = parse_call(text)
        queryset = getattr(queryset, method)(*args, **kwargs)
    return queryset
