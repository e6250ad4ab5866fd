"""Tables that change or are read without a statement naming them: from model metadata and from
``DBPERF["CACHE"]``'s ``DEPENDS_ON`` and ``ALSO_WRITES``.

Writes (``tables_changed_with()``): a ``DELETE`` also changes the tables whose foreign keys
to it have a database-level ``on_delete`` (Django 6.1's ``DB_CASCADE``, ``DB_SET_NULL``,
``DB_SET_DEFAULT``; recursively through ``DB_CASCADE``); ``TRUNCATE ... CASCADE`` empties every
table with a foreign key to a truncated one (recursively); a write to a table named in
``ALSO_WRITES`` changes the tables its triggers write.

Reads (``read_dependencies()``): a read of a table named in ``DEPENDS_ON`` (a view) depends on
the tables it reads. A read of an unmanaged model's table that nothing declares is refused: its
rows may change with no statement the cache sees.

The model metadata is read once per app registry, the declarations once per ``DBPERF`` setting.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from django.apps import apps
from django.apps.registry import Apps
from django.db import models
from django.db.models import Model

from django_dbperf.conf import SETTING_NAME, get_config

logger = logging.getLogger("django_dbperf")

# What a write statement may do to the rows of the tables it names (``tables.py`` tells).
WRITE = "write"  # INSERT, UPDATE, TRUNCATE without CASCADE: only those tables change
DELETE = "delete"  # may delete rows (DELETE, REPLACE, WITH, MERGE): ON DELETE actions run
TRUNCATE_CASCADE = "truncate cascade"  # also empties every table with a foreign key to them

# Django 6.1's database-level on_delete (absent from Django 5.2, hence getattr), and whether it
# deletes the referencing rows (which then run their own ON DELETE actions) or updates them.
_DB_ON_DELETE: dict[object, bool] = {
    action: name == "DB_CASCADE"
    for name in ("DB_CASCADE", "DB_SET_NULL", "DB_SET_DEFAULT")
    if (action := getattr(models, name, None)) is not None
}


def inherited_tables(model: type[Model]) -> frozenset[str]:
    """The tables a model's rows live in: its own and every multi-table inheritance ancestor's
    (a proxy's are its concrete model's)."""
    opts = model._meta
    return frozenset({opts.db_table, *(parent._meta.db_table for parent in opts.get_parent_list())})


@dataclass(frozen=True)
class _Schema:
    """What the models of one app registry say about their tables."""

    # table -> (table whose rows reference it with a database-level on_delete, rows deleted?)
    on_delete: Mapping[str, frozenset[tuple[str, bool]]]
    # table -> the tables with a foreign key to it (any on_delete)
    referencing: Mapping[str, frozenset[str]]
    # table of an unmanaged model (typically a view) that no managed model shares -> its label
    unmanaged: Mapping[str, str]


@functools.cache
def _schema(registry: Apps) -> _Schema:
    on_delete: dict[str, set[tuple[str, bool]]] = {}
    referencing: dict[str, set[str]] = {}
    managed: set[str] = set()
    unmanaged: dict[str, str] = {}
    for model in registry.get_models(include_auto_created=True):
        opts = model._meta
        if opts.proxy:
            continue  # its concrete model is listed too
        if opts.managed:
            managed.add(opts.db_table)
        else:
            unmanaged.setdefault(opts.db_table, opts.label)
        for field in opts.local_concrete_fields:
            related = field.related_model
            if not (field.many_to_one or field.one_to_one) or related is None:
                continue
            # The referenced table; a to_field inherited from a parent lives in the parent's.
            targets = {related._meta.db_table}
            targets |= {target.model._meta.db_table for target in field.foreign_related_fields}  # type: ignore[attr-defined]
            deletes = _DB_ON_DELETE.get(field.remote_field.on_delete)  # type: ignore[union-attr]
            for target in targets:
                referencing.setdefault(target, set()).add(opts.db_table)
                if deletes is not None:
                    on_delete.setdefault(target, set()).add((opts.db_table, deletes))
    return _Schema(
        on_delete={table: frozenset(found) for table, found in on_delete.items()},
        referencing={table: frozenset(found) for table, found in referencing.items()},
        unmanaged={table: label for table, label in unmanaged.items() if table not in managed},
    )


@dataclass(frozen=True)
class _Declared:
    """``DEPENDS_ON`` and ``ALSO_WRITES`` as tables."""

    also_writes: Mapping[str, frozenset[str]]  # table -> the tables its triggers write
    depends_on: Mapping[str, frozenset[str]]  # table -> the tables a read of it depends on
    # The tables a read or a write must look up (the others pass through untouched).
    read_watched: frozenset[str]
    write_watched: frozenset[str]
    delete_watched: frozenset[str]


def _declarations(registry: Apps, declared: object, strict: bool) -> dict[str, frozenset[str]]:
    """``{"app.Model": ["app.Other", ...]}`` as ``{table: tables}`` (a listed model's tables
    include its multi-table parents'). A value that is not a list drops its entry; a label that
    is not a model (check ``dbperf.E007``) drops its whole entry with ``strict`` (reads of a
    view that is not fully declared are then refused, never trusted), else only itself (a
    trigger's other tables are still invalidated)."""
    tables: dict[str, frozenset[str]] = {}
    if not isinstance(declared, Mapping):
        return tables
    for label, listed in declared.items():
        if not isinstance(listed, list | tuple):
            continue
        try:
            table = registry.get_model(str(label))._meta.db_table
        except (LookupError, ValueError):
            continue
        found: set[str] = set()
        unknown = False
        for item in listed:
            try:
                found |= inherited_tables(registry.get_model(str(item)))
            except (LookupError, ValueError):
                unknown = True
        if not (unknown and strict):
            tables[table] = tables.get(table, frozenset()) | found
    return tables


@functools.cache
def _declared() -> _Declared:
    """The declarations of the current settings, over the project's app registry (no argument:
    this lookup runs for every write statement and every cached read)."""
    config = get_config()["CACHE"]
    schema = _schema(apps)
    also_writes = _declarations(apps, config["ALSO_WRITES"], strict=False)
    depends_on = _declarations(apps, config["DEPENDS_ON"], strict=True)
    return _Declared(
        also_writes=also_writes,
        depends_on=depends_on,
        read_watched=frozenset(depends_on) | frozenset(schema.unmanaged),
        write_watched=frozenset(also_writes),
        delete_watched=frozenset(also_writes) | frozenset(schema.on_delete),
    )


def tables_changed_with(written: frozenset[str], sql_kind: str) -> frozenset[str]:
    """``written`` (the tables a statement of ``sql_kind`` names) and every table the database
    changes along with them: by database-level ``on_delete``, ``TRUNCATE ... CASCADE`` and the
    triggers declared in ``ALSO_WRITES``."""
    declared = _declared()
    if sql_kind == WRITE and written.isdisjoint(declared.write_watched):
        return written
    if sql_kind == DELETE and written.isdisjoint(declared.delete_watched):
        return written
    return _changed(written, sql_kind)


@functools.lru_cache(maxsize=1024)
def _changed(written: frozenset[str], sql_kind: str) -> frozenset[str]:
    schema, declared = _schema(apps), _declared()
    changed = set(written)
    if sql_kind == TRUNCATE_CASCADE:
        pending = list(written)
        while pending:
            for table in schema.referencing.get(pending.pop(), ()):
                if table not in changed:
                    changed.add(table)
                    pending.append(table)
    # (table, whether its rows may be deleted): a deletion runs the database's on_delete.
    todo = [(table, sql_kind == DELETE) for table in changed]
    done: set[tuple[str, bool]] = set()
    while todo:
        item = todo.pop()
        if item in done:
            continue
        done.add(item)
        table, deletes = item
        # A trigger may delete as well as write: its tables' on_delete apply too.
        following = [(target, True) for target in declared.also_writes.get(table, ())]
        if deletes:
            following += schema.on_delete.get(table, ())
        for target, target_deletes in following:
            changed.add(target)
            todo.append((target, target_deletes))
    return frozenset(changed)


def read_dependencies(tables: frozenset[str]) -> tuple[frozenset[str], str | None]:
    """The tables a read of ``tables`` depends on: ``tables``, and for each one ``DEPENDS_ON``
    names, the tables it reads (recursively); and why the read must not be cached (it reads an
    unmanaged model's table that no declaration covers), or None."""
    if tables.isdisjoint(_declared().read_watched):
        return tables, None
    return _read(tables)


_logged: set[str] = set()


@functools.lru_cache(maxsize=1024)
def _read(tables: frozenset[str]) -> tuple[frozenset[str], str | None]:
    schema, declared = _schema(apps), _declared()
    found = set(tables)
    pending = list(tables)
    while pending:
        for table in declared.depends_on.get(pending.pop(), ()):
            if table not in found:
                found.add(table)
                pending.append(table)
    undeclared = sorted(
        table for table in found if table in schema.unmanaged and table not in declared.depends_on
    )
    if not undeclared:
        return frozenset(found), None
    reasons = [_undeclared(schema.unmanaged[table], table) for table in undeclared]
    for table, reason in zip(undeclared, reasons, strict=True):
        if table not in _logged:
            _logged.add(table)
            logger.warning("django_dbperf cache: %s", reason)
    return frozenset(found), " ".join(reasons)


def _undeclared(label: str, table: str) -> str:
    return (
        f"{label} is an unmanaged model (Meta.managed = False, e.g. a database view), so the "
        f"cache cannot see what changes its table {table}: reads of it are served uncached. "
        f'To cache them, list the models whose tables it reads in {SETTING_NAME}["CACHE"]'
        f'["DEPENDS_ON"], e.g. {{"{label}": ["app_label.Model", ...]}} (an empty list if '
        "only statements sent through Django change it)."
    )


def clear_dependencies(*, setting: str, **kwargs: object) -> None:
    """``setting_changed`` receiver: new declarations apply at once (and are logged again)."""
    if setting == SETTING_NAME:
        _schema.cache_clear()
        _declared.cache_clear()
        _changed.cache_clear()
        _read.cache_clear()
        _logged.clear()
