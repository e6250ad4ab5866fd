"""EXPLAIN for a stored statement, safe by construction: a single SELECT only, always in a
transaction that is rolled back, read only and under a statement timeout.

The flow: check the statement (``tokens.py``: tokens, never a regex over the text) -> build
what to send (``postgres_script``) -> run it in a rolled-back transaction -> a Plan with text
and a tree whose costly nodes are marked (``plans.py``). The caller decides who may ask
(ANALYZE runs the statement).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from django_dbperf.explain.plans import Plan, PlanNode, postgres_tree, sqlite_tree
from django_dbperf.explain.tokens import Dialect, Token, TokenError, numbered_placeholders, tokenize

# Words that make a statement write: the data-modifying statements PostgreSQL allows in WITH.
_WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})
_LOCKS = frozenset({"UPDATE", "SHARE", "NO", "KEY"})  # after FOR: FOR [NO KEY] UPDATE, [KEY] SHARE
# Functions whose effect escapes the rolled-back, read-only transaction (session advisory
# locks, other connections, server signals and files, statistics resets). Not exhaustive: a
# function can hide them; the read-only transaction still stops every write to tables.
_OUTSIDE_TRANSACTION = (
    "pg_advisory_lock", "pg_try_advisory_lock", "dblink", "pg_terminate_backend",
    "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_switch_wal", "pg_stat_reset",
    "pg_stat_statements_reset", "lo_export", "pg_file_write",
)  # fmt: skip
_TIMEOUT_SQLSTATE = "57014"  # query_canceled
_READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction


class ExplainRefused(Exception):
    """The statement cannot be explained here; the message says why, for a person."""


@dataclass(frozen=True)
class Statement:
    """A checked single SELECT: its text (Django's form), $n form and placeholder count."""

    text: str
    numbered: str
    placeholders: int


def check_statement(
    sql: str,
    params: Sequence[Any] | None,
    *,
    dialect: Dialect,
    analyze: bool = False,
    numbered_form: bool = False,
) -> Statement:
    """``sql`` if it is a single SELECT (or WITH ... SELECT) that neither writes nor locks, and
    ``params`` fit it. Raises ExplainRefused otherwise; touches no database.

    ``numbered_form``: the text uses PostgreSQL's ``$n`` placeholders (as pg_stat_statements
    prints it) rather than Django's ``%s``; only a generic plan can be made of it."""
    try:
        tokens = tokenize(sql, dialect)
    except TokenError as error:
        raise ExplainRefused(f"The statement cannot be read: {error}.") from None
    code = [token for token in tokens if token.kind not in ("space", "comment")]
    ends = [index for index, token in enumerate(code) if token.text == ";"]
    if ends and any(token.text != ";" for token in code[ends[0] :]):
        raise ExplainRefused(
            f"The text holds more than one statement (more follows the ';' at character "
            f"{code[ends[0]].start + 1}); only a single SELECT can be explained."
        )
    if ends:
        cut = code[ends[0]].start
        code, tokens = code[: ends[0]], [token for token in tokens if token.start < cut]
    first = next((token for token in code if token.text != "("), None)
    if first is None:
        raise ExplainRefused("There is no statement to explain.")
    if first.keyword not in ("SELECT", "WITH"):
        raise ExplainRefused(
            f"Only a SELECT (or WITH ... SELECT) statement can be explained; this one starts "
            f"with {first.text!r}."
        )
    _refuse_writes(code, numbered_form)
    if numbered_form:
        text = "".join(token.text for token in tokens).strip()
        numbers = [int(t.text[1:]) for t in code if t.kind == "placeholder" and t.text[:1] == "$"]
        return Statement(text, text, max(numbers, default=0))
    numbered, count = numbered_placeholders(tokens)
    if params is not None and len(params) != count:
        raise ExplainRefused(
            f"The statement has {count} placeholder(s) but {len(params)} parameter value(s) "
            f"were given."
        )
    if analyze and params is None and count:
        raise ExplainRefused(
            "EXPLAIN ANALYZE runs the statement, which needs its parameter values; none were "
            "stored, so only a generic plan (without ANALYZE) can be shown."
        )
    return Statement("".join(token.text for token in tokens).strip(), numbered.strip(), count)


def _refuse_writes(code: list[Token], numbered_form: bool = False) -> None:
    for index, token in enumerate(code):
        following = code[index + 1] if index + 1 < len(code) else None
        if token.keyword == "FOR" and following is not None and following.keyword in _LOCKS:
            raise ExplainRefused(
                "SELECT ... FOR UPDATE/SHARE locks rows; only a plain SELECT can be explained."
            )
        if token.keyword in _WRITES:
            raise ExplainRefused(
                f"The statement contains {token.keyword}: only statements that only read can "
                f"be explained (a data-modifying WITH counts too)."
            )
        if token.keyword == "INTO":
            raise ExplainRefused("SELECT ... INTO creates a table; it cannot be explained.")
        if token.kind == "placeholder" and token.text.startswith("$") and not numbered_form:
            raise ExplainRefused(
                f"The statement uses a {token.text} placeholder; explain() expects Django's "
                f"form, with %s placeholders."
            )
        name = token.text.strip('"').lower()
        called = following is not None and following.text == "("
        if called and token.kind in ("word", "quoted") and name.startswith(_OUTSIDE_TRANSACTION):
            raise ExplainRefused(
                f"The statement calls {name}(), whose effect would outlast the rolled-back "
                f"transaction; it cannot be explained."
            )


@dataclass(frozen=True)
class PostgresScript:
    """What is sent, in order, inside the rolled-back transaction; ``cleanup`` runs after."""

    method: str
    setup: tuple[str, ...]
    explain: str
    params: list[Any] | None
    cleanup: str | None
    generic: bool


def postgres_script(
    statement: Statement,
    params: Sequence[Any] | None,
    *,
    pg_version: int,
    analyze: bool = False,
    timeout_ms: int = 5000,
    name: str = "",
) -> PostgresScript:
    """What explain() sends for a checked statement to a server of ``pg_version`` (150004)."""
    setup: tuple[str, ...] = (
        f"SET LOCAL statement_timeout = {int(timeout_ms)}",
        # Even a function with side effects cannot write.
        "SET LOCAL transaction_read_only = on",
        # The tokenizer reads '...' without backslash escapes: make the server agree.
        "SET LOCAL standard_conforming_strings = on",
    )
    if params is not None or statement.placeholders == 0:
        options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
        explain = f"EXPLAIN ({options}) {statement.text}"
        return PostgresScript("values", setup, explain, list(params or []), None, False)
    if pg_version >= 160000:
        explain = f"EXPLAIN (GENERIC_PLAN, FORMAT JSON) {statement.numbered}"
        return PostgresScript("GENERIC_PLAN", setup, explain, None, None, True)
    # Before 16: a prepared statement planned generically. The plan is built without the
    # values, so the NULL arguments do not shape it (under the default plan_cache_mode a
    # custom plan for the NULLs would be used: "One-Time Filter: false").
    name = name or f"dbperf_explain_{secrets.token_hex(8)}"
    setup += (
        "SET LOCAL plan_cache_mode = force_generic_plan",
        f"PREPARE {name} AS {statement.numbered}",
    )
    nulls = ", ".join(["NULL"] * statement.placeholders)
    explain = f"EXPLAIN (FORMAT JSON) EXECUTE {name}({nulls})"
    # PREPARE is not transactional: the rollback keeps it, so it is deallocated by name (never
    # DEALLOCATE ALL, which would drop the connection's other prepared statements).
    return PostgresScript(
        "PREPARE + force_generic_plan", setup, explain, None, f"DEALLOCATE {name}", True
    )


def explain(
    sql: str,
    params: Sequence[Any] | None,
    *,
    using: str = "default",
    analyze: bool = False,
    timeout_ms: int = 5000,
    sqlite_setup: Sequence[str] = (),
) -> Plan:
    """The plan of the stored statement ``sql`` (Django's form, ``%s`` placeholders).

    ``params`` None means the values were not stored: a generic plan. ``analyze`` runs the
    statement (PostgreSQL only, needs ``params``). ``sqlite_setup``: trusted statements of
    django_dbperf's own (a trial ``CREATE INDEX``) run first on SQLite, in the same rolled-back
    transaction. Raises ExplainRefused, saying why, for a statement that is not a single
    SELECT and for any error the database reports.
    """
    if timeout_ms < 1:  # 0 would switch statement_timeout off
        raise ValueError(f"timeout_ms must be at least 1 millisecond, not {timeout_ms!r}.")
    connection = connections[using]
    if connection.vendor not in ("postgresql", "sqlite"):
        vendor = connection.vendor
        raise ExplainRefused(f"EXPLAIN is available on PostgreSQL and SQLite, not {vendor}.")
    dialect: Dialect = "postgresql" if connection.vendor == "postgresql" else "sqlite"
    if sqlite_setup and dialect != "sqlite":
        raise ValueError("sqlite_setup is for SQLite (PostgreSQL tries indexes with hypopg).")
    statement = check_statement(sql, params, dialect=dialect, analyze=analyze)
    if dialect == "postgresql":
        version = int(cast(Any, connection).pg_version)
        script = postgres_script(
            statement, params, pg_version=version, analyze=analyze, timeout_ms=timeout_ms
        )
        document = _guarded(lambda: _run_postgres(connection, script), timeout_ms)
        return _postgres_plan(document, script, analyze)
    if analyze:
        raise ExplainRefused("SQLite has no EXPLAIN ANALYZE: it shows the query plan only.")
    values = list(params) if params is not None else [None] * statement.placeholders
    # EXPLAIN QUERY PLAN runs nothing, so there is nothing to time out.
    explain_sql = f"EXPLAIN QUERY PLAN {statement.text}"
    rows = _guarded(lambda: _run(connection, sqlite_setup, explain_sql, values), timeout_ms)
    tree, text = sqlite_tree(rows)
    generic = params is None and statement.placeholders > 0
    note = "SQLite shows the query plan only: no costs, row estimates or timings."
    if generic:
        note += " No parameter values were stored: the plan was made with NULLs."
    return Plan(text, tree, generic, False, "sqlite", note, "EXPLAIN QUERY PLAN")


def _guarded[T](run: Callable[[], T], timeout_ms: int) -> T:
    try:
        result = run()
    except DatabaseError as error:
        sqlstate = getattr(error.__cause__, "sqlstate", None)
        message = str(error).strip()
        if sqlstate == _TIMEOUT_SQLSTATE:
            raise ExplainRefused(
                f"The EXPLAIN took longer than {timeout_ms} ms and was cancelled "
                f"(statement_timeout); nothing was changed."
            ) from error
        if sqlstate == _READ_ONLY_SQLSTATE:
            raise ExplainRefused(
                f"The statement tried to write, and EXPLAIN runs it read only: {message}"
            ) from error
        raise ExplainRefused(f"The database refused the EXPLAIN: {message}") from error
    return result


def _run(
    connection: BaseDatabaseWrapper, setup: Sequence[str], sql: str, params: list[Any] | None
) -> list[tuple[Any, ...]]:
    """``sql`` after ``setup``, in a transaction (a savepoint inside the caller's) rolled back."""
    with transaction.atomic(using=connection.alias):
        try:
            with connection.cursor() as cursor:
                for statement in setup:
                    cursor.execute(statement)
                cursor.execute(sql, params)
                return list(cursor.fetchall())
        finally:
            # Last: once set, Django refuses further queries in the block.
            transaction.set_rollback(True, using=connection.alias)


def _run_postgres(connection: BaseDatabaseWrapper, script: PostgresScript) -> Any:
    try:
        ((document,),) = _run(connection, script.setup, script.explain, script.params)
    finally:
        # After the rollback: an error aborts the transaction, where DEALLOCATE could not run.
        if script.cleanup and _prepared(connection, script.cleanup.split()[-1]):
            with connection.cursor() as cursor:
                cursor.execute(script.cleanup)
    return document


def _prepared(connection: BaseDatabaseWrapper, name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_prepared_statements WHERE name = %s", [name])
        return cursor.fetchone() is not None


def _postgres_plan(document: Any, script: PostgresScript, analyze: bool) -> Plan:
    # The text is rendered from the JSON rather than asked for with a second EXPLAIN: with
    # ANALYZE that would run the statement twice (twice the load, and two different timings),
    # and this way the text and the tree always describe the same plan.
    tree, text = postgres_tree(document)
    note = (
        "A generic plan: planned without parameter values ($1, $2... stand for them), so row "
        "estimates are averages."
        if script.generic
        else None
    )
    return Plan(text, tree, script.generic, analyze, "postgresql", note, script.method)


__all__ = [
    "ExplainRefused",
    "Plan",
    "PlanNode",
    "check_statement",
    "explain",
    "postgres_script",
    "postgres_tree",
    "sqlite_tree",
]
