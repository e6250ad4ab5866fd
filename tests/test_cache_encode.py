"""Cache keys' values: one text per parameter the database sees, never repr() or str().

The property test is the one that would have caught the whole class of repr()-keyed bugs: two
values share a text only when they are the same parameter (same type, equal, and for Decimal
the same exponent), whatever their repr() says.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
import zoneinfo
from typing import Any

import pytest
from django.db.models import TextChoices
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import Binary
from psycopg.types.json import Jsonb

from django_dbperf.cache.encode import Unencodable, encode, encode_all

ZONES = [zoneinfo.ZoneInfo("Europe/Paris"), zoneinfo.ZoneInfo("America/New_York")]
OFFSETS = [datetime.UTC, datetime.timezone(datetime.timedelta(hours=2))]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=80),
    st.binary(max_size=80),
    st.decimals(allow_nan=False, allow_infinity=False, places=None),
    st.dates(),
    st.datetimes(timezones=st.sampled_from([None, *ZONES, *OFFSETS])),
    st.times(timezones=st.sampled_from([None, *OFFSETS])),
    st.timedeltas(),
    st.uuids(),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4), max_leaves=8)


def same_parameter(a: Any, b: Any) -> bool:
    """Whether a database receiving ``a`` or ``b`` receives the same value."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same_parameter, a, b))
    if isinstance(a, decimal.Decimal):
        return a.as_tuple() == b.as_tuple()
    if isinstance(a, float):
        return a.hex() == b.hex()
    if isinstance(a, datetime.datetime | datetime.time):
        return (
            a == b and a.tzinfo == b.tzinfo and a.fold == b.fold and a.isoformat() == b.isoformat()
        )
    return bool(a == b)


@settings(max_examples=400, derandomize=True)
@given(values, values)
def test_equal_text_only_for_the_same_parameter(a: Any, b: Any) -> None:
    assert (encode(a) == encode(b)) == same_parameter(a, b)


@settings(max_examples=200, derandomize=True)
@given(st.lists(values, max_size=4), st.lists(values, max_size=4))
def test_parameter_lists_never_run_together(a: list[Any], b: list[Any]) -> None:
    # Length prefixes: ["ab", "c"] and ["a", "bc"] are different statements' parameters.
    assert (encode_all(a) == encode_all(b)) == same_parameter(a, b)


def test_long_json_values_differing_late_are_distinct() -> None:
    # psycopg's repr() of both is "Jsonb({'text': 'xxxxxxxxxxxxxxxxxxxxxxx ... (63 chars)".
    first = Jsonb({"text": "x" * 50 + "a"}, dumps=__import__("json").dumps)
    second = Jsonb({"text": "x" * 50 + "b"}, dumps=__import__("json").dumps)
    assert repr(first) == repr(second)
    assert encode(first) != encode(second)


def test_json_without_its_dumps_function_is_not_keyed() -> None:
    with pytest.raises(Unencodable):
        encode(Jsonb({"a": 1}))


def test_binary_values_are_keyed_by_their_bytes() -> None:
    first, second = memoryview(b"\x00" * 40 + b"a"), memoryview(b"\x00" * 40 + b"b")
    assert encode(first) != encode(second)
    assert encode(memoryview(b"same")) == encode(memoryview(bytearray(b"same")))
    assert encode(Binary(b"x" * 60 + b"1")) != encode(Binary(b"x" * 60 + b"2"))


def test_decimals_keep_their_exponent() -> None:
    assert encode(decimal.Decimal("1.0")) != encode(decimal.Decimal("1.00"))


def test_aware_datetimes_keep_their_zone() -> None:
    paris = datetime.datetime(2026, 3, 1, 12, tzinfo=ZONES[0])
    assert encode(paris) != encode(paris.astimezone(datetime.UTC))
    assert encode(paris) != encode(paris.replace(tzinfo=None))


class Colour(TextChoices):
    RED = "r"


class Plain(enum.Enum):
    RED = "r"


def test_enums_are_keyed_by_class_and_member() -> None:
    assert encode(Colour.RED) != encode(Plain.RED)
    assert encode(Colour.RED) == encode(Colour("r"))


class Opaque:
    def __repr__(self) -> str:
        return "'same'"


@pytest.mark.parametrize(
    "value",
    [Opaque(), {"a": 1}, {1, 2}, object(), datetime.datetime(2026, 1, 1, tzinfo=datetime.tzinfo())],
    ids=["custom-class", "dict", "set", "object", "unknown-tzinfo"],
)
def test_values_of_unknown_types_are_refused(value: object) -> None:
    with pytest.raises(Unencodable):
        encode(value)


def test_uuids_and_strings_do_not_collide() -> None:
    value = uuid.uuid4()
    assert encode(value) != encode(str(value)) != encode(value.hex)


def test_psycopg_numeric_wrappers_keep_their_sql_type() -> None:
    from psycopg.types.numeric import Float8, Int4, Int8

    assert encode(Int4(1)) != encode(Int8(1)) != encode(1)
    assert encode(Int4(1)) == encode(Int4(1)) != encode(Int4(2))
    assert encode(Float8(0.5)) != encode(0.5)
