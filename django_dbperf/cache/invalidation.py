"""Writes bump the versions of the tables they change: seen as statements and as model signals.

The statement wrapper sees every INSERT, UPDATE, DELETE and TRUNCATE a connection sends, so
``update()``, bulk operations, cascades, many-to-many changes and raw SQL invalidate too; the
signals (``post_save``, ``post_delete``, ``m2m_changed``) cover the same writes once more.

Inside a transaction a write bumps at once (closing the window while the transaction runs) and
again after commit (``on_commit``), and marks its tables dirty for that transaction: reads of
them bypass the cache until it ends, since they see data nobody else does. Every savepoint
level that writes registers its own commit bump (a savepoint that rolls back takes its
callbacks with it). A rolled-back transaction bumps nothing at commit; its early bumps only
cost misses.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from django.apps import apps
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model

from django_dbperf.cache.dependencies import inherited_tables
from django_dbperf.cache.namespace import database_namespace, qualified
from django_dbperf.cache.narrow import RowWrite, row_write
from django_dbperf.cache.skipped import skipped_tables
from django_dbperf.cache.store import STORE, logger
from django_dbperf.cache.tables import written_tables
from django_dbperf.conf import cache_configured


@dataclass
class TransactionWrites:
    """The tables one transaction (one outermost atomic block) has written."""

    outermost: object
    using: str
    tables: set[str] = field(default_factory=set)
    # The savepoint stacks that registered a commit bump. Django drops the callbacks of a
    # savepoint that rolls back, so each level that writes registers its own.
    scheduled: set[tuple[str, ...]] = field(default_factory=set)
    bumped: bool = False

    def bump_after_commit(self) -> None:
        if not self.bumped:  # one bump per commit, however many levels registered one
            self.bumped = True
            STORE.bump(qualified(self.using, self.tables))


_STATE = "_dbperf_transaction_writes"


def _current_writes(connection: BaseDatabaseWrapper) -> TransactionWrites | None:
    """This connection's open transaction's writes (None outside one, or before any write)."""
    writes: TransactionWrites | None = getattr(connection, _STATE, None)
    if writes is None:
        return None
    blocks = connection.atomic_blocks
    if not connection.in_atomic_block or not blocks or blocks[0] is not writes.outermost:
        setattr(connection, _STATE, None)  # that transaction is over
        return None
    return writes


# Why a read of a table written by the open transaction is served uncached (told to observers).
DIRTY_READ = "it reads a table this transaction wrote (the cache holds committed rows only)"


def dirty_tables(using: str) -> set[str]:
    """Tables written by the transaction open on ``using`` (reads of them skip the cache)."""
    writes = _current_writes(connections[using])
    return writes.tables if writes is not None else set()


def tables_written(connection: BaseDatabaseWrapper, tables: Iterable[str]) -> None:
    """Invalidate ``tables`` now, and again when the open transaction commits."""
    tables = set(tables)
    if not tables or not cache_configured():
        return
    for table in tables:
        STORE.count(model_label(table), "invalidation")
    STORE.bump(qualified(connection.alias, tables))
    if not connection.in_atomic_block:
        return
    writes = _current_writes(connection)
    if writes is None:
        writes = TransactionWrites(connection.atomic_blocks[0], connection.alias)
        setattr(connection, _STATE, writes)
    writes.tables |= tables
    level = tuple(connection.savepoint_ids)
    if level not in writes.scheduled:
        writes.scheduled.add(level)
        # Runs after the outermost block commits, with every table the transaction wrote.
        # (A project's callback registered earlier that raises stops Django from running the
        # later ones, this one included: docs/cache.rst says so.)
        transaction.on_commit(writes.bump_after_commit, using=connection.alias, robust=True)


def write_wrapper(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """``execute_wrapper`` on every connection: a write statement invalidates its tables."""
    result = execute(sql, params, many, context)
    # Projects that never set DBPERF["CACHE"] pay this one cached call per statement.
    if cache_configured():
        try:
            _invalidate(sql, params, many, context)
        except Exception:
            # The write happened; which versions it changes could not be told (e.g. the
            # NAMESPACE hook failed): every entry is distrusted instead of failing the write.
            logger.exception(
                "django_dbperf cache: a write's versions are unknown; invalidating all"
            )
            STORE.invalidate_all()
    return result


def _invalidate(sql: str, params: Any, many: bool, context: dict[str, Any]) -> None:
    tables = written_tables(sql) - skipped_tables()  # no cached read uses those (skipped.py)
    if not tables:
        return
    connection = context["connection"]
    row = None
    if len(tables) == 1 and not many and not connection.in_atomic_block:
        row = _saved_row(next(iter(tables)), sql, params, connection)
    if row is None:
        tables_written(connection, tables)
        return
    STORE.count(model_label(row.table), "invalidation")
    database = database_namespace(connection.alias)
    STORE.bump_row(replace(row, table=f"{database}/{row.table}"))


_SAVE_TABLE = Model._save_table.__code__  # type: ignore[attr-defined]
_SAVE_DEPTH = 24  # frames between this wrapper and Model._save_table(), with room to spare


def _saved_row(
    table: str, sql: str, params: Any, connection: BaseDatabaseWrapper
) -> RowWrite | None:
    """The row of the ``Model.save()`` running this statement, if it is one: ``_save_table()``
    on the stack, and the statement itself one it sends for that row (an ``UPDATE`` whose
    ``WHERE`` is the instance's primary key, or a one-row ``INSERT``). Other statements on the
    table issued inside a save (a field's ``pre_save()`` shifting sibling rows) are not. In a
    transaction, rows are not told apart: its commit invalidates whole tables."""
    frame = sys._getframe(2)
    for _ in range(_SAVE_DEPTH):
        if frame.f_code is _SAVE_TABLE:
            variables = frame.f_locals
            cls, instance = variables.get("cls"), variables.get("self")
            if cls is None or cls._meta.db_table != table or not isinstance(instance, cls):
                return None
            insert = sql.lstrip()[:6].upper() == "INSERT"
            if insert:
                if not _ONE_ROW_INSERT.match(sql):
                    return None
            elif not _updates_only(cls, instance, sql, params, connection):
                return None
            return row_write(instance, cls, variables.get("update_fields"), insert)
        if frame.f_back is None:
            return None
        frame = frame.f_back
    return None


# One parenthesised row of placeholders (no function calls, no second row), maybe RETURNING.
_ONE_ROW_INSERT = re.compile(
    r"\s*INSERT\s+INTO\s+\S+\s*\([^()]*\)\s*VALUES\s*\([^()]*\)\s*(?:RETURNING\s[^()]*)?;?\s*\Z",
    re.IGNORECASE,
)


def _updates_only(
    cls: type[Model], instance: Model, sql: str, params: Any, connection: BaseDatabaseWrapper
) -> bool:
    """Whether ``sql`` is ``UPDATE <table> SET ... WHERE <table>.<pk> = %s`` for ``instance``."""
    quote = connection.ops.quote_name
    pk_field: Any = cls._meta.pk
    where = f" WHERE {quote(cls._meta.db_table)}.{quote(pk_field.column)} = %s"
    statement = _RETURNING.sub("", sql.rstrip().rstrip(";"))
    if not statement.endswith(where) or statement.count(" WHERE ") != 1:
        return False
    if not isinstance(params, list | tuple) or not params:
        return False
    try:
        expected = pk_field.get_db_prep_value(instance.__dict__.get(pk_field.attname), connection)
    except Exception:
        return False
    return type(params[-1]) is type(expected) and bool(params[-1] == expected)


_RETURNING = re.compile(r"\s+RETURNING\s[^()]*\Z", re.IGNORECASE)


def install(connection: BaseDatabaseWrapper, **kwargs: object) -> None:
    """``connection_created`` receiver. A statement that fails raises through the wrapper
    before it invalidates anything, so only writes that happened bump versions."""
    wrappers = connection.execute_wrappers
    if write_wrapper not in wrappers:
        # First, so the pop() of a connection.execute_wrapper() block open right now removes
        # that block's own wrapper, never this one.
        wrappers.insert(0, write_wrapper)


def install_on_open_connections() -> None:
    for connection in connections.all(initialized_only=True):
        install(connection)


@functools.cache
def _labels_by_table() -> dict[str, str]:
    return {model._meta.db_table: model._meta.label for model in apps.get_models()}


def model_label(table: str) -> str:
    """``"app_label.Model"`` for a model's table; the table name itself for others."""
    return _labels_by_table().get(table, table)


def model_tables(model: type[Model]) -> set[str]:
    """The model's table and its multi-table-inheritance ancestors' tables (all levels)."""
    return set(inherited_tables(model))


def _statements_seen(using: str) -> bool:
    """Whether the statement wrapper already invalidated this connection's writes."""
    return write_wrapper in connections[using].execute_wrappers


def on_save_or_delete(sender: type[Model], instance: Model, using: str, **kwargs: Any) -> None:
    # The safety net for a connection without the statement wrapper; with it, the statement
    # already bumped these tables and a second round trip would only slow save() down.
    if not _statements_seen(using):
        tables_written(connections[using], model_tables(sender))


def on_m2m_changed(
    sender: type[Model], instance: Model, action: str, using: str, **kwargs: Any
) -> None:
    if action.startswith("post_") and not _statements_seen(using):
        tables_written(connections[using], {sender._meta.db_table})
