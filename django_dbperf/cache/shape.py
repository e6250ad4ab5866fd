"""The shape of a query: what its SQL depends on, read without compiling it.

``query_shape(query)`` returns ``(shape, params)`` for the common querysets, or None: queries
of equal shape compile to the same SQL, so a cache compiles once per shape, not per lookup.
"""

from __future__ import annotations

import datetime
import enum
import uuid
import zoneinfo
from collections.abc import Hashable
from decimal import Decimal
from typing import Any, Final

from django.db import connections
from django.db.models import fields, lookups
from django.db.models.expressions import Col
from django.db.models.fields import related, related_lookups
from django.db.models.fields.reverse_related import ManyToOneRel, OneToOneRel
from django.db.models.sql.datastructures import BaseTable, Join
from django.db.models.sql.query import Query
from django.db.models.sql.where import WhereNode

__all__ = ["query_shape"]


class _Unsupported(Exception):
    """Something the shape cannot vouch for: the caller compiles the query instead."""


# How a vetted lookup's value reaches the SQL. Every other lookup class (custom, transforms,
# UUID text lookups that rewrite their rhs while compiling...) makes the query unsupported.
_SCALAR, _RAW, _IN, _RANGE, _ISNULL = 0, 1, 2, 3, 4
_LOOKUPS: Final[dict[type[Any], int]] = {
    **dict.fromkeys(
        (
            lookups.Exact,
            lookups.GreaterThan,
            lookups.GreaterThanOrEqual,
            lookups.LessThan,
            lookups.LessThanOrEqual,
            lookups.IntegerFieldExact,
            lookups.IntegerGreaterThan,
            lookups.IntegerGreaterThanOrEqual,
            lookups.IntegerLessThan,
            lookups.IntegerLessThanOrEqual,
            related_lookups.RelatedExact,
            related_lookups.RelatedLessThan,
            related_lookups.RelatedGreaterThan,
            related_lookups.RelatedGreaterThanOrEqual,
            related_lookups.RelatedLessThanOrEqual,
        ),
        _SCALAR,
    ),
    # Their value is not prepared by the field but turned into a str while compiling, where
    # equal values of other types can differ (Decimal("1.0") and Decimal("1.00")).
    **dict.fromkeys(
        (
            lookups.IExact,
            lookups.Contains,
            lookups.IContains,
            lookups.StartsWith,
            lookups.IStartsWith,
            lookups.EndsWith,
            lookups.IEndsWith,
            lookups.Regex,
            lookups.IRegex,
        ),
        _RAW,
    ),
    lookups.In: _IN,
    related_lookups.RelatedIn: _IN,
    lookups.Range: _RANGE,
    lookups.IsNull: _ISNULL,
    related_lookups.RelatedIsNull: _ISNULL,
}
# These drop the condition (Empty/FullResultSet) for an integer outside the column's range.
_OVERFLOW: Final = frozenset(c for c in _LOOKUPS if issubclass(c, lookups.IntegerFieldOverflow))
_LOOKUP_ATTRS: Final = frozenset(
    {"_constructor_args", "lhs", "rhs", "bilateral_transforms", "output_field", "is_summary"}
    | {"contains_aggregate", "contains_over_clause", "contains_column_references"}
)
_NODE_ATTRS: Final = frozenset(
    {"children", "connector", "negated", "resolved", "contains_aggregate", "contains_over_clause"}
)

# Fields whose lookups prepare values with Django's own code only (no custom
# get_db_prep_value() that could turn a value into SQL, nor lookups of their own).
_FIELDS: Final[frozenset[type[Any]]] = frozenset(
    {
        fields.AutoField,
        fields.BigAutoField,
        fields.SmallAutoField,
        fields.IntegerField,
        fields.BigIntegerField,
        fields.SmallIntegerField,
        fields.PositiveIntegerField,
        fields.PositiveBigIntegerField,
        fields.PositiveSmallIntegerField,
        fields.FloatField,
        fields.DecimalField,
        fields.BooleanField,
        fields.CharField,
        fields.TextField,
        fields.SlugField,
        fields.EmailField,
        fields.URLField,
        fields.DateField,
        fields.DateTimeField,
        fields.TimeField,
        fields.DurationField,
        fields.UUIDField,
    }
)
_RELATIONS: Final[frozenset[type[Any]]] = frozenset({related.ForeignKey, related.OneToOneField})
# Joins along these add nothing to the ON clause (a GenericRelation adds its content type).
_JOIN_FIELDS: Final[frozenset[type[Any]]] = _RELATIONS | {ManyToOneRel, OneToOneRel}

# Values whose SQL is a placeholder whatever the value: the shape keeps only their type.
_PLAIN: Final[frozenset[type[Any]]] = frozenset(
    {int, float, str, bytes, Decimal, datetime.date, datetime.time, datetime.timedelta, uuid.UUID}
)
_TZINFOS: Final[frozenset[type[Any]]] = frozenset({datetime.timezone, zoneinfo.ZoneInfo})

# Query attributes read below; every other attribute must keep its default value.
_READ: Final = frozenset(
    {
        "model",
        "alias_refcount",
        "alias_map",
        "table_map",
        "where",
        "select_related",
        "order_by",
        "default_ordering",
        "standard_ordering",
        "low_mark",
        "high_mark",
        "distinct",
        "distinct_fields",
        "deferred_loading",
        "default_cols",
        "select",
        "values_select",
        "selected",
        "annotation_select_mask",
        "extra_select_mask",
        "base_table",
    }
)
# Used only while filters are added, never by the compiler.
_IGNORED: Final = frozenset({"used_aliases", "filter_is_sticky", "_lookup_joins"})
_READ_OR_IGNORED: Final = _READ | _IGNORED
_MISSING: Final = object()


def _defaults() -> dict[str, object]:
    defaults = {
        name: value
        for name, value in vars(Query).items()
        if not name.startswith("__") and not callable(value) and not hasattr(value, "__get__")
    }
    defaults.update(vars(Query(None)))
    return defaults


_DEFAULTS: Final = _defaults()

# Models and fields go into shapes by id(): ids hash and compare in C, unlike fields.
_kept: dict[int, object] = {}
_vetted: dict[int, bool] = {}
# The integer range every configured database accepts, per internal type.
_ranges: dict[str, tuple[int | None, int | None]] = {}


def query_shape(query: Query) -> tuple[Hashable, tuple[object, ...]] | None:
    """``(shape, params)`` of a SELECT query, or None when it is not a shape this module knows.

    Two queries of the same shape compile (for one database alias) to the same SQL; with
    equal params too, to the same SQL params. Params are the lookup values in the WHERE
    clause, in order, each of a simple immutable type (lists become tuples).
    """
    if type(query) is not Query:
        return None
    try:
        return _shape(query)
    except _Unsupported:
        return None
    except Exception:  # e.g. an attribute missing: a state of the query this module never saw
        return None


def _shape(query: Query) -> tuple[Hashable, tuple[object, ...]]:
    attrs: dict[str, Any] = query.__dict__
    for name in attrs.keys() - _READ_OR_IGNORED:
        default = _DEFAULTS.get(name, _MISSING)
        value = attrs[name]
        if default is _MISSING or type(value) is not type(default) or value != default:
            raise _Unsupported(name)
    q: Any = query
    if q.model is None:
        raise _Unsupported("model")
    joins = _joins(q, attrs)
    params: list[object] = []
    where = _node(q.where, params)
    order_by = q.order_by
    if type(order_by) is not tuple:
        order_by = tuple(order_by)
    for name in order_by:
        # Random order is left to the caller's compile: one more reason not to keep its rows.
        if type(name) is not str or name == "?":
            raise _Unsupported("order_by")
    names, defer = q.deferred_loading
    if not _all_str(names):
        raise _Unsupported("deferred_loading")
    distinct_fields = q.distinct_fields
    if not _all_str(distinct_fields) or not _all_str(q.values_select):
        raise _Unsupported("distinct_fields")
    shape = (
        _token(q.model),
        joins,
        where,
        _related(q.select_related),
        order_by,
        q.default_ordering is True,
        q.standard_ordering is True,
        _int(q.low_mark),
        None if q.high_mark is None else _int(q.high_mark),
        q.distinct is True,
        tuple(distinct_fields),
        frozenset(names),
        defer is True,
        q.default_cols is True,
        _select(q.select),
        tuple(q.values_select),
        _selected(attrs.get("selected")),
        _mask(q.annotation_select_mask),
        _mask(q.extra_select_mask),
    )
    return shape, tuple(params)


def _token(obj: object) -> int:
    """A stable id for a model, field or join field (the object is kept: its id is never reused)."""
    key = id(obj)
    if key not in _kept:
        _kept[key] = obj
    return key


def _field_token(field: object) -> int:
    """The token of a field whose lookups this module knows how Django prepares."""
    key = _token(field)
    vetted = _vetted.get(key)
    if vetted is None:
        vetted = _vetted[key] = _plain_field(field)
    if not vetted:
        raise _Unsupported(repr(field))
    return key


def _plain_field(field: object) -> bool:
    kind = type(field)
    if kind in _RELATIONS:
        # A foreign key prepares values with the field it points to.
        return _plain_field(getattr(field, "target_field", None))
    return kind in _FIELDS


def _joins(q: Any, attrs: dict[str, Any]) -> tuple[object, ...]:
    alias_map: dict[str, Any] = q.alias_map
    refcount: dict[str, int] = q.alias_refcount
    if len(refcount) != len(alias_map):
        raise _Unsupported("alias_refcount")
    if "base_table" in attrs and (not alias_map or attrs["base_table"] != next(iter(alias_map))):
        raise _Unsupported("base_table")
    joins: list[object] = []
    for alias, table in alias_map.items():
        count = refcount.get(alias)
        if type(count) is not int or table.table_alias != alias:
            raise _Unsupported("alias_map")
        kind = type(table)
        if kind is BaseTable:
            joins.append((alias, table.table_name, count))
        elif (
            kind is Join
            and table.filtered_relation is None
            and type(table.join_field) in _JOIN_FIELDS
            and (type(table.join_field) in _RELATIONS or type(table.join_field.field) in _RELATIONS)
        ):
            joins.append(
                (
                    alias,
                    table.table_name,
                    table.parent_alias,
                    table.join_type,
                    _token(table.join_field),
                    table.nullable is True,
                    count,
                )
            )
        else:
            raise _Unsupported("alias_map")
    # New aliases (select_related, ordering joins) are named from the table map.
    tables = tuple((name, tuple(aliases)) for name, aliases in q.table_map.items())
    return tuple(joins), tables


def _node(node: Any, params: list[object]) -> tuple[object, ...]:
    attrs = node.__dict__
    # The cached flags are set by compiling; True would move conditions to HAVING or QUALIFY.
    if (
        type(node) is not WhereNode
        or not attrs.keys() <= _NODE_ATTRS
        or attrs.get("contains_aggregate", False) is not False
        or attrs.get("contains_over_clause", False) is not False
    ):
        raise _Unsupported("where")
    shape: list[object] = [node.connector, node.negated is True, node.resolved is True]
    for child in node.children:
        kind = type(child)
        # Anything but a node or a vetted lookup (NothingNode of none(), ExtraWhere, Exists...)
        # is unsupported.
        if kind is WhereNode:
            shape.append(_node(child, params))
        else:
            shape.append(_lookup(kind, child, params))
    return tuple(shape)


def _lookup(kind: type[Any], lookup: Any, params: list[object]) -> tuple[object, ...]:
    how = _LOOKUPS.get(kind)
    attrs = lookup.__dict__
    if how is None or not attrs.keys() <= _LOOKUP_ATTRS or lookup.bilateral_transforms:
        raise _Unsupported(kind.__name__)
    col = lookup.lhs
    if type(col) is not Col:
        raise _Unsupported("lhs")
    column = (col.alias, _token(col.target), _field_token(col.output_field))
    rhs = lookup.rhs
    if how == _SCALAR:
        shape, value = _value(rhs)
        if kind in _OVERFLOW and isinstance(rhs, int):
            _check_range(col.output_field, rhs)
        params.append(value)
    elif how == _RAW:
        shape = type(rhs)
        if shape is not str and shape is not int:
            raise _Unsupported("rhs")
        params.append(rhs)
    elif how == _ISNULL:
        if type(rhs) is not bool:
            raise _Unsupported("isnull")
        shape = rhs  # IS NULL or IS NOT NULL: the value is in the SQL
    else:
        if type(rhs) is not list and type(rhs) is not tuple:
            raise _Unsupported("rhs")
        kinds = tuple(map(type, rhs))
        if _PLAIN.issuperset(kinds) and datetime.time not in kinds:
            shape, value = kinds, tuple(rhs)  # the common case, without a call per value
        else:
            pairs = [_value(item) for item in rhs]
            shape, value = tuple(pair[0] for pair in pairs), tuple(pair[1] for pair in pairs)
        if how == _IN:
            # One placeholder per distinct value besides None, as In.process_rhs() counts.
            try:
                distinct = len(set(rhs) - {None})
            except TypeError:
                raise _Unsupported("in") from None
            shape = (shape, distinct)
        elif len(rhs) != 2:
            raise _Unsupported("range")
        params.append(value)
    return kind, column, shape


def _value(value: object) -> tuple[object, object]:
    """(shape, param) of one lookup value: the shape is its type, or the value itself for
    True, False and None, which some lookups write into the SQL."""
    kind = type(value)
    if kind in _PLAIN:
        # An aware time equals times of other offsets, which a time column tells apart.
        if kind is not datetime.time or value.tzinfo is None:  # type: ignore[attr-defined]
            return kind, value
        raise _Unsupported("aware time")
    if value is None or kind is bool:
        return value, value
    if kind is datetime.datetime:
        tzinfo = value.tzinfo  # type: ignore[attr-defined]
        if tzinfo is None:
            return kind, value
        if type(tzinfo) in _TZINFOS:
            # Aware datetimes of one zone compare by wall time, fold ignored: equal ones of
            # other zones or folds can be other instants, or format with other offsets.
            return (kind, tzinfo, value.fold), value  # type: ignore[attr-defined]
    elif isinstance(value, enum.Enum):
        # A str or int choice is that str or int to the database driver.
        base = value._value_
        if type(base) is str and isinstance(value, str) and str.__eq__(value, base) is True:
            return kind, base
        if type(base) is int and isinstance(value, int) and int.__eq__(value, base) is True:
            return kind, base
    raise _Unsupported(kind.__name__)


def _check_range(field: Any, value: int) -> None:
    internal_type = field.get_internal_type()
    bounds = _ranges.get(internal_type)
    if bounds is None:
        bounds = _ranges[internal_type] = _common_range(internal_type)
    low, high = bounds
    if (low is not None and value < low) or (high is not None and value > high):
        raise _Unsupported("integer out of range")


def _common_range(internal_type: str) -> tuple[int | None, int | None]:
    """The range all configured databases accept: inside it no backend drops the condition."""
    low: int | None = None
    high: int | None = None
    try:
        for alias in connections:
            lo, hi = connections[alias].ops.integer_field_range(internal_type)
            low = lo if low is None else low if lo is None else max(low, lo)
            high = hi if high is None else high if hi is None else min(high, hi)
    except Exception:
        # Unknown to some backend: an empty range sends every value to the compiler.
        return 1, 0
    return low, high


def _int(value: object) -> int:
    if type(value) is not int:
        raise _Unsupported("slice")
    return value


def _all_str(values: Any) -> bool:
    return all(type(value) is str for value in values)


def _related(value: Any) -> object:
    """select_related: False, True (every non-null foreign key) or nested names."""
    if value is False or value is True:
        return value
    return _nested(value)


def _nested(value: Any) -> object:
    if type(value) is not dict:
        raise _Unsupported("select_related")
    items = []
    for name, inner in value.items():
        if type(name) is not str:
            raise _Unsupported("select_related")
        items.append((name, _nested(inner)))
    return tuple(items)


def _select(columns: Any) -> tuple[object, ...]:
    """values() and values_list() columns."""
    shape = []
    for col in columns:
        if type(col) is not Col:
            raise _Unsupported("select")
        shape.append((col.alias, _token(col.target), _token(col.output_field)))
    return tuple(shape)


def _selected(selected: Any) -> object:
    if selected is None:
        return None
    if type(selected) is not dict:
        raise _Unsupported("selected")
    # Positions in select; names of annotations or expressions are left to the compiler.
    for name, position in selected.items():
        if type(name) is not str or type(position) is not int:
            raise _Unsupported("selected")
    return tuple(selected.items())


def _mask(mask: Any) -> object:
    if mask is None:
        return None
    if not _all_str(mask):
        raise _Unsupported("mask")
    return frozenset(mask)
