"""explain(): only a single SELECT, always rolled back, read only and timed out; plans as trees."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import QuerySet

from django_dbperf.explain import (
    ExplainRefused,
    PlanNode,
    check_statement,
    explain,
    postgres_script,
    postgres_tree,
    sqlite_tree,
)
from django_dbperf.explain.tokens import numbered_placeholders, tokenize
from tests.testapp.models import Author, Book


def sql_of(queryset: QuerySet[Any]) -> tuple[str, list[Any]]:
    sql, params = queryset.query.get_compiler(using="default").as_sql()
    return sql, list(params)


def nodes(node: PlanNode) -> Iterator[PlanNode]:
    yield node
    for child in node.children:
        yield from nodes(child)


def scalar(sql: str) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements ORDER BY name")
        return [name for (name,) in cursor.fetchall()]


@pytest.fixture
def sqlite(db: None) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's plan: runs in the SQLite pass")


@pytest.fixture
def many_books(db: None) -> None:
    author = Author.objects.create(name="Prolific")
    Book.objects.bulk_create(Book(title=f"Book {n}", author=author, pages=n) for n in range(1500))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE testapp_book")


# --- Refusals: before any database access (these tests have no database) -------------------

MORE_THAN_ONE = "more than one statement"
WRITES = "only statements that only read"
LOCKS = "FOR UPDATE/SHARE locks rows"


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("INSERT INTO testapp_author (name, email) VALUES ('a', '')", "starts with 'INSERT'"),
        ("UPDATE testapp_book SET pages = 1", "starts with 'UPDATE'"),
        ("delete from testapp_book", "starts with 'delete'"),
        ("MERGE INTO testapp_book USING testapp_author ON false WHEN MATCHED THEN DELETE", "MERGE"),
        ("CREATE TABLE scratch (n integer)", "starts with 'CREATE'"),
        ("DROP TABLE testapp_book", "starts with 'DROP'"),
        ("TRUNCATE testapp_book", "starts with 'TRUNCATE'"),
        ("EXPLAIN ANALYZE DELETE FROM testapp_book", "starts with 'EXPLAIN'"),
        ("VALUES (1)", "starts with 'VALUES'"),
        ("SELECT * FROM testapp_book FOR UPDATE", LOCKS),
        ("SELECT * FROM testapp_book FOR NO KEY UPDATE OF testapp_book", LOCKS),
        ("SELECT * FROM testapp_book FOR SHARE SKIP LOCKED", LOCKS),
        ("SELECT * FROM testapp_book for key share", LOCKS),
        ("SELECT * INTO book_copy FROM testapp_book", "SELECT ... INTO creates a table"),
        ("SELECT 1; DELETE FROM testapp_book", MORE_THAN_ONE),
        ("SELECT 1 /* ; */; DELETE FROM testapp_book", MORE_THAN_ONE),
        ("SELECT 1; /* a comment */ DELETE FROM testapp_book", MORE_THAN_ONE),
        ("SELECT 1 -- a comment\n; DELETE FROM testapp_book", MORE_THAN_ONE),
        # PostgreSQL ends a -- comment at a carriage return too.
        ("SELECT 1 -- a comment\r; DELETE FROM testapp_book", MORE_THAN_ONE),
        ("SELECT 'a;b'; DELETE FROM testapp_book WHERE title = ';'", MORE_THAN_ONE),
        ('SELECT 1 AS "x;"; DROP TABLE testapp_book', MORE_THAN_ONE),
        ("WITH d AS (DELETE FROM testapp_book RETURNING *) SELECT * FROM d", WRITES),
        ("WITH u AS (UPDATE testapp_book SET pages = 0 RETURNING id) SELECT * FROM u", WRITES),
        ("WITH i AS (INSERT INTO testapp_tag (name) VALUES ('x') RETURNING id) SELECT 1", WRITES),
        ("(SELECT 1) UNION (SELECT id FROM (DELETE FROM testapp_book RETURNING id) d)", WRITES),
        ("", "no statement"),
        ("  -- only a comment\n", "no statement"),
        (";", "no statement"),
        ("SELECT 'unterminated", "unterminated string literal"),
        ('SELECT 1 AS "unterminated', "unterminated quoted name"),
        ("SELECT 1 /* unterminated", "unterminated comment"),
        ("SELECT pg_advisory_lock(1)", "calls pg_advisory_lock()"),
        ("SELECT pg_catalog.PG_TRY_ADVISORY_LOCK_SHARED(1)", "calls pg_try_advisory_lock_shared()"),
        ("SELECT * FROM testapp_book WHERE id = $1", "$1 placeholder"),
    ],
)
def test_refuses_what_is_not_a_single_select(sql: str, reason: str) -> None:
    with pytest.raises(ExplainRefused) as refusal:
        explain(sql, None)
    assert reason in str(refusal.value)


def test_refuses_analyze_without_values() -> None:
    sql, _ = sql_of(Book.objects.filter(title="Dune"))
    with pytest.raises(ExplainRefused, match="needs its parameter values"):
        explain(sql, None, analyze=True)


def test_refuses_params_that_do_not_fit_the_placeholders() -> None:
    sql, _ = sql_of(Book.objects.filter(title="Dune", pages=3))
    with pytest.raises(ExplainRefused, match=r"2 placeholder\(s\) but 1 parameter value"):
        explain(sql, ["Dune"])


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT $$ ; DELETE FROM testapp_book $$ AS x",
        "SELECT $tag$ ; $$ ; $tag$ AS x",
        "SELECT E'it\\'s; DELETE FROM testapp_book; --' AS x",
        "SELECT 1 AS x /* outer /* nested */ ; DELETE FROM testapp_book */",
    ],
)
def test_postgresql_quoting_hides_code_only_where_postgresql_reads_it_so(sql: str) -> None:
    # Dollar quotes, backslash escapes in E'...' and nested comments are PostgreSQL's: for
    # SQLite, which reads all three differently, the same text holds a second statement.
    assert check_statement(sql, None, dialect="postgresql").text == sql
    with pytest.raises(ExplainRefused, match=MORE_THAN_ONE):
        check_statement(sql, None, dialect="sqlite")


def test_placeholders_become_numbered_outside_strings_and_percent_signs_single() -> None:
    sql = "SELECT '%s', '50%%' AS \"a%%\" FROM t WHERE a = %s AND b LIKE %s -- %s"
    numbered, count = numbered_placeholders(tokenize(sql, "postgresql"))
    assert numbered == "SELECT '%s', '50%' AS \"a%\" FROM t WHERE a = $1 AND b LIKE $2 -- %s"
    assert count == 2


def test_tokens_add_up_to_the_text() -> None:
    sql = 'SELECT e\'\\\'\', $a$x$a$, "q""q", 1.5e3 /* c /* d */ */ -- e\nFROM t;'
    tokens = tokenize(sql, "postgresql")
    assert "".join(token.text for token in tokens) == sql
    assert [token.kind for token in tokens if token.kind in ("string", "quoted", "comment")] == [
        "string", "string", "quoted", "comment", "comment"
    ]  # fmt: skip


# --- What is sent to PostgreSQL (both version paths, no server needed) ----------------------

BOOK_SQL, BOOK_PARAMS = sql_of(Book.objects.filter(title="Dune", pages__gt=100))


def test_postgresql_16_asks_for_a_generic_plan_directly() -> None:
    statement = check_statement(BOOK_SQL, None, dialect="postgresql")
    script = postgres_script(statement, None, pg_version=160004, timeout_ms=1234)
    numbered = BOOK_SQL.replace("%s", "$1", 1).replace("%s", "$2", 1)
    assert script.explain == f"EXPLAIN (GENERIC_PLAN, FORMAT JSON) {numbered}"
    assert (script.method, script.params, script.cleanup, script.generic) == (
        "GENERIC_PLAN", None, None, True
    )  # fmt: skip
    assert script.setup == (
        "SET LOCAL statement_timeout = 1234",
        "SET LOCAL transaction_read_only = on",
        "SET LOCAL standard_conforming_strings = on",
    )


def test_postgresql_15_prepares_a_generic_plan_and_deallocates_only_it() -> None:
    statement = check_statement(BOOK_SQL, None, dialect="postgresql")
    script = postgres_script(statement, None, pg_version=150004, name="dbperf_explain_x")
    numbered = BOOK_SQL.replace("%s", "$1", 1).replace("%s", "$2", 1)
    assert script.setup[-2:] == (
        "SET LOCAL plan_cache_mode = force_generic_plan",
        f"PREPARE dbperf_explain_x AS {numbered}",
    )
    assert "SET LOCAL transaction_read_only = on" in script.setup
    assert script.explain == "EXPLAIN (FORMAT JSON) EXECUTE dbperf_explain_x(NULL, NULL)"
    assert script.cleanup == "DEALLOCATE dbperf_explain_x"
    assert script.method == "PREPARE + force_generic_plan"


@pytest.mark.parametrize("version", [150004, 160004])
def test_values_go_through_the_driver(version: int) -> None:
    statement = check_statement(BOOK_SQL, BOOK_PARAMS, dialect="postgresql", analyze=True)
    script = postgres_script(statement, BOOK_PARAMS, pg_version=version, analyze=True)
    assert script.explain == f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {BOOK_SQL}"
    assert (script.params, script.method, script.generic) == (BOOK_PARAMS, "values", False)


# --- Costly nodes --------------------------------------------------------------------------


def test_costly_nodes_are_the_expensive_ones_and_big_sequential_scans() -> None:
    def node(kind: str, total: float, rows: int = 10, **extra: Any) -> dict[str, Any]:
        return {"Node Type": kind, "Startup Cost": 0.0, "Total Cost": total,
                "Plan Rows": rows, "Plan Width": 8, **extra}  # fmt: skip

    big = node("Seq Scan", 10.0, rows=5000, **{"Relation Name": "big", "Alias": "big"})
    small = node("Seq Scan", 15.0, **{"Relation Name": "small", "Alias": "small"})
    join = node("Hash Join", 100.0, **{"Join Type": "Left", "Hash Cond": "(big.id = small.id)"})
    join["Plans"] = [big, node("Hash", 15.0, Plans=[small])]
    tree, text = postgres_tree([{"Plan": join}])
    by_label = {each.label: each for each in nodes(tree)}
    assert set(by_label) == {"Hash Left Join", "Seq Scan on big", "Hash", "Seq Scan on small"}
    assert by_label["Hash Left Join"].self_cost_share == pytest.approx(0.75)
    assert by_label["Hash Left Join"].details == {"Hash Cond": "(big.id = small.id)"}
    assert by_label["Seq Scan on big"].self_cost_share == pytest.approx(0.10)
    assert {label for label, each in by_label.items() if each.costly} == {
        "Hash Left Join", "Seq Scan on big"
    }  # fmt: skip
    assert text.splitlines()[:3] == [
        "Hash Left Join  (cost=0.00..100.00 rows=10 width=8)",
        "  Hash Cond: (big.id = small.id)",
        "  ->  Seq Scan on big  (cost=0.00..10.00 rows=5000 width=8)",
    ]


def test_sqlite_full_scans_are_costly_index_reads_are_not() -> None:
    rows = [
        (2, 0, 0, "SCAN testapp_book"),
        (4, 0, 0, "SEARCH testapp_author USING INTEGER PRIMARY KEY (rowid=?)"),
        (6, 0, 0, "SCAN testapp_tag USING COVERING INDEX testapp_tag_name"),
        (8, 0, 0, "SCALAR SUBQUERY 1"),
        (9, 8, 0, "SCAN CONSTANT ROW"),
    ]
    tree, text = sqlite_tree(rows)
    costly = [(each.node_type, each.relation) for each in nodes(tree) if each.costly]
    assert costly == [("SCAN", "testapp_book")]
    assert tree.children[3].children[0].label == "SCAN CONSTANT ROW"
    assert text.splitlines()[-2:] == ["`--SCALAR SUBQUERY 1", "   `--SCAN CONSTANT ROW"]


# --- Both databases ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT title FROM testapp_book WHERE title = 'a;b -- DELETE FOR UPDATE'",
        'SELECT 1 AS "semi;colon", 2 AS "delete"',
        "SELECT 1 AS x;",
        "SELECT 1 AS x; -- done\n",
        "SELECT 1 AS x; /* done */ ;",
    ],
)
def test_explains_a_select_whose_strings_names_and_comments_hold_anything(
    db: None, sql: str
) -> None:
    plan = explain(sql, [])
    assert plan.tree is not None
    assert plan.text
    assert plan.vendor == connection.vendor


def test_works_inside_a_callers_atomic_block(db: None) -> None:
    with transaction.atomic():
        Author.objects.create(name="Kept")
        plan = explain(*sql_of(Book.objects.filter(title="Dune")))
        assert plan.tree is not None
        with pytest.raises(ExplainRefused, match="testapp_nosuchtable"):
            explain("SELECT * FROM testapp_nosuchtable", [])
        # The caller's transaction still works, can still write, and kept its row.
        Author.objects.create(name="Added after")
        assert connection.in_atomic_block
    assert set(Author.objects.values_list("name", flat=True)) == {"Kept", "Added after"}


@pytest.mark.django_db(transaction=True)
def test_leaves_no_transaction_open() -> None:
    explain(*sql_of(Book.objects.filter(title="Dune")))
    with pytest.raises(ExplainRefused):
        explain("SELECT * FROM testapp_nosuchtable", [])
    assert not connection.in_atomic_block
    assert connection.get_autocommit()
    if connection.vendor == "postgresql":
        from psycopg.pq import TransactionStatus

        assert connection.connection.info.transaction_status == TransactionStatus.IDLE
    else:
        assert not connection.connection.in_transaction


# --- SQLite ----------------------------------------------------------------------------------


def test_sqlite_plan_marks_a_full_scan_costly(sqlite: None) -> None:
    plan = explain(*sql_of(Book.objects.filter(title="Dune")))
    assert plan.tree is not None
    scan = next(each for each in nodes(plan.tree) if each.relation == "testapp_book")
    assert (scan.node_type, scan.costly, scan.total_cost) == ("SCAN", True, None)
    assert "SCAN testapp_book" in plan.text
    assert (plan.method, plan.generic, plan.analyzed) == ("EXPLAIN QUERY PLAN", False, False)
    assert plan.note is not None and "no costs" in plan.note


def test_sqlite_primary_key_lookup_is_not_costly_and_null_params_make_a_generic_plan(
    sqlite: None,
) -> None:
    sql, _ = sql_of(Book.objects.filter(pk=1))
    plan = explain(sql, None)
    assert plan.tree is not None
    [search] = plan.tree.children
    assert (search.node_type, search.relation, search.costly) == ("SEARCH", "testapp_book", False)
    assert plan.generic


def test_sqlite_has_no_explain_analyze(sqlite: None) -> None:
    with pytest.raises(ExplainRefused, match="SQLite has no EXPLAIN ANALYZE"):
        explain(*sql_of(Book.objects.filter(title="Dune")), analyze=True)


# --- PostgreSQL ----------------------------------------------------------------------------


def test_generic_plan_keeps_the_parameters_and_leaves_no_prepared_statement(
    postgres: None,
) -> None:
    with connection.cursor() as cursor:
        cursor.execute("PREPARE dbperf_test_mine AS SELECT 1")
    try:
        before = prepared_statements()
        sql, _ = sql_of(Book.objects.filter(title="Dune", pages__gt=100))
        plan = explain(sql, None)
        assert prepared_statements() == before  # its own is gone, the caller's is still there
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DEALLOCATE dbperf_test_mine")
    assert plan.generic and not plan.analyzed
    version = int(connection.pg_version)  # type: ignore[attr-defined]
    expected = "GENERIC_PLAN" if version >= 160000 else "PREPARE + force_generic_plan"
    assert plan.method == expected
    assert "testapp_book" in plan.text
    # Planned without values: the filter keeps $1 and $2. A custom plan for the NULL arguments
    # would instead fold the comparisons away ("One-Time Filter: false").
    assert "$1" in plan.text and "$2" in plan.text
    assert "One-Time Filter" not in plan.text


def test_a_failed_generic_plan_leaves_no_prepared_statement(postgres: None) -> None:
    before = prepared_statements()
    # Prepared fine; fails while planning (1/0 is folded as a constant), after the PREPARE.
    with pytest.raises(ExplainRefused, match="division by zero"):
        explain("SELECT 1 / 0 AS x FROM testapp_book WHERE id = %s", None)
    # Fails in the PREPARE itself.
    with pytest.raises(ExplainRefused, match="could not determine data type"):
        explain("SELECT 1 AS x WHERE %s IS NULL", None)
    assert prepared_statements() == before
    assert scalar("SELECT 1") == 1


def test_percent_signs_reach_postgresql_single(postgres: None) -> None:
    sql = "SELECT id FROM testapp_book WHERE title LIKE '50%%' AND pages > %s"
    for statement, params in ((sql, None), (sql, [3]), (sql.replace("%s", "3"), [])):
        plan = explain(statement, params)
        assert "'50%'" in plan.text and "50%%" not in plan.text


def test_a_timeout_of_zero_is_a_mistake_not_no_timeout() -> None:
    with pytest.raises(ValueError, match="timeout_ms must be at least 1"):
        explain("SELECT 1", [], timeout_ms=0)


def test_values_give_a_plan_for_those_values(postgres: None) -> None:
    plan = explain(*sql_of(Book.objects.filter(title="Dune")))
    assert (plan.method, plan.generic, plan.note) == ("values", False, None)
    assert "'Dune'" in plan.text


def test_seq_scan_over_a_thousand_rows_is_costly(many_books: None, postgres: None) -> None:
    plan = explain(*sql_of(Book.objects.filter(pages__gte=0)[:10]))
    assert plan.tree is not None
    assert plan.tree.node_type == "Limit" and not plan.tree.costly
    [scan] = [each for each in nodes(plan.tree) if each.node_type == "Seq Scan"]
    assert scan.relation == "testapp_book" and scan.rows is not None and scan.rows >= 1000
    assert scan.costly


def test_analyze_runs_the_statement_and_times_it(many_books: None, postgres: None) -> None:
    plan = explain(*sql_of(Book.objects.filter(pages__lt=10)), analyze=True)
    assert plan.analyzed and plan.tree is not None
    assert plan.tree.actual_ms is not None
    assert "actual time=" in plan.text and "Execution Time:" in plan.text
    assert "Rows Removed by Filter: 1490" in plan.text


def test_a_select_calling_a_writing_function_cannot_write(postgres: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION dbperf_test_add_author() RETURNS integer LANGUAGE plpgsql AS $$ "
            "BEGIN INSERT INTO testapp_author (name, email) VALUES ('Written', ''); RETURN 1; "
            "END $$"
        )
    before = Author.objects.count()
    with pytest.raises(ExplainRefused, match="read-only transaction"):
        explain("SELECT dbperf_test_add_author()", [], analyze=True)
    assert Author.objects.count() == before
    assert Author.objects.create(name="Writable again").pk  # the caller is not left read only


def test_what_read_only_allows_is_rolled_back(postgres: None) -> None:
    # A read-only transaction may still write temporary tables: the rollback undoes that.
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE dbperf_scratch (n integer)")
        cursor.execute(
            "CREATE FUNCTION dbperf_test_scratch() RETURNS integer LANGUAGE plpgsql AS $$ "
            "BEGIN INSERT INTO dbperf_scratch VALUES (1); RETURN 1; END $$"
        )
    plan = explain("SELECT dbperf_test_scratch()", [], analyze=True)
    assert plan.analyzed
    assert scalar("SELECT count(*) FROM dbperf_scratch") == 0


def test_a_statement_past_the_timeout_is_cancelled(postgres: None) -> None:
    timeout_before = scalar("SHOW statement_timeout")
    with pytest.raises(ExplainRefused, match="took longer than 200 ms"):
        explain("SELECT pg_sleep(%s)", [3], analyze=True, timeout_ms=200)
    assert scalar("SHOW statement_timeout") == timeout_before
    assert scalar("SHOW transaction_read_only") == "off"
    assert scalar("SELECT 1") == 1
