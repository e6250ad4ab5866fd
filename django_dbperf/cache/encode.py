"""The canonical text of a cache key's values: equal text only for values the database sees as
the same parameter.

Never ``repr()`` or ``str()``: psycopg's ``Jsonb``/``Binary`` abbreviate long values in their
repr, a ``memoryview`` prints its address, a model instance prints whatever ``__str__`` says.
Each value is written with a type tag and, where its length varies, a length prefix, so no two
sequences of values share a text. Types are matched exactly (a subclass may compare or adapt
differently); a value of any other type raises ``Unencodable`` and the read bypasses the cache.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
import zoneinfo
from collections.abc import Callable
from typing import Any

__all__ = ["Unencodable", "encode", "encode_all"]


class Unencodable(Exception):
    """A value whose identity cannot be written exactly: the read is served uncached."""


def _tz(tzinfo: Any) -> str:
    if tzinfo is None:
        return "-"
    if type(tzinfo) is zoneinfo.ZoneInfo and tzinfo.key is not None:
        return "z" + tzinfo.key
    if type(tzinfo) is datetime.timezone:
        offset = tzinfo.utcoffset(None)
        return f"o{offset.days}:{offset.seconds}:{offset.microseconds}:{tzinfo.tzname(None)}"
    raise Unencodable(f"a time zone of type {type(tzinfo).__qualname__}")


def _text(tag: str, text: str) -> str:
    return f"{tag}{len(text)}:{text}"


def _datetime(value: datetime.datetime) -> str:
    zone = _tz(value.tzinfo)  # first: an unknown tzinfo may not even format
    return f"t{value.isoformat()}|{value.fold}|{zone};"


def _time(value: datetime.time) -> str:
    zone = _tz(value.tzinfo)
    return f"h{value.isoformat()}|{value.fold}|{zone};"


def _list(values: list[Any]) -> str:
    return f"l{len(values)}[" + "".join(map(encode, values)) + "]"


def _tuple(values: tuple[Any, ...]) -> str:
    return f"p{len(values)}[" + "".join(map(encode, values)) + "]"


def _json_wrapper(value: Any) -> str:
    """psycopg's ``Json``/``Jsonb``: the exact text its dumps function sends."""
    dumps = value.dumps
    if dumps is None:
        # psycopg's global default, which a project may replace: not known here.
        raise Unencodable("a Json value without its dumps function")
    dumped = dumps(value.obj)
    if type(dumped) is bytes:
        dumped = dumped.decode()
    if type(dumped) is not str:
        raise Unencodable("a Json value dumped to neither str nor bytes")
    return _text(f"J{type(value).__name__}", dumped)


def _binary_wrapper(value: Any) -> str:
    return "B" + encode(value.obj)


def _range(value: Any) -> str:
    # Ranges of one kind (NumericRange, DateTimeTZRange...) share the class psycopg adapts.
    return "".join(
        (
            _text("R", f"{type(value).__module__}.{type(value).__qualname__}"),
            encode(value.lower),
            encode(value.upper),
            _text("", value.bounds or ""),
            "E" if value.isempty else "",
            ";",
        )
    )


_ENCODERS: dict[type[Any], Callable[[Any], str]] = {
    type(None): lambda value: "N",
    bool: lambda value: "T" if value else "F",
    int: lambda value: f"i{value};",
    float: lambda value: f"f{value.hex()};",  # exact; -0.0 and 0.0 differ (only a miss)
    str: lambda value: _text("s", value),
    bytes: lambda value: _text("b", value.hex()),
    bytearray: lambda value: _text("b", value.hex()),
    memoryview: lambda value: _text("b", value.tobytes().hex()),
    # str() keeps the exponent: Decimal("1.0") and Decimal("1.00") stay apart.
    decimal.Decimal: lambda value: _text("d", str(value)),
    datetime.date: lambda value: f"D{value.isoformat()};",
    datetime.datetime: _datetime,
    datetime.time: _time,
    datetime.timedelta: lambda value: f"e{value.days}:{value.seconds}:{value.microseconds};",
    uuid.UUID: lambda value: f"u{value.hex};",
    list: _list,
    tuple: _tuple,
}


def _register_psycopg() -> None:
    try:
        from psycopg import Binary
        from psycopg.types.json import Json, Jsonb
        from psycopg.types.range import Range
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return
    _ENCODERS[Json] = _json_wrapper
    _ENCODERS[Jsonb] = _json_wrapper
    _ENCODERS[Binary] = _binary_wrapper
    _ENCODERS[Range] = _range
    # int and float subclasses that pick the SQL type sent (Django uses Int4 for some values).
    from psycopg.types import numeric

    for name in ("Int2", "Int4", "Int8", "IntNumeric", "Oid"):
        kind = getattr(numeric, name, None)
        if isinstance(kind, type):
            _ENCODERS[kind] = lambda value: f"i{type(value).__name__}{int(value)};"
    for name in ("Float4", "Float8"):
        kind = getattr(numeric, name, None)
        if isinstance(kind, type):
            _ENCODERS[kind] = lambda value: f"f{type(value).__name__}{float(value).hex()};"
    # Django's range fields use these subclasses; each adapts like Range.
    from psycopg.types import range as ranges

    for name in ("Int4Range", "Int8Range", "NumericRange", "DateRange", "TimestampRange"):
        kind = getattr(ranges, name, None)
        if isinstance(kind, type):
            _ENCODERS[kind] = _range
    try:
        from django.db.backends.postgresql import psycopg_any

        for name in ("NumericRange", "DateRange", "DateTimeRange", "DateTimeTZRange"):
            kind = getattr(psycopg_any, name, None)
            if isinstance(kind, type):
                _ENCODERS[kind] = _range
    except ImportError:  # pragma: no cover
        pass


_register_psycopg()


def encode(value: object) -> str:
    """The canonical text of one parameter value; raises ``Unencodable`` for other types."""
    encoder = _ENCODERS.get(type(value))
    if encoder is not None:
        return encoder(value)
    if isinstance(value, enum.Enum):
        # The class and member name too: a plain Enum is adapted by name, a str or int
        # choice by its value.
        kind = type(value)
        return _text("n", f"{kind.__module__}.{kind.__qualname__}.{value.name}") + encode(
            value._value_
        )
    raise Unencodable(f"a parameter of type {type(value).__module__}.{type(value).__qualname__}")


def encode_all(values: Any) -> str:
    """The canonical text of a sequence of values (a statement's parameters)."""
    if type(values) is dict:
        # Named parameters (raw SQL with %(name)s): their names are part of the identity.
        if any(type(name) is not str for name in values):
            raise Unencodable("a parameter name that is not a str")
        return "m[" + "".join(_text("k", k) + encode(v) for k, v in values.items()) + "]"
    return "a" + _tuple(tuple(values))
