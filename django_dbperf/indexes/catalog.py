"""What the advisor knows about tables: the model and fields behind each, the indexes that
exist, and the table's size and write rate.

Tables map to models through ``_meta.db_table`` (auto-created many-to-many tables included);
columns map to fields through ``field.column``. A table or column with no model behind it
gets no suggestion: an index the project's code does not declare would drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import connections, models, router

DESCENDING = 1  # pg_index.indoption bit for a DESC column


@dataclass(frozen=True)
class ExistingIndex:
    name: str
    columns: tuple[str, ...]  # key columns; expressions appear as their text
    descending: tuple[bool, ...]
    included: tuple[str, ...]
    unique: bool
    partial: bool
    valid: bool
    method: str


@dataclass(frozen=True)
class TableFacts:
    table: str
    model: type[models.Model] | None
    rows: float  # the planner's estimate (reltuples); -1 when never analysed
    size_bytes: int
    writes: int  # rows inserted, updated and deleted since the statistics reset
    indexes: tuple[ExistingIndex, ...]

    def field_name(self, column: str) -> str | None:
        """The model field stored in ``column`` (its name, as Meta.indexes takes it)."""
        if self.model is None:
            return None
        for field in self.model._meta.concrete_fields:
            if field.column == column:
                return str(field.name)
        return None

    @property
    def model_label(self) -> str | None:
        return self.model._meta.label if self.model is not None else None


def models_by_table(using: str) -> dict[str, type[models.Model]]:
    """db_table -> model, for the models migrated on ``using`` (auto-created M2M included)."""
    found: dict[str, type[models.Model]] = {}
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if meta.proxy or not meta.managed or meta.swapped:
            continue
        if not router.allow_migrate_model(using, model):
            continue
        found.setdefault(meta.db_table, model)
    return found


_POSTGRES_INDEXES = """
SELECT c.relname, i.relname, ix.indisunique, ix.indpred IS NOT NULL, ix.indisvalid, am.amname,
       ix.indnkeyatts,
       ARRAY(SELECT pg_get_indexdef(ix.indexrelid, k, true)
             FROM generate_series(1, ix.indnatts) AS k ORDER BY k),
       ix.indoption::int2[]
FROM pg_index ix
JOIN pg_class i ON i.oid = ix.indexrelid
JOIN pg_class c ON c.oid = ix.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_am am ON am.oid = i.relam
WHERE n.nspname = ANY(current_schemas(false)) AND c.relname = ANY(%s)
ORDER BY c.relname, i.relname
"""

_POSTGRES_TABLES = """
SELECT c.relname, c.reltuples, pg_total_relation_size(c.oid),
       COALESCE(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE n.nspname = ANY(current_schemas(false)) AND c.relkind IN ('r', 'p') AND c.relname = ANY(%s)
"""


def _unquote(text: str) -> str:
    return text[1:-1].replace('""', '"') if text.startswith('"') and text.endswith('"') else text


def table_facts(tables: list[str], using: str) -> dict[str, TableFacts]:
    """Facts about each of ``tables`` that exists on ``using``."""
    connection = connections[using]
    by_table = models_by_table(using)
    if connection.vendor == "postgresql":
        return _postgres_facts(tables, using, by_table)
    return _generic_facts(tables, using, by_table)


def _postgres_facts(
    tables: list[str], using: str, by_table: dict[str, type[models.Model]]
) -> dict[str, TableFacts]:
    indexes: dict[str, list[ExistingIndex]] = {}
    with connections[using].cursor() as cursor:
        cursor.execute(_POSTGRES_INDEXES, [tables])
        for table, name, unique, partial, valid, method, keys, columns, options in cursor:
            keys = int(keys)
            indexes.setdefault(table, []).append(
                ExistingIndex(
                    name,
                    tuple(_unquote(column) for column in columns[:keys]),
                    tuple(bool(int(option) & DESCENDING) for option in (options or [])[:keys]),
                    tuple(_unquote(column) for column in columns[keys:]),
                    bool(unique),
                    bool(partial),
                    bool(valid),
                    method,
                )
            )
        cursor.execute(_POSTGRES_TABLES, [tables])
        rows: list[Any] = cursor.fetchall()
    return {
        table: TableFacts(
            table,
            by_table.get(table),
            float(reltuples),
            int(size),
            int(writes),
            tuple(indexes.get(table, ())),
        )
        for table, reltuples, size, writes in rows
    }


def _generic_facts(
    tables: list[str], using: str, by_table: dict[str, type[models.Model]]
) -> dict[str, TableFacts]:
    """SQLite and others: Django's introspection, and a count for the size (dev databases)."""
    connection = connections[using]
    facts: dict[str, TableFacts] = {}
    with connection.cursor() as cursor:
        existing = set(connection.introspection.table_names(cursor))
        for table in tables:
            if table not in existing:
                continue
            constraints = connection.introspection.get_constraints(cursor, table)
            found = tuple(
                ExistingIndex(
                    name,
                    tuple(info["columns"] or ()),
                    tuple(order == "DESC" for order in (info.get("orders") or ())),
                    (),
                    bool(info["unique"]),
                    False,
                    True,
                    "btree",
                )
                for name, info in sorted(constraints.items())
                if info["index"] or info["unique"] or info["primary_key"]
            )
            quoted = connection.ops.quote_name(table)
            cursor.execute(f"SELECT COUNT(*) FROM {quoted}")
            (count,) = cursor.fetchone()
            facts[table] = TableFacts(table, by_table.get(table), float(count), 0, 0, found)
    return facts
