from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_dbperf.capture import fingerprint


@pytest.mark.parametrize(
    ("sql", "shape"),
    [
        (
            'SELECT "a"."id" FROM "a" WHERE "a"."id" = %s',
            'SELECT "a"."id" FROM "a" WHERE "a"."id" = ?',
        ),
        ("SELECT * FROM t WHERE x = 42 AND y = 'it''s'", "SELECT * FROM t WHERE x = ? AND y = ?"),
        ("SELECT * FROM t WHERE x IN (%s, %s, %s)", "SELECT * FROM t WHERE x IN (...)"),
        ("SELECT * FROM t WHERE x IN (%s)", "SELECT * FROM t WHERE x IN (...)"),
        ("SELECT  *\n  FROM t\tLIMIT 21", "SELECT * FROM t LIMIT ?"),
        (
            "INSERT INTO t (a, b) VALUES (%s, %s), (%s, %s)",
            "INSERT INTO t (a, b) VALUES (?, ?), ...",
        ),
        ("SELECT * FROM t WHERE x = $1 AND y = %(name)s", "SELECT * FROM t WHERE x = ? AND y = ?"),
        ('SELECT "col2", "t1"."x3" FROM "t1"', 'SELECT "col2", "t1"."x3" FROM "t1"'),
    ],
)
def test_normalisation(sql: str, shape: str) -> None:
    assert fingerprint(sql) == shape


def test_bulk_inserts_of_any_size_share_a_shape() -> None:
    def insert(rows: int) -> str:
        return "INSERT INTO t (a) VALUES " + ", ".join(["(%s)"] * rows)

    assert fingerprint(insert(1)) == fingerprint(insert(3)) == fingerprint(insert(300))


@given(st.lists(st.integers(), min_size=1, max_size=50), st.integers(), st.text(max_size=20))
def test_values_never_change_the_shape(ids: list[int], number: int, text: str) -> None:
    escaped = text.replace("'", "''")
    id_list = ", ".join(map(str, ids))
    sql = f"SELECT * FROM t WHERE id IN ({id_list}) AND n = {number} AND s = '{escaped}'"
    assert fingerprint(sql) == "SELECT * FROM t WHERE id IN (...) AND n = ? AND s = ?"


def test_different_statements_keep_different_shapes() -> None:
    assert fingerprint("SELECT a FROM t WHERE x = 1") != fingerprint("SELECT b FROM t WHERE x = 1")
