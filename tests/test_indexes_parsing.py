"""parse_query(): what each table of a statement is filtered, joined and sorted by.

The SQL is what Django 6.1's PostgreSQL backend writes (copied from ``QuerySet.query``), and the
same shapes as pg_stat_statements stores them (``$n``); no database is needed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from django_dbperf.indexes.parsing import (
    Constant,
    ParsedQuery,
    TableAccess,
    UnparsableQuery,
    parse_query,
)

EVENT_COLUMNS = (
    '"scheduler_event"."id", "scheduler_event"."name", "scheduler_event"."owner_id", '
    '"scheduler_event"."workflow_id", "scheduler_event"."schedule", "scheduler_event"."enabled", '
    '"scheduler_event"."priority", "scheduler_event"."created_at", "scheduler_event"."next_run_at"'
)
EVENT_NAMES = (
    "id",
    "name",
    "owner_id",
    "workflow_id",
    "schedule",
    "enabled",
    "priority",
    "created_at",
    "next_run_at",
)
BRIEF_DJANGO = (
    'SELECT "scheduler_event"."id", "scheduler_event"."name" FROM "scheduler_event" '
    'INNER JOIN "auth_user" ON ("scheduler_event"."owner_id" = "auth_user"."id") '
    'WHERE ("scheduler_event"."enabled" = %s AND "scheduler_event"."next_run_at" IS NULL '
    'AND "scheduler_event"."priority" >= %s AND "auth_user"."username" IN (%s, %s)) '
    'ORDER BY "scheduler_event"."created_at" DESC LIMIT 10'
)


def only(parsed: ParsedQuery, table: str, alias: str | None = None) -> TableAccess:
    """The one occurrence of ``table`` (with that alias) in ``parsed``."""
    found = [t for t in parsed.tables if t.table == table and t.alias == alias]
    assert len(found) == 1, parsed.tables
    return found[0]


def names(parsed: ParsedQuery) -> list[tuple[str, str | None]]:
    return [(table.table, table.alias) for table in parsed.tables]


# The shapes Django writes.


def test_django_select_with_join_filters_sort_and_limit() -> None:
    parsed = parse_query(BRIEF_DJANGO)

    assert parsed.kind == "select"
    assert parsed.written is None
    assert parsed.placeholders == 4
    assert names(parsed) == [("scheduler_event", None), ("auth_user", None)]
    assert only(parsed, "scheduler_event") == TableAccess(
        table="scheduler_event",
        schema=None,
        alias=None,
        equality=("enabled",),
        in_lists=(),
        ranges=("priority",),
        null_tests=(("next_run_at", True),),
        joins=("owner_id",),
        order_by=(("created_at", True),),
        limit=True,
        constants=(Constant("next_run_at", "IS NULL", ()),),
        parameters=(("enabled", 1), ("priority", 2)),
        referenced=("id", "name", "owner_id", "enabled", "next_run_at", "priority", "created_at"),
    )
    assert only(parsed, "auth_user") == TableAccess(
        table="auth_user",
        schema=None,
        alias=None,
        equality=(),
        in_lists=("username",),
        ranges=(),
        null_tests=(),
        joins=("id",),
        order_by=(),
        limit=False,  # the LIMIT cuts rows sorted by another table's column
        constants=(),
        parameters=(("username", 3), ("username", 4)),
        referenced=("id", "username"),
    )


def test_pg_stat_statements_form_reads_the_same_as_djangos() -> None:
    normalized = (
        BRIEF_DJANGO.replace("%s", "${}").format(1, 2, 3, 4).replace("LIMIT 10", "LIMIT $5")
    )

    parsed = parse_query(normalized)

    assert parsed.tables == parse_query(BRIEF_DJANGO.replace("LIMIT 10", "LIMIT %s")).tables
    assert parsed.placeholders == 5


def test_numbered_placeholders_are_kept_as_they_are() -> None:
    parsed = parse_query(
        'SELECT "t"."id" FROM "t" WHERE ("t"."a" = $2 AND "t"."b" IN ($1, $2) AND "t"."c" < $7)'
    )

    assert only(parsed, "t").parameters == (("a", 2), ("b", 1), ("b", 2), ("c", 7))
    assert parsed.placeholders == 3  # unique numbers


def test_bare_and_negated_boolean_columns_are_equalities_with_constants() -> None:
    parsed = parse_query(
        f'SELECT DISTINCT {EVENT_COLUMNS} FROM "scheduler_event" '
        'INNER JOIN "scheduler_event_tags" ON ("scheduler_event"."id" = '
        '"scheduler_event_tags"."event_id") INNER JOIN "scheduler_tag" ON '
        '("scheduler_event_tags"."tag_id" = "scheduler_tag"."id") '
        'WHERE (NOT "scheduler_event"."enabled" AND "scheduler_tag"."name" = %s)'
    )
    event = only(parsed, "scheduler_event")
    assert event.equality == ("enabled",)
    assert event.constants == (Constant("enabled", "=", (False,)),)
    assert event.joins == ("id",)
    assert only(parsed, "scheduler_event_tags").joins == ("event_id", "tag_id")
    assert only(parsed, "scheduler_tag").joins == ("id",)
    assert only(parsed, "scheduler_tag").parameters == (("name", 1),)

    staff = only(
        parse_query('SELECT "auth_user"."id" FROM "auth_user" WHERE "auth_user"."is_staff"'),
        "auth_user",
    )
    assert staff.equality == ("is_staff",)
    assert staff.constants == (Constant("is_staff", "=", (True,)),)
    assert staff.parameters == ()

    negated = parse_query(
        f'SELECT {EVENT_COLUMNS} FROM "scheduler_event" WHERE ("scheduler_event"."id" IN '
        '(%s, %s, %s) AND NOT ("scheduler_event"."enabled"))'
    )
    event = only(negated, "scheduler_event")
    assert event.in_lists == ("id",)
    assert event.constants == (Constant("enabled", "=", (False,)),)


def test_literals_become_constants_with_python_values() -> None:
    parsed = parse_query(
        'SELECT "t"."id" FROM "app_thing" "t" WHERE ("t"."kind" = \'job\' AND "t"."n" = 5 '
        'AND "t"."delta" = -3 AND "t"."ratio" = 1.5 AND "t"."big" = 12345678901234567890 '
        'AND "t"."on" = true AND "t"."tag" = \'x\'::text AND "t"."state" IN (\'a\', \'b\') '
        'AND "t"."color" <> \'red\' AND "t"."gone" IS NULL AND "t"."seen" IS NOT NULL '
        'AND "t"."ok" IS TRUE AND "t"."bad" IS FALSE AND "t"."nothing" = NULL)'
    )
    thing = only(parsed, "app_thing", "t")

    assert thing.equality == ("kind", "n", "delta", "ratio", "big", "on", "tag")
    assert thing.in_lists == ("state",)
    assert thing.null_tests == (("gone", True), ("seen", False))
    assert thing.parameters == ()
    assert thing.constants == (
        Constant("kind", "=", ("job",)),
        Constant("n", "=", (5,)),
        Constant("delta", "=", (-3,)),
        Constant("ratio", "=", (1.5,)),
        Constant("big", "=", (12345678901234567890,)),
        Constant("on", "=", (True,)),
        Constant("tag", "=", ("x",)),
        Constant("state", "IN", ("a", "b")),
        Constant("color", "<>", ("red",)),  # a constant, not an equality
        Constant("gone", "IS NULL", ()),
        Constant("seen", "IS NOT NULL", ()),
        Constant("ok", "IS TRUE", ()),
        Constant("bad", "IS FALSE", ()),
    )
    assert type(thing.constants[5].values[0]) is bool
    assert type(thing.constants[4].values[0]) is int
    assert "nothing" not in thing.equality  # `= NULL` is never true


def test_not_equal_to_a_parameter_counts_for_nothing() -> None:
    thing = only(parse_query('SELECT "t"."id" FROM "t" WHERE "t"."state" <> %s'), "t")

    assert (thing.equality, thing.constants, thing.parameters) == ((), (), ())
    assert thing.referenced == ("id", "state")


def test_or_and_not_branches_are_ignored() -> None:
    parsed = parse_query(
        f'SELECT {EVENT_COLUMNS} FROM "scheduler_event" WHERE (("scheduler_event"."name" = %s '
        'OR "scheduler_event"."next_run_at" IS NULL) AND NOT ("scheduler_event"."priority" = %s))'
    )
    event = only(parsed, "scheduler_event")

    assert (event.equality, event.null_tests, event.constants, event.parameters) == ((), (), (), ())
    assert event.referenced == EVENT_NAMES
    assert parsed.placeholders == 2


def test_nested_ands_and_parentheses_count() -> None:
    event = only(
        parse_query(
            'SELECT "e"."id" FROM "scheduler_event" "e" WHERE ((("e"."a" = $1) AND ("e"."b" = $2 '
            'AND ("e"."c" > $3))) AND "e"."d" IS NULL)'
        ),
        "scheduler_event",
        "e",
    )

    assert event.equality == ("a", "b")
    assert event.ranges == ("c",)
    assert event.null_tests == (("d", True),)


def test_functions_and_casts_on_the_column_are_not_plain_columns() -> None:
    parsed = parse_query(
        f'SELECT {EVENT_COLUMNS} FROM "scheduler_event" WHERE (("scheduler_event"."created_at" '
        'AT TIME ZONE %s)::date = %s AND UPPER("scheduler_event"."name"::text) = UPPER(%s) '
        'AND "scheduler_event"."priority" + 1 > %s AND "scheduler_event"."name"::text LIKE %s)'
    )
    event = only(parsed, "scheduler_event")

    assert (event.equality, event.ranges, event.constants, event.parameters) == ((), (), (), ())
    assert parsed.placeholders == 5


def test_casts_on_the_value_side_are_fine() -> None:
    event = only(
        parse_query(
            'SELECT "e"."id" FROM "scheduler_event" "e" WHERE ("e"."created_at" >= '
            '$1::timestamptz AND "e"."name" = \'x\'::text AND "e"."day" = DATE \'2024-01-31\')'
        ),
        "scheduler_event",
        "e",
    )

    assert event.ranges == ("created_at",)
    assert event.parameters == (("created_at", 1),)
    assert event.equality == ("name", "day")
    assert event.constants == (
        Constant("name", "=", ("x",)),
        Constant("day", "=", ("2024-01-31",)),
    )


def test_any_of_an_array_is_an_in_list() -> None:
    parsed = parse_query(
        'SELECT "t"."id" FROM "t" WHERE ("t"."a" = ANY($1) AND "t"."b" = ANY($2::integer[]) '
        'AND "t"."c" = ANY(ARRAY[1, 2]) AND "t"."d" <> ALL($3))'
    )
    thing = only(parsed, "t")

    assert thing.in_lists == ("a", "b", "c")
    assert thing.parameters == (("a", 1), ("b", 2))
    assert thing.constants == (Constant("c", "IN", (1, 2)),)


def test_ranges_between_and_a_value_on_the_left() -> None:
    event = only(
        parse_query(
            'SELECT "scheduler_event"."id" FROM "scheduler_event" WHERE ('
            '"scheduler_event"."created_at" BETWEEN %s AND %s AND 3 < "scheduler_event"."priority" '
            'AND "scheduler_event"."n" BETWEEN 1 AND 9 AND %s >= "scheduler_event"."m")'
        ),
        "scheduler_event",
    )

    assert event.ranges == ("created_at", "priority", "n", "m")
    assert event.parameters == (("created_at", 1), ("created_at", 2), ("m", 3))
    assert event.constants == (
        Constant("priority", ">", (3,)),  # `3 < col` is `col > 3`
        Constant("n", ">=", (1,)),
        Constant("n", "<=", (9,)),
    )


def test_in_subquery_reads_the_subquery_and_joins_its_column() -> None:
    parsed = parse_query(
        f'SELECT {EVENT_COLUMNS} FROM "scheduler_event" WHERE "scheduler_event"."owner_id" IN '
        '(SELECT "U0"."id" FROM "auth_user" "U0" WHERE ("U0"."is_staff" AND "U0"."date_joined" '
        "> $1))"
    )

    assert names(parsed) == [("scheduler_event", None), ("auth_user", "U0")]
    event, user = parsed.tables
    assert event.joins == ("owner_id",)
    assert event.referenced == EVENT_NAMES
    assert user.joins == ("id",)
    assert user.equality == ("is_staff",)
    assert user.ranges == ("date_joined",)
    assert user.parameters == (("date_joined", 1),)


def test_update_through_a_subquery_with_a_join() -> None:
    parsed = parse_query(
        'UPDATE "scheduler_event" SET "priority" = %s WHERE "scheduler_event"."id" IN '
        '(SELECT "U0"."id" FROM "scheduler_event" "U0" INNER JOIN "auth_user" "U1" ON '
        '("U0"."owner_id" = "U1"."id") WHERE "U1"."username" = %s)'
    )

    assert parsed.kind == "update"
    assert parsed.written == "scheduler_event"
    assert names(parsed) == [
        ("scheduler_event", None),
        ("scheduler_event", "U0"),
        ("auth_user", "U1"),
    ]
    target, inner, user = parsed.tables
    assert target.joins == ("id",)
    assert target.referenced == ("id",)  # the column set is written, not read
    assert inner.joins == ("owner_id", "id")  # its ON first, then the outer IN
    assert user.joins == ("id",)
    assert user.parameters == (("username", 2),)


def test_exists_correlates_with_the_outer_table() -> None:
    parsed = parse_query(
        f'SELECT {EVENT_COLUMNS} FROM "scheduler_event" WHERE EXISTS(SELECT %s AS "a" FROM '
        '"scheduler_eventserver" "U0" WHERE ("U0"."enabled" AND "U0"."event_id" = '
        '("scheduler_event"."id")) LIMIT 1)'
    )
    event, link = parsed.tables

    assert parsed.placeholders == 1
    assert event.joins == ("id",)
    assert event.limit is False
    assert (link.alias, link.equality, link.joins) == ("U0", ("enabled",), ("event_id",))
    assert link.limit is True  # LIMIT without ORDER BY
    assert link.referenced == ("enabled", "event_id")


def test_scalar_subquery_in_the_select_list_sorts_and_limits() -> None:
    parsed = parse_query(
        f'SELECT {EVENT_COLUMNS}, (SELECT "U0"."status" AS "status" FROM "scheduler_job" "U0" '
        'WHERE "U0"."event_id" = ("scheduler_event"."id") ORDER BY "U0"."started_at" DESC, '
        '"U0"."id" DESC LIMIT 1) AS "last" FROM "scheduler_event" WHERE "scheduler_event"."enabled"'
    )
    event, job = parsed.tables

    assert event.equality == ("enabled",)
    assert event.order_by == ()
    assert job.joins == ("event_id",)
    assert job.order_by == (("started_at", True), ("id", True))
    assert job.limit is True
    assert job.referenced == ("status", "event_id", "started_at", "id")


def test_self_join_gives_one_access_per_occurrence() -> None:
    parsed = parse_query(
        'SELECT "scheduler_workflowconnection"."id", "scheduler_workflowconnection"."workflow_id", '
        '"scheduler_workflowconnection"."source_id", "scheduler_workflowconnection"."target_id", '
        '"scheduler_workflowconnection"."condition" FROM "scheduler_workflowconnection" '
        'INNER JOIN "scheduler_workflownode" ON ("scheduler_workflowconnection"."source_id" = '
        '"scheduler_workflownode"."id") INNER JOIN "scheduler_workflownode" "T4" ON '
        '("scheduler_workflowconnection"."target_id" = "T4"."id") WHERE '
        '("scheduler_workflownode"."workflow_id" = %s AND "T4"."name" = %s)'
    )

    assert names(parsed) == [
        ("scheduler_workflowconnection", None),
        ("scheduler_workflownode", None),
        ("scheduler_workflownode", "T4"),
    ]
    connection, source, target = parsed.tables
    assert connection.joins == ("source_id", "target_id")
    assert (source.joins, source.equality) == (("id",), ("workflow_id",))
    assert (target.joins, target.equality) == (("id",), ("name",))
    assert target.parameters == (("name", 2),)


def test_columns_of_the_same_occurrence_are_no_join() -> None:
    parsed = parse_query(
        'SELECT "n"."id" FROM "scheduler_workflownode" "n" INNER JOIN "scheduler_workflownode" '
        '"m" ON ("n"."workflow_id" = "m"."workflow_id") WHERE ("n"."position_x" = '
        '"n"."position_y" AND "n"."id" < "m"."id")'
    )
    n, m = parsed.tables

    assert n.joins == ("workflow_id",)  # not position_x/y; `<` between columns is no join
    assert m.joins == ("workflow_id",)
    assert n.equality == n.ranges == ()


def test_unqualified_columns_resolve_only_with_one_relation() -> None:
    single = only(
        parse_query("SELECT id FROM scheduler_event WHERE owner_id = $1 AND priority > 3"),
        "scheduler_event",
    )
    assert single.equality == ("owner_id",)
    assert single.ranges == ("priority",)
    assert single.referenced == ("id", "owner_id", "priority")

    parsed = parse_query(
        "SELECT e.id FROM scheduler_event e JOIN auth_user u ON e.owner_id = u.id "
        "WHERE username = $1 AND e.enabled"
    )
    event, user = parsed.tables
    assert user.equality == () and user.parameters == ()
    assert event.equality == ("enabled",)


def test_inner_names_hide_outer_ones() -> None:
    parsed = parse_query(
        'SELECT "t"."id" FROM "t" WHERE EXISTS (SELECT 1 FROM "t" WHERE "t"."a" = $1) '
        'AND "t"."b" = $2'
    )
    outer, inner = parsed.tables

    assert outer.equality == ("b",)
    assert inner.equality == ("a",)


def test_schema_qualified_relations_and_columns() -> None:
    parsed = parse_query(
        'SELECT "public"."scheduler_event"."id" FROM "public"."scheduler_event" '
        'WHERE "public"."scheduler_event"."owner_id" = $1'
    )
    event = only(parsed, "scheduler_event")

    assert event.schema == "public"
    assert event.equality == ("owner_id",)
    assert event.referenced == ("id", "owner_id")


def test_row_equality_of_a_composite_key_is_one_equality_per_column() -> None:
    parsed = parse_query(
        'SELECT "r"."id" FROM "app_release" "r" WHERE ("r"."tenant_id", "r"."number") = (%s, 7)'
    )
    release = only(parsed, "app_release", "r")

    assert release.equality == ("tenant_id", "number")
    assert release.parameters == (("tenant_id", 1),)
    assert release.constants == (Constant("number", "=", (7,)),)


def test_tablesample_reads_its_table() -> None:
    parsed = parse_query("SELECT id FROM scheduler_job TABLESAMPLE SYSTEM (1) WHERE status = $1")

    assert only(parsed, "scheduler_job").equality == ("status",)


def test_join_using_names_both_sides() -> None:
    parsed = parse_query("SELECT a.x FROM a JOIN b USING (k) WHERE b.z = $1")

    assert [table.joins for table in parsed.tables] == [("k",), ("k",)]


# ORDER BY and LIMIT.


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ('"e"."created_at" DESC NULLS LAST, "e"."id" ASC', (("created_at", True), ("id", False))),
        ('"e"."priority" NULLS FIRST', (("priority", False),)),
        ('"e"."a", "e"."a" DESC', (("a", False), ("a", True))),
        ('"e"."a", "e"."a"', (("a", False),)),
        ('"total" DESC', (("priority", True),)),  # an output name, standing for its column
        ('"e"."created_at", "u"."username"', ()),  # keys of two tables
        ("2 DESC", ()),  # a position
        ('UPPER("e"."name")', ()),  # an expression
        ('"e"."created_at" USING >', ()),
    ],
)
def test_order_by_needs_every_key_a_plain_column_of_one_table(
    order: str, expected: tuple[tuple[str, bool], ...]
) -> None:
    parsed = parse_query(
        'SELECT "e"."id", "e"."priority" AS "total" FROM "scheduler_event" "e" INNER JOIN '
        f'"auth_user" "u" ON ("e"."owner_id" = "u"."id") ORDER BY {order} LIMIT 21'
    )
    event, user = parsed.tables

    assert event.order_by == expected
    assert event.limit is bool(expected)
    assert user.order_by == ()
    assert user.limit is False


def test_limit_without_order_by_and_offset_alone() -> None:
    limited = parse_query(
        'SELECT "scheduler_event"."id" FROM "scheduler_event" WHERE "scheduler_event"."id" '
        "IN (%s) LIMIT 10 OFFSET 5"
    )
    assert only(limited, "scheduler_event").limit is True
    assert only(limited, "scheduler_event").in_lists == ("id",)

    for tail in ("OFFSET 5", "LIMIT ALL", "ORDER BY id", ""):
        parsed = parse_query(f"SELECT id FROM scheduler_event {tail}")
        assert only(parsed, "scheduler_event").limit is False, tail
    fetched = parse_query("SELECT id FROM scheduler_event ORDER BY id FETCH FIRST 3 ROWS ONLY")
    assert only(fetched, "scheduler_event").limit is True


def test_group_by_position_and_aggregates() -> None:
    parsed = parse_query(
        'SELECT "scheduler_event"."owner_id" AS "owner_id", COUNT("scheduler_event"."id") AS "n" '
        'FROM "scheduler_event" GROUP BY 1 ORDER BY 2 DESC'
    )
    event = only(parsed, "scheduler_event")

    assert event.order_by == ()
    assert event.referenced == ("owner_id", "id")


# What the statement reads.


def test_star_means_every_column() -> None:
    parsed = parse_query(
        "SELECT e.*, u.username FROM scheduler_event e JOIN auth_user u ON e.owner_id = u.id"
    )
    assert [table.referenced for table in parsed.tables] == [None, ("username", "id")]

    everything = parse_query(
        "SELECT * FROM scheduler_event e JOIN auth_user u ON e.owner_id = u.id"
    )
    assert [table.referenced for table in everything.tables] == [None, None]

    count = parse_query(
        'SELECT COUNT(*) AS "__count" FROM "scheduler_event" WHERE "scheduler_event"."enabled"'
    )
    assert only(count, "scheduler_event").referenced == ("enabled",)


def test_group_by_and_having_columns_are_read() -> None:
    job = only(
        parse_query(
            'SELECT "j"."event_id", MAX("j"."started_at") FROM "scheduler_job" "j" '
            'GROUP BY "j"."event_id", "j"."server_id" HAVING MIN("j"."exit_code") > $1'
        ),
        "scheduler_job",
        "j",
    )

    assert job.referenced == ("event_id", "started_at", "server_id", "exit_code")
    assert job.ranges == ()  # HAVING filters groups, not rows


# Statement kinds.


def test_union_reads_each_arm() -> None:
    parsed = parse_query(
        '(SELECT "scheduler_event"."id" AS "col1" FROM "scheduler_event" WHERE '
        '"scheduler_event"."id" = %s) UNION (SELECT "scheduler_event"."id" AS "col1" FROM '
        '"scheduler_event" WHERE "scheduler_event"."owner_id" = %s ORDER BY '
        '"scheduler_event"."created_at" DESC LIMIT 5) ORDER BY 1 LIMIT 3'
    )
    first, second = parsed.tables

    assert parsed.kind == "select"
    assert (first.equality, first.parameters, first.limit) == (("id",), (("id", 1),), False)
    assert second.parameters == (("owner_id", 2),)
    assert second.order_by == (("created_at", True),)
    assert second.limit is True


def test_common_table_expressions() -> None:
    parsed = parse_query(
        "WITH recent AS (SELECT id, owner_id FROM scheduler_event WHERE created_at >= $1), "
        "tree AS (SELECT id FROM recent WHERE owner_id = $2) "
        "SELECT u.username FROM auth_user u JOIN recent r ON r.owner_id = u.id "
        "WHERE u.is_active ORDER BY u.username LIMIT 5"
    )

    assert names(parsed) == [("scheduler_event", None), ("auth_user", "u")]
    event, user = parsed.tables
    assert event.ranges == ("created_at",)
    assert event.parameters == (("created_at", 1),)
    assert user.joins == ("id",)
    assert user.equality == ("is_active",)
    assert (user.order_by, user.limit) == ((("username", False),), True)
    assert parsed.placeholders == 2


def test_recursive_cte_names_itself() -> None:
    parsed = parse_query(
        "WITH RECURSIVE chain AS (SELECT id, source_id FROM scheduler_workflowconnection "
        "WHERE id = $1 UNION ALL SELECT c.id, c.source_id FROM scheduler_workflowconnection c "
        "JOIN chain ON c.target_id = chain.source_id) SELECT * FROM chain"
    )

    assert names(parsed) == [
        ("scheduler_workflowconnection", None),
        ("scheduler_workflowconnection", "c"),
    ]
    assert parsed.tables[1].joins == ("target_id",)


def test_subquery_in_from_is_read_but_is_no_table() -> None:
    parsed = parse_query(
        'SELECT "sub"."owner_id" FROM (SELECT "e"."owner_id" FROM "scheduler_event" "e" '
        'WHERE "e"."enabled") "sub" WHERE "sub"."owner_id" = $1'
    )

    assert names(parsed) == [("scheduler_event", "e")]
    assert parsed.tables[0].equality == ("enabled",)


def test_update_and_delete_read_their_target() -> None:
    update = parse_query(
        'UPDATE "scheduler_event" SET "priority" = %s WHERE ("scheduler_event"."enabled" AND '
        '"scheduler_event"."owner_id" = %s)'
    )
    assert (update.kind, update.written, update.placeholders) == ("update", "scheduler_event", 2)
    event = only(update, "scheduler_event")
    assert event.equality == ("enabled", "owner_id")
    assert event.parameters == (("owner_id", 2),)
    assert (event.order_by, event.limit) == ((), False)

    delete = parse_query('DELETE FROM "scheduler_event" WHERE "scheduler_event"."id" IN (%s, %s)')
    assert (delete.kind, delete.written) == ("delete", "scheduler_event")
    assert only(delete, "scheduler_event").parameters == (("id", 1), ("id", 2))

    using = parse_query(
        "DELETE FROM scheduler_job j USING scheduler_event e WHERE j.event_id = e.id "
        "AND e.owner_id = $1 RETURNING j.id"
    )
    job, event = using.tables
    assert (job.joins, job.referenced) == (("event_id",), ("event_id", "id"))
    assert event.equality == ("owner_id",)


def test_insert_names_its_target_and_reads_its_select() -> None:
    values = parse_query(
        'INSERT INTO "scheduler_event" ("name", "owner_id", "enabled") VALUES (%s, %s, %s) '
        'RETURNING "scheduler_event"."id"'
    )
    assert values == ParsedQuery(
        kind="insert", tables=(), written="scheduler_event", placeholders=3
    )

    selected = parse_query(
        "INSERT INTO scheduler_joblog (job_id, level, message) SELECT j.id, 'info', $1 "
        "FROM scheduler_job j WHERE j.status = 'done' ON CONFLICT DO NOTHING"
    )
    assert (selected.kind, selected.written) == ("insert", "scheduler_joblog")
    job = only(selected, "scheduler_job", "j")
    assert job.constants == (Constant("status", "=", ("done",)),)


def test_server_side_cursor_reads_its_select() -> None:
    parsed = parse_query(
        'DECLARE "_django_curs_1_sync_1" NO SCROLL CURSOR WITH HOLD FOR SELECT '
        '"scheduler_event"."id" FROM "scheduler_event" WHERE "scheduler_event"."owner_id" = $1'
    )

    assert parsed.kind == "select"
    assert only(parsed, "scheduler_event").equality == ("owner_id",)


@pytest.mark.parametrize(
    "sql",
    [
        "SET TIME ZONE 'UTC'",
        'SAVEPOINT "s140_x1"',
        "BEGIN",
        "COMMIT",
        'CREATE INDEX "dp_event_owner" ON "scheduler_event" ("owner_id")',
        "SELECT set_config($1, $2, false)",
    ],
)
def test_other_statements_have_no_tables(sql: str) -> None:
    parsed = parse_query(sql)

    assert parsed.tables == ()
    assert parsed.written is None
    assert parsed.kind == ("select" if sql.startswith("SELECT") else "other")


# Django's %% and bad input.


def test_percent_signs_in_literals() -> None:
    django = parse_query(
        'SELECT "t"."id" FROM "t" WHERE ("t"."name" = \'50%%\' AND "t"."code" LIKE \'a%%\' '
        'AND "t"."owner_id" = %s)'
    )
    thing = only(django, "t")
    assert thing.constants == (Constant("name", "=", ("50%",)),)
    assert thing.parameters == (("owner_id", 1),)

    # Django's text without parameters: still its escape.
    unparameterized = parse_query('SELECT "t"."id" FROM "t" WHERE "t"."name" = \'50%%\'')
    assert only(unparameterized, "t").constants == (Constant("name", "=", ("50%",)),)

    # pg_stat_statements' text ($n, no %s): `%%` is no escape there (nor is a modulo `%`).
    kept = parse_query('SELECT "t"."id" FROM "t" WHERE "t"."name" = \'50%%\' LIMIT $1')
    assert only(kept, "t").constants == (Constant("name", "=", ("50%%",)),)

    normalized = parse_query(
        'SELECT "t"."id" FROM "t" WHERE ("t"."name" = \'50%\' AND "t"."n" % 2 = $1)'
    )
    assert only(normalized, "t").constants == (Constant("name", "=", ("50%",)),)
    assert normalized.placeholders == 1


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("SELEC id FROM scheduler_event", 'syntax error at or near "SELEC"'),
        ("SELECT id FROM WHERE x = 1", 'syntax error at or near "WHERE"'),
        ("SELECT 'unterminated FROM t", "unterminated quoted string"),
        ("this is not sql", "syntax error"),
        ("SELECT 1; SELECT 2", "2 statements"),
        ('SELECT "t"."id" FROM "t"; DELETE FROM "t"', "2 statements"),
        ("", "no statement"),
        ("  -- only a comment\n", "no statement"),
    ],
)
def test_unparsable_text_says_why(sql: str, says: str) -> None:
    with pytest.raises(UnparsableQuery) as raised:
        parse_query(sql)

    assert says in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_parser_message_points_at_the_place() -> None:
    with pytest.raises(UnparsableQuery, match=r"at character 16: 'WHERE x = 1'"):
        parse_query("SELECT id FROM WHERE x = 1")


def test_results_are_frozen() -> None:
    parsed = parse_query(BRIEF_DJANGO)

    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.tables[0].limit = False  # type: ignore[misc]


# Property: random AND-ed predicates read back as the sets they were built from.

COLUMNS = ("a", "b", "c", "d")
OPERATORS = ("=", "<", "<=", ">", ">=", "<>", "IN", "ANY", "IS NULL", "IS NOT NULL")
FLIP = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


class Param:
    """A placeholder; numbered when rendered."""


PARAM = Param()
literals = st.one_of(
    st.integers(min_value=-1000, max_value=1000),
    st.booleans(),
    st.text(alphabet="ab %'_", max_size=6),
)
operands = st.one_of(st.just(PARAM), literals)


@dataclass(frozen=True)
class Predicate:
    column: str
    operator: str
    operands: tuple[Any, ...]
    flipped: bool  # the value written on the left
    qualified: bool


@dataclass(frozen=True)
class Ignored:
    """An OR, a NOT or a function of the column: it must add nothing but placeholders."""

    template: str  # {col} and {value} in it


IGNORED = (
    "({col} = {value} OR {col} IS NULL)",
    "NOT ({col} = {value})",
    "UPPER({col}) = {value}",
    "{col}::date >= {value}",
    "{col} NOT IN ({value})",
)


@st.composite
def predicates(draw: st.DrawFn) -> Predicate:
    operator = draw(st.sampled_from(OPERATORS))
    if operator in ("IS NULL", "IS NOT NULL"):
        values: tuple[Any, ...] = ()
    elif operator == "IN" or (operator == "ANY" and draw(st.booleans())):
        values = tuple(draw(st.lists(operands, min_size=1, max_size=3)))
    elif operator == "ANY":
        values = (PARAM,)  # = ANY($n): one array parameter
    else:
        values = (draw(operands),)
    return Predicate(
        column=draw(st.sampled_from(COLUMNS)),
        operator=operator,
        operands=values,
        flipped=operator in FLIP and draw(st.booleans()),
        qualified=draw(st.booleans()),
    )


leaves = st.one_of(predicates(), st.sampled_from(IGNORED).map(Ignored))
trees = st.recursive(
    leaves, lambda children: st.lists(children, min_size=1, max_size=3), max_leaves=8
)


class Renderer:
    def __init__(self, django: bool) -> None:
        self.django = django
        self.count = 0

    def value(self, operand: Any) -> str:
        if isinstance(operand, Param):
            self.count += 1
            return "%s" if self.django else f"${self.count}"
        if isinstance(operand, bool):
            return "true" if operand else "false"
        if isinstance(operand, int):
            return str(operand)
        text = "'" + str(operand).replace("'", "''") + "'"
        return text.replace("%", "%%") if self.django else text

    def tree(self, node: Any) -> str:
        if isinstance(node, list):
            return "(" + " AND ".join(self.tree(child) for child in node) + ")"
        if isinstance(node, Ignored):
            value = self.value(PARAM)
            return node.template.format(col='"t"."x"', value=value)
        return self.predicate(node)

    def predicate(self, node: Predicate) -> str:
        column = f'"t"."{node.column}"' if node.qualified else f'"{node.column}"'
        if node.operator in ("IS NULL", "IS NOT NULL"):
            return f"{column} {node.operator}"
        values = ", ".join(self.value(operand) for operand in node.operands)
        if node.operator == "IN":
            return f"{column} IN ({values})"
        if node.operator == "ANY":
            array = values if node.operands == (PARAM,) else f"ARRAY[{values}]"
            return f"{column} = ANY({array})"
        if node.flipped:
            return f"{values} {FLIP[node.operator]} {column}"
        return f"{column} {node.operator} {values}"


def flatten(node: Any) -> list[Predicate | Ignored]:
    if isinstance(node, list):
        return [leaf for child in node for leaf in flatten(child)]
    return [node]


class Expected:
    """The sets a predicate list should give, built in reading order (numbers as rendered)."""

    def __init__(self) -> None:
        self.fields: dict[str, dict[Any, None]] = {
            key: {} for key in ("equality", "in_lists", "ranges", "null_tests", "parameters")
        }
        self.constants: dict[Any, None] = {}
        self.count = 0

    def add(self, name: str, item: Any) -> None:
        self.fields[name][item] = None

    def constant(self, column: str, operator: str, values: tuple[Any, ...]) -> None:
        self.constants[(column, operator, tuple((type(v), v) for v in values))] = None

    def numbers(self, operands: tuple[Any, ...]) -> list[int | None]:
        numbered: list[int | None] = []
        for operand in operands:
            if isinstance(operand, Param):
                self.count += 1
                numbered.append(self.count)
            else:
                numbered.append(None)
        return numbered

    def leaf(self, node: Predicate | Ignored) -> None:
        if isinstance(node, Ignored):
            self.count += 1
            return
        column, operator = node.column, node.operator
        numbers = self.numbers(node.operands)
        if operator in ("IS NULL", "IS NOT NULL"):
            self.add("null_tests", (column, operator == "IS NULL"))
            self.constant(column, operator, ())
        elif operator in ("IN", "ANY"):
            self.add("in_lists", column)
            for number in numbers:
                if number is not None:
                    self.add("parameters", (column, number))
            if all(number is None for number in numbers):
                self.constant(column, "IN", node.operands)
        else:
            self.comparison(column, operator, node.operands[0], numbers[0])

    def comparison(self, column: str, operator: str, operand: Any, number: int | None) -> None:
        if operator == "=":
            self.add("equality", column)
        elif operator != "<>":
            self.add("ranges", column)
        if number is None:
            self.constant(column, operator, (operand,))
        elif operator != "<>":
            self.add("parameters", (column, number))


def typed(constants: tuple[Constant, ...]) -> list[Any]:
    return [(c.column, c.operator, tuple((type(v), v) for v in c.values)) for c in constants]


@settings(max_examples=300, deadline=None)
@given(tree=trees, django=st.booleans())
def test_random_predicates_read_back_as_built(tree: Any, django: bool) -> None:
    renderer = Renderer(django)
    where = renderer.tree(tree)
    # pg_stat_statements numbers the LIMIT too; Django writes it inline. (Text with neither
    # a $n nor a %s is read as Django's: there '%%' is one percent sign.)
    limit = "5" if django else renderer.value(PARAM)
    sql = f'SELECT "t"."id" FROM "app_thing" "t" WHERE {where} ORDER BY "t"."id" DESC LIMIT {limit}'
    expected = Expected()
    for leaf in flatten(tree):
        expected.leaf(leaf)

    parsed = parse_query(sql)
    thing = only(parsed, "app_thing", "t")

    assert parsed.placeholders == renderer.count == expected.count + (not django)
    for name, items in expected.fields.items():
        assert getattr(thing, name) == tuple(items), (name, sql)
    assert typed(thing.constants) == list(expected.constants), sql
    assert (thing.order_by, thing.limit) == ((("id", True),), True)
