"""Parameter redaction (``django_dbperf.stats.redact``).

The SQL is what ``connection.execute_wrapper`` receives from real querysets on this run's backend
(SQLite, or PostgreSQL in the server pass), plus hand-written raw SQL. Every sensitive value the
tests bind contains ``SECRET``, so "nothing sensitive leaked" is one substring check.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Lower
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_dbperf.stats.redact import (
    DEFAULT_REDACT_COLUMNS,
    REDACTED,
    placeholder_columns,
    redact_params,
)
from tests.testapp.models import Author, Book, DiffColor, DiffLevel

PATTERNS = DEFAULT_REDACT_COLUMNS
Statement = tuple[str, Sequence[object]]


@contextmanager
def captured() -> Iterator[list[Statement]]:
    """The (sql, params) of every statement run inside, as the database wrapper sees them."""
    statements: list[Statement] = []

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, *args: Any) -> Any:
        if params is not None:  # BEGIN, SAVEPOINT...
            statements.append((sql, params))
        return execute(sql, params, *args)

    with connection.execute_wrapper(wrapper):
        yield statements


def run(action: Callable[[], object], verb: str = "SELECT") -> Statement:
    """The one statement starting with ``verb`` that ``action`` runs."""
    with captured() as statements:
        action()
    found = [(sql, params) for sql, params in statements if sql.startswith(verb)]
    assert len(found) == 1, statements
    return found[0]


def redacted(statement: Statement) -> list[object]:
    sql, params = statement
    result = redact_params(sql, params, PATTERNS)
    assert result is not None
    assert len(result) == len(params)
    json.dumps(result, allow_nan=False)  # JSON-safe
    return result


def dumped(statement: Statement) -> str:
    return json.dumps(redacted(statement))


def make_user(username: str = "alice") -> User:
    return User.objects.create(
        username=username, email=f"{username}-SECRET@example.com", password="SECRET-hash"
    )


# --- Real Django SQL ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_filter_masks_email_and_password_and_keeps_username() -> None:
    statement = run(
        lambda: list(
            User.objects.filter(email="SECRET@example.com", password="SECRET-hash", username="bob")
        )
    )
    assert placeholder_columns(statement[0]) == ["email", "password", "username"]
    assert redacted(statement) == [REDACTED, REDACTED, "bob"]


@pytest.mark.django_db
@pytest.mark.parametrize("lookup", ["iexact", "contains", "icontains", "startswith", "iendswith"])
def test_case_and_pattern_lookups_keep_their_column(lookup: str) -> None:
    """PostgreSQL: ``UPPER("auth_user"."email"::text) LIKE UPPER(%s)``; SQLite: ``"auth_user".
    "email" LIKE %s ESCAPE '\\'``."""
    statement = run(
        lambda: list(
            User.objects.filter(**{f"email__{lookup}": "SECRET@x", f"username__{lookup}": "bo"})
        )
    )
    assert placeholder_columns(statement[0]) == ["email", "username"]
    result = redacted(statement)
    assert result[0] == REDACTED
    assert isinstance(result[1], str) and "bo" in result[1].lower()


@pytest.mark.django_db
def test_in_lists_and_ranges_give_every_placeholder_the_column() -> None:
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    statement = run(
        lambda: list(
            User.objects.filter(email__in=["a-SECRET@x", "b-SECRET@x"])
            .filter(id__in=[7, 8, 9])
            .filter(date_joined__range=(start, start + datetime.timedelta(days=1)))
        )
    )
    assert placeholder_columns(statement[0]) == ["email"] * 2 + ["id"] * 3 + ["date_joined"] * 2
    result = redacted(statement)
    assert result[:5] == [REDACTED, REDACTED, 7, 8, 9]
    assert all(isinstance(value, str) and value.startswith("2020-01-0") for value in result[5:])


@pytest.mark.django_db
def test_long_in_lists() -> None:
    statement = run(lambda: list(User.objects.filter(id__in=range(5000), username="bob")))
    assert placeholder_columns(statement[0]) == ["id"] * 5000 + ["username"]
    assert redacted(statement) == [*range(5000), "bob"]


@pytest.mark.django_db
def test_negations_and_comparisons() -> None:
    moment = datetime.datetime(2021, 5, 1, tzinfo=datetime.UTC)
    statement = run(
        lambda: list(
            User.objects.exclude(password="SECRET-hash").filter(
                Q(last_login__gt=moment) | Q(id__lte=3) | ~Q(first_name="Ann")
            )
        )
    )
    assert placeholder_columns(statement[0]) == ["password", "last_login", "id", "first_name"]
    result = redacted(statement)
    assert result[0] == REDACTED
    assert result[2:] == [3, "Ann"]
    assert "SECRET" not in dumped(statement)


@pytest.mark.django_db
def test_create_inserts_by_the_column_list() -> None:
    statement = run(make_user, "INSERT")
    columns = placeholder_columns(statement[0])
    assert None not in columns
    result = dict(zip(columns, redacted(statement), strict=True))
    assert result["password"] == result["email"] == REDACTED
    assert result["username"] == "alice"
    assert result["is_active"] is True


@pytest.mark.django_db
def test_bulk_create_maps_every_row() -> None:
    """SQLite: ``VALUES (%s, ...), (%s, ...)``; PostgreSQL: ``SELECT * FROM UNNEST((%s)::varchar[],
    ...)`` with one list per column."""
    users = [User(username=f"bulk{n}", email=f"{n}SECRET@x", password="SECRET") for n in range(3)]
    statement = run(lambda: User.objects.bulk_create(users), "INSERT")
    assert None not in placeholder_columns(statement[0])
    text = dumped(statement)
    assert "SECRET" not in text
    assert all(f"bulk{n}" in text for n in range(3))


@pytest.mark.django_db
def test_create_with_a_foreign_key_keeps_it() -> None:
    author = Author.objects.create(name="Ann", email="ann-SECRET@x")
    statement = run(lambda: Book.objects.create(title="Dune", pages=412, author=author), "INSERT")
    result = dict(zip(placeholder_columns(statement[0]), redacted(statement), strict=True))
    assert result == {
        "title": "Dune",
        "summary": "",
        "published": None,
        "pages": 412,
        "author_id": author.pk,
        "publisher_id": None,
    }


@pytest.mark.django_db
def test_update_and_save_assign_by_the_set_list() -> None:
    user = make_user()
    update = run(
        lambda: User.objects.filter(username="alice").update(email="new-SECRET@x", first_name="A"),
        "UPDATE",
    )
    assert placeholder_columns(update[0]) == ["email", "first_name", "username"]
    assert redacted(update) == [REDACTED, "A", "alice"]

    user.last_name = "Smith"
    save = run(user.save, "UPDATE")
    result = dict(zip(placeholder_columns(save[0]), redacted(save), strict=True))
    assert result["password"] == result["email"] == REDACTED
    assert result["last_name"] == "Smith"
    assert result["id"] == user.pk


@pytest.mark.django_db
def test_slicing_is_inlined_by_django() -> None:
    """Django writes LIMIT/OFFSET as numbers, not placeholders: nothing to keep or mask."""
    statement = run(lambda: list(User.objects.filter(username="bob")[5:10]))
    assert "LIMIT 5 OFFSET 5" in statement[0]
    assert placeholder_columns(statement[0]) == ["username"]
    assert redacted(statement) == ["bob"]


@pytest.mark.django_db
def test_bulk_update_case_values_are_masked_and_ids_kept() -> None:
    """``SET "email" = CASE WHEN ("auth_user"."id" = %s) THEN %s ...``: a THEN value's column is
    not the one it is compared with."""
    users = [make_user("u1"), make_user("u2")]
    for user in users:
        user.email = f"changed-{user.username}-SECRET@x"
    statement = run(lambda: User.objects.bulk_update(users, ["email"]), "UPDATE")
    columns = placeholder_columns(statement[0])
    assert columns == ["id", None, "id", None, "id", "id"]
    result = redacted(statement)
    kept = [value for value in result if value != REDACTED]
    assert sorted(kept, key=str) == sorted([users[0].pk, users[1].pk] * 2, key=str)
    assert "SECRET" not in dumped(statement)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "action",
    [
        lambda: User.objects.filter(username="bob").exists(),  # SELECT %s AS "a" ... LIMIT 1
        lambda: list(User.objects.annotate(v=Value("bob")).filter(pk=1)),  # %s AS "v"
        lambda: list(User.objects.filter(date_joined__date=datetime.date(2020, 1, 1))),
    ],
    ids=["exists", "annotated-value", "date-function"],
)
def test_values_of_unknown_columns_are_masked(action: Callable[[], object]) -> None:
    statement = run(action)
    assert None in placeholder_columns(statement[0])
    result = redacted(statement)
    assert REDACTED in result
    assert all(
        value == REDACTED
        for value, column in zip(result, placeholder_columns(statement[0]), strict=True)
        if column is None
    )


@pytest.mark.django_db
def test_lowered_column_compared() -> None:
    statement = run(
        lambda: list(User.objects.annotate(low=Lower("email")).filter(low="SECRET@x", pk=4))
    )
    assert placeholder_columns(statement[0]) == ["email", "id"]
    assert redacted(statement) == [REDACTED, 4]


@pytest.mark.django_db
def test_session_rows_are_masked() -> None:
    """django.contrib.sessions: ``session_key`` and ``session_data`` match ``*session*``."""
    store = SessionStore()
    store["user"] = "SECRET"
    with captured() as statements:
        store.save()
        SessionStore(session_key=store.session_key).load()
    key = store.session_key
    assert statements and key
    assert all(key not in dumped(statement) for statement in statements)
    assert all("SECRET" not in dumped(statement) for statement in statements)


# --- Every statement, counted ------------------------------------------------------------------

ACTIONS: list[Callable[[], object]] = [
    lambda: make_user("bob"),
    lambda: User.objects.create_user("carol", "carol-SECRET@x", "SECRET-pw"),
    lambda: User.objects.get_or_create(username="dave", defaults={"email": "dave-SECRET@x"}),
    lambda: User.objects.update_or_create(username="dave", defaults={"email": "d2-SECRET@x"}),
    lambda: list(User.objects.filter(email__iregex="^SECRET", is_staff=False).order_by("-id")),
    lambda: list(User.objects.filter(groups__name="admins", email__isnull=False).distinct()),
    lambda: list(User.objects.filter(last_login__year=2020).values_list("email", flat=True)),
    lambda: User.objects.filter(email__endswith="SECRET@x").count(),
    lambda: list(Book.objects.select_related("author").filter(author__email="SECRET@x")),
    lambda: list(Author.objects.prefetch_related("books").filter(name__in=["Ann", "Bob"])),
    lambda: Author.objects.create(name="Cy", email="cy-SECRET@x").books.create(title="T"),
    lambda: User.objects.filter(email__startswith="bob").delete(),
    lambda: User.objects.filter(password="SECRET").update(is_active=False),
]


@pytest.mark.django_db
def test_every_captured_statement_has_its_params_counted() -> None:
    with captured() as statements:
        for action in ACTIONS:
            action()
    assert len(statements) >= len(ACTIONS)
    for sql, params in statements:
        assert len(placeholder_columns(sql)) == len(params), sql
        assert "SECRET" not in dumped((sql, params)), sql


STRINGS = ["exact", "iexact", "contains", "icontains", "startswith", "iendswith", "regex", "gt"]
# (model, field path, lookups, values): the sensitive fields' values all hold SECRET.
FIELDS: list[tuple[type[Any], str, list[str], st.SearchStrategy[Any]]] = [
    (User, "email", [*STRINGS, "in", "range"], st.text(max_size=5).map("SECRET{}".format)),
    (User, "password", [*STRINGS, "in"], st.just("SECRET")),
    (User, "username", STRINGS, st.text(max_size=5)),
    (User, "id", ["exact", "in", "lt", "gte", "range"], st.integers(0, 10**6)),
    (User, "is_staff", ["exact"], st.booleans()),
    (User, "date_joined", ["exact", "gt", "range", "year", "date"], st.datetimes(
        min_value=datetime.datetime(2000, 1, 1), timezones=st.just(datetime.UTC))),
    (Book, "author__email", ["exact", "iexact", "in"], st.just("SECRET@x")),
    (Book, "title", STRINGS, st.text(max_size=5)),
    (Book, "pages", ["exact", "lte", "in"], st.integers(0, 5000)),
    (Book, "tags__name", ["exact", "icontains"], st.text(max_size=5)),
]  # fmt: skip


@st.composite
def querysets(draw: st.DrawFn) -> QuerySet[Any]:
    model = draw(st.sampled_from([User, Book]))
    fields = [field for field in FIELDS if field[0] is model]
    condition = Q()
    for _ in range(draw(st.integers(1, 4))):
        _, path, lookups, values = draw(st.sampled_from(fields))
        lookup = draw(st.sampled_from(lookups))
        if lookup in ("in", "range"):
            value: Any = draw(st.lists(values, min_size=2, max_size=2 if lookup == "range" else 4))
        else:
            value = draw(values)
        if lookup == "date":
            value = value.date()
        elif lookup == "year":
            value = value.year
        term = Q(**{f"{path}__{lookup}": value})
        term = ~term if draw(st.booleans()) else term
        condition = (condition | term) if draw(st.booleans()) else (condition & term)
    queryset = model._default_manager.filter(condition)
    if draw(st.booleans()):
        queryset = queryset[: draw(st.integers(1, 5))]
    return queryset


@pytest.mark.django_db
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(querysets())
def test_generated_querysets_count_and_mask(queryset: QuerySet[Any]) -> None:
    sql, params = queryset.query.get_compiler(using="default").as_sql()
    assert len(placeholder_columns(sql)) == len(params), sql
    assert "SECRET" not in dumped((sql, params)), sql


# --- Raw SQL -----------------------------------------------------------------------------------

RAW = [
    ('SELECT * FROM "t" WHERE "t"."name" <> %s AND "t"."a" != %s', ["name", "a"]),
    ("SELECT * FROM t WHERE a < %s AND b <= %s AND c > %s AND d >= %s", ["a", "b", "c", "d"]),
    ("SELECT * FROM t WHERE a NOT LIKE %s OR b ILIKE %s OR c NOT ILIKE %s", ["a", "b", "c"]),
    ("SELECT * FROM t WHERE a IS DISTINCT FROM %s AND b IS NOT DISTINCT FROM %s", ["a", "b"]),
    ("SELECT * FROM t WHERE x NOT IN (%s, %s) AND y NOT BETWEEN %s AND %s", ["x"] * 2 + ["y"] * 2),
    ('SELECT * FROM "public"."auth_user" WHERE "public"."auth_user"."Email" = %s', ["Email"]),
    ('SELECT * FROM t WHERE "we""ird" = %s AND `back` = %s', ['we"ird', "back"]),
    ("UPDATE users SET password = %s, name = %s WHERE id = %s", ["password", "name", "id"]),
    ("SELECT * FROM t ORDER BY id LIMIT %s OFFSET %s", ["LIMIT", "OFFSET"]),
    ("SELECT 1 WHERE d = %s::date AND e = ANY(%s::int[]) AND f = %s::int[]", ["d", None, "f"]),
    # PostgreSQL's forms, checked on every backend (the server pass runs them for real too).
    (
        'SELECT 1 FROM "u" WHERE UPPER("u"."email"::text) = UPPER(%s) AND "u"."n"::text LIKE %s',
        ["email", "n"],
    ),
    (
        'INSERT INTO "u" ("a", "b") SELECT * FROM UNNEST((%s)::varchar[], '
        '(%s)::timestamp with time zone[]) RETURNING "u"."id"',
        ["a", "b"],
    ),
    (
        'UPDATE "u" SET "email" = (CASE WHEN ("u"."id" = %s) THEN %s ELSE NULL END)::varchar(254) '
        'WHERE "u"."id" IN (%s)',
        ["id", None, "id"],
    ),
    # Literal percent signs are not placeholders; neither is %s in a literal or a comment.
    ("SELECT * FROM t WHERE n LIKE '%%' AND n %% 2 = %s AND n = %s", [None, "n"]),
    ("SELECT '%s', 'it''s %s', E'\\'%s' FROM t WHERE n = %s", ["n"]),
    ("SELECT 1 /* a = %s */ FROM t -- b = %s\nWHERE c = %s", ["c"]),
    ("SELECT 1 WHERE n LIKE %s ESCAPE '\\' AND \"m\" = %s", ["n", "m"]),
    # Unknown positions.
    ("SELECT * FROM t WHERE %s = email", [None]),
    ("SELECT * FROM t WHERE a = %s + 1 AND b = -%s AND c = %s || 'x'", [None, None, None]),
    ("SELECT * FROM t WHERE a + b = %s AND x || email LIKE %s", [None, None]),
    ("SELECT f(%s), COALESCE(email, %s) FROM t WHERE g(email) = %s", [None, None, None]),
    ("SELECT CASE email WHEN %s THEN %s ELSE %s END FROM t", [None, None, None]),
    ("SELECT * FROM t WHERE x IN (%s, f(%s)) AND (a, b) = (%s, %s)", [None] * 4),
    ("SELECT * FROM t WHERE x IN (SELECT y FROM u WHERE email = %s)", ["email"]),
    ("SELECT * FROM t WHERE (SELECT MAX(a) FROM u) = %s AND TRUE = %s", [None, None]),
    ("SELECT * FROM t WHERE data -> %s = %s AND (stamp AT TIME ZONE %s)::date = %s", [None] * 4),
    ("SELECT * FROM t WHERE a BETWEEN %s AND %s + 1", [None, None]),
    ("SELECT * FROM t WHERE a IN (%s, %s) || 'x' OR b = 1", [None, None]),
    # Inserts: positional, per row; an item that is not a lone placeholder is unknown.
    ("INSERT INTO t (a, b) VALUES (%s, %s), (%s, %s) RETURNING id", ["a", "b", "a", "b"]),
    ("INSERT INTO t (a, b, c) VALUES (%s, NOW(), %s)", ["a", "c"]),
    ("INSERT INTO t (a, b) VALUES (%s, LOWER(%s))", ["a", None]),
    ("INSERT INTO t (a, b) VALUES (%s, %s, %s)", [None, None, None]),
    ("INSERT INTO t VALUES (%s, %s)", [None, None]),
    ("INSERT INTO t (a) SELECT email FROM u WHERE email = %s", ["email"]),
    ("INSERT OR IGNORE INTO t (a, b) VALUES (%s, %s)", ["a", "b"]),
    ("INSERT INTO t (a, b) VALUES (%s, %s) ON CONFLICT (a) DO UPDATE SET b = %s", ["a", "b", "b"]),
    ("SELECT * FROM t WHERE a = %(a)s AND b = %s", ["b"]),
]


@pytest.mark.parametrize(("sql", "expected"), RAW, ids=[sql for sql, _ in RAW])
def test_raw_sql(sql: str, expected: list[str | None]) -> None:
    assert placeholder_columns(sql) == expected


def test_deep_nesting_is_no_recursion() -> None:
    """Wrapped 3000 times is still the column; bare parentheses are not a wrapper."""
    sql = "SELECT * FROM t WHERE " + "UPPER(" * 3000 + "a" + ")" * 3000 + " = %s AND " + "(" * 3000
    assert placeholder_columns(sql + "b" + ")" * 3000 + " = %s") == ["a", None]


def test_raw_sql_redaction() -> None:
    sql = "UPDATE users SET api_key = %s, token_hash = %s, name = %s WHERE email = %s LIMIT %s"
    params = ["SECRET1", "SECRET2", "Ann", "SECRET3", 10]
    assert redact_params(sql, params, PATTERNS) == [REDACTED, REDACTED, "Ann", REDACTED, 10]


# --- redact_params itself ----------------------------------------------------------------------


def test_missing_and_named_params() -> None:
    assert redact_params("SELECT 1", None, PATTERNS) is None
    named = redact_params("SELECT %(b)s, %(a)s", {"b": "x", "a": 2}, ())
    assert named == [REDACTED, REDACTED]


def test_a_placeholder_count_that_does_not_match_masks_everything() -> None:
    # A driver would take the quoted %s for a placeholder too: the params outnumber ours.
    sql = "SELECT '%s' FROM t WHERE name = %s"
    assert redact_params(sql, ["a"], ()) == ["a"]
    assert redact_params(sql, ["a", "b"], ()) == [REDACTED, REDACTED]
    assert redact_params("SELECT 1 WHERE a = %s", [], ()) == []


def test_values_become_json_safe() -> None:
    moment = datetime.datetime(2024, 2, 3, 4, 5, 6, tzinfo=datetime.UTC)
    key = uuid.UUID(int=1)
    values: list[object] = [
        None, True, 3, 2.5, float("inf"), "s", moment, moment.date(), moment.time(),
        datetime.timedelta(seconds=90), Decimal("1.50"), key, b"abc", memoryview(b"abcd"),
        bytearray(b"x"), DiffLevel.HIGH, DiffColor.RED, [1, b"ab"], object(), {"a": 1},
    ]  # fmt: skip
    sql = "SELECT 1 WHERE " + " AND ".join(f"c{n} = %s" for n in range(len(values)))
    result = redact_params(sql, values, ())
    assert result == [
        None, True, 3, 2.5, "inf", "s", "2024-02-03 04:05:06+00:00", "2024-02-03", "04:05:06",
        "0:01:30", "1.50", str(key), "<3 bytes>", "<4 bytes>", "<1 bytes>", 3, "red",
        [1, "<2 bytes>"], REDACTED, REDACTED,
    ]  # fmt: skip
    assert result is not None
    assert type(result[15]) is int
    assert type(result[16]) is str
    json.dumps(result, allow_nan=False)


def test_patterns_are_case_insensitive_globs_on_the_bare_column() -> None:
    sql = 'SELECT 1 WHERE "auth_user"."Email" = %s AND "email_verified" = %s AND "mail" = %s'
    assert redact_params(sql, ["a", True, "b"], ["EMAIL"]) == [REDACTED, True, "b"]
    assert redact_params(sql, ["a", True, "b"], ["*MAIL*"]) == [REDACTED] * 3
    assert redact_params(sql, ["a", True, "b"], ["auth_user.email"]) == ["a", True, "b"]
    assert redact_params(sql, ["a", True, "b"], []) == ["a", True, "b"]


@pytest.mark.parametrize(
    "column",
    ["password", "api_token", "client_secret", "email", "session_key", "ssn", "user_ssn",
     "phone_number", "billing_address", "credit_card_number", "iban", "API_KEY", "date_of_birth"],
)  # fmt: skip
def test_default_patterns_mask(column: str) -> None:
    assert redact_params(f'SELECT 1 WHERE "{column}" = %s', ["x"], PATTERNS) == [REDACTED]


@pytest.mark.parametrize(
    "column", ["username", "id", "title", "pages", "author_id", "classname", "created_at"]
)
def test_default_patterns_keep(column: str) -> None:
    assert redact_params(f'SELECT 1 WHERE "{column}" = %s', ["x"], PATTERNS) == ["x"]
