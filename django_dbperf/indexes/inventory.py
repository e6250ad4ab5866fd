"""The index inventory: indexes to drop or fix, each traced to the model code that declares it.

Four kinds of problem, on PostgreSQL: unused, redundant and INVALID indexes (the health checks'
rules, ``django_dbperf.health``), and foreign keys with no index leading with their column on
large tables. Each index is traced (``trace_index``) to what makes Django create it (a field, a
``Meta.indexes`` or ``dbperf_indexes.py`` entry, a constraint, the primary key, a many-to-many
table) by name for named declarations and by columns and kind for generated names, so the advice
says what to edit, and where.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from django.apps import apps
from django.db import connections, models, transaction

from django_dbperf.capture.roots import short_path
from django_dbperf.health import duplicate_indexes, invalid_indexes, unused_indexes
from django_dbperf.health.findings import MIN_SERVER_VERSION, STATEMENT_TIMEOUT, UnusedIndex
from django_dbperf.indexes.declarations import MODULE_NAME, Declared, declared

if TYPE_CHECKING:
    from django.db.backends.postgresql.base import DatabaseWrapper as PostgresWrapper
    from django.db.backends.utils import CursorWrapper

    ModelType = type[models.Model]

__all__ = [
    "KINDS",
    "Declaration",
    "IndexProblem",
    "InventoryUnavailable",
    "index_problems",
    "trace_index",
]

KINDS = ("unused", "redundant", "invalid", "unindexed_foreign_key")
FOREIGN_KEY_MIN_ROWS = 10_000
NOT_DECLARED = "not declared by any model (created outside migrations? drop it or declare it)"
# The operator classes Django's "_like" twin index uses for LIKE on varchar / text columns.
PATTERN_OPCLASSES = ("varchar_pattern_ops", "text_pattern_ops", "bpchar_pattern_ops")


class InventoryUnavailable(Exception):
    """``index_problems()`` was asked about a database it cannot read; the message says why."""


@dataclass(frozen=True)
class Declaration:
    """What makes Django create an index."""

    model: str | None  # "app_label.ModelName"; None: no model has the table
    source: str  # for a person: "ForeignKey Job.event (...)", "Meta.indexes entry 'x'", ...
    location: str | None  # "path/to/models.py:42"


@dataclass(frozen=True)
class IndexProblem:
    kind: str  # one of KINDS
    table: str
    index: str | None  # None for unindexed_foreign_key
    definition: str | None  # pg_get_indexdef
    size_bytes: int | None
    scans: int | None  # since the statistics reset
    reason: str  # one sentence for a person
    advice: str  # what to do, in Django terms
    declaration: Declaration


# --- Tracing an index to its declaration


@dataclass(frozen=True)
class _Index:
    """What tracing needs to know of an index. None: not known (no such index in the database)."""

    table: str
    name: str
    columns: tuple[str | None, ...]  # key columns; None for an expression
    unique: bool | None
    primary: bool | None
    pattern_ops: bool = False  # Django's "_like" twin of a varchar/text column's index


@dataclass(frozen=True)
class _Match:
    declaration: Declaration
    removal: str  # how to make Django stop creating it


def trace_index(
    table: str,
    index_name: str,
    columns: Sequence[str],
    using: str = "default",
    *,
    models: Iterable[ModelType] | None = None,
) -> Declaration:
    """The code that makes Django create the index ``index_name`` on ``table``.

    ``models``: the model classes to look in, all installed models by default. Whether the
    index is unique or the primary key is read from the database ``using`` when it has it.
    """
    index = _describe(using, table, index_name, tuple(columns))
    return _Tracer(models).trace(index).declaration


class _Tracer:
    """Traces indexes against a set of models, indexed by table once."""

    def __init__(self, models: Iterable[ModelType] | None) -> None:
        self.models = _with_through_models(
            apps.get_models(include_auto_created=True) if models is None else models
        )
        self.by_table: dict[str, list[ModelType]] = {}
        for model in self.models:
            self.by_table.setdefault(model._meta.db_table, []).append(model)
        self.declared = declared()

    def trace(self, index: _Index) -> _Match:
        candidates = self.by_table.get(index.table, [])
        for model in candidates:
            match = self._match(model, index)
            if match is not None:
                return match
        label = candidates[0]._meta.label if candidates else None
        location = _location(candidates[0]) if candidates else None
        removal = f"no model declares it: DROP INDEX CONCURRENTLY {_quoted(index.name)}"
        return _Match(Declaration(label, NOT_DECLARED, location), removal)

    def _match(self, model: ModelType, index: _Index) -> _Match | None:
        owner = model._meta.auto_created
        if owner:
            return _match_through(cast("ModelType", owner), model, index)
        match = (
            self._match_dbperf(model, index)
            or _match_meta_index(model, index)
            or _match_constraint(model, index)
            or _match_primary_key(model, index)
            or _match_field(model, index)
            or _match_unique_together(model, index)
        )
        if match is not None and not model._meta.managed:
            return _unmanaged(model, index, match)
        return match

    def _match_dbperf(self, model: ModelType, index: _Index) -> _Match | None:
        """A Meta.indexes entry that a dbperf_indexes.py module added (not the model itself)."""
        entry = self.declared.get(index.name)
        if entry is None or not entry.added or entry.model_label != model._meta.label:
            return None
        where = f"{entry.module}.INDEXES[{entry.model_name!r}]"
        return _Match(
            Declaration(
                model._meta.label,
                f"dbperf_indexes.py entry {index.name!r} ({entry.module})",
                _module_location(entry),
            ),
            f"remove models.Index {index.name!r} from {where} (and list it in REJECTED so it is "
            "not suggested again), then run makemigrations",
        )


def _match_meta_index(model: ModelType, index: _Index) -> _Match | None:
    meta = model._meta
    if all(declared_index.name != index.name for declared_index in meta.indexes):
        return None
    return _Match(
        Declaration(
            meta.label,
            f"Meta.indexes entry {index.name!r}",
            _location(model, _quoted_pattern(index.name)),
        ),
        f"remove models.Index {index.name!r} from {meta.object_name}.Meta.indexes and run "
        "makemigrations",
    )


def _match_constraint(model: ModelType, index: _Index) -> _Match | None:
    """A unique or exclusion constraint, whose index has the constraint's name."""
    meta = model._meta
    constraint = next((c for c in meta.constraints if c.name == index.name), None)
    if constraint is None:
        return None
    kind = type(constraint).__name__
    return _Match(
        Declaration(
            meta.label,
            f"Meta.constraints entry {index.name!r} ({kind})",
            _location(model, _quoted_pattern(index.name)),
        ),
        f"remove {kind} {index.name!r} from {meta.object_name}.Meta.constraints and run "
        "makemigrations",
    )


def _with_through_models(models: Iterable[ModelType]) -> list[ModelType]:
    """``models`` and the many-to-many tables Django creates for them, without proxies."""
    found: dict[ModelType, None] = {}
    for model in models:
        meta = model._meta
        if meta.proxy or meta.swapped:
            continue
        found[model] = None
        for field in meta.local_many_to_many:
            through = field.remote_field.through
            if isinstance(through, type) and through._meta.auto_created:
                found[through] = None
    return list(found)


def _match_primary_key(model: ModelType, index: _Index) -> _Match | None:
    if index.primary is False or index.pattern_ops:
        return None
    meta = model._meta
    pk_fields = getattr(meta, "pk_fields", None) or [meta.pk]  # pk_fields: Django 5.2+
    if index.columns != tuple(field.column for field in pk_fields):
        return None
    pk = meta.pk
    assert pk is not None
    return _Match(
        Declaration(
            meta.label,
            f"primary key {meta.object_name}.{pk.name}",
            _location(model, _field_pattern(pk.name)),
        ),
        f"keep it: it is {meta.object_name}'s primary key",
    )


def _match_field(model: ModelType, index: _Index) -> _Match | None:
    """A single-column index Django creates for a field's db_index or unique."""
    if len(index.columns) != 1:
        return None
    field = next((f for f in model._meta.local_fields if f.column == index.columns[0]), None)
    if field is None:
        return None
    if index.unique:
        return _field_match(model, field, "unique=True") if field.unique else None
    if index.pattern_ops and (_db_index(field) or field.unique):
        return _pattern_ops_match(model, field)
    if _db_index(field) and not field.unique:
        return _db_index_match(model, field)
    # Unknown kind (the index is not in the database): the field's own index if it has one.
    if index.unique is None and (_db_index(field) or field.unique):
        why = "unique=True" if field.unique else "db_index=True"
        return _field_match(model, field, why)
    return None


def _db_index(field: models.Field[Any, Any]) -> bool:
    return bool(getattr(field, "db_index", False))  # not in django-stubs' Field


def _db_index_match(model: ModelType, field: models.Field[Any, Any]) -> _Match:
    name = f"{model._meta.object_name}.{field.name}"
    if isinstance(field, models.ForeignKey):
        parent = field.related_model._meta.object_name
        return _field_match(
            model,
            field,
            "Django indexes a foreign key unless db_index=False",
            f"add db_index=False to {name} and run makemigrations (deletes of {parent} rows "
            "then read this table to find the rows pointing at them: keep it if they happen)",
        )
    return _field_match(
        model, field, "db_index=True", f"set db_index=False on {name} and run makemigrations"
    )


def _pattern_ops_match(model: ModelType, field: models.Field[Any, Any]) -> _Match:
    """Django's "_like" twin, for LIKE queries, of a varchar/text column's index."""
    name = f"{model._meta.object_name}.{field.name}"
    meta_entry = f"{model._meta.object_name}.Meta"
    unless = "unless queries use LIKE / startswith on it,"
    if field.primary_key:
        why = "primary_key=True"
        removal = (
            f"{unless} drop it in a RunSQL migration (DROP INDEX CONCURRENTLY): Django has no "
            f"option to leave it out of a text primary key such as {name}"
        )
    elif field.unique:
        why = "unique=True"
        removal = (
            f"{unless} replace unique=True on {name} by a models.UniqueConstraint in "
            f"{meta_entry}.constraints (which adds no LIKE index) and run makemigrations"
        )
    else:
        why = "db_index=True"
        removal = (
            f"{unless} replace db_index=True on {name} by models.Index(fields=[{field.name!r}], "
            f"name=...) in {meta_entry}.indexes (which adds no LIKE index) and run makemigrations"
        )
    return _field_match(
        model, field, f"{why}: the extra index Django adds on PostgreSQL for LIKE queries", removal
    )


def _field_match(
    model: ModelType, field: models.Field[Any, Any], why: str, removal: str | None = None
) -> _Match:
    meta = model._meta
    name = f"{meta.object_name}.{field.name}"
    return _Match(
        Declaration(
            meta.label,
            f"{type(field).__name__} {name} ({why})",
            _location(model, _field_pattern(field.name)),
        ),
        removal or f"remove {why} from {name} and run makemigrations",
    )


def _match_unique_together(model: ModelType, index: _Index) -> _Match | None:
    if index.unique is False:
        return None
    meta = model._meta
    for names in meta.unique_together:
        if tuple(meta.get_field(name).column for name in names) == index.columns:  # type: ignore[union-attr]
            entry = repr(tuple(names))
            return _Match(
                Declaration(
                    meta.label,
                    f"Meta.unique_together {entry}",
                    _location(model, r"^\s*unique_together\b"),
                ),
                f"remove {entry} from {meta.object_name}.Meta.unique_together and run "
                "makemigrations",
            )
    return None


def _match_through(owner: ModelType, through: ModelType, index: _Index) -> _Match | None:
    """An index of the table Django creates for a many-to-many field of ``owner``."""
    field = next(
        (f for f in owner._meta.local_many_to_many if f.remote_field.through is through), None
    )
    part = _through_part(through, index)
    if field is None or part is None:
        return None
    name = f"{owner._meta.object_name}.{field.name}"
    return _Match(
        Declaration(
            owner._meta.label,
            f"ManyToManyField {name} (Django's table {index.table}: {part})",
            _location(owner, _field_pattern(field.name)),
        ),
        f"it comes with the many-to-many field {name}: give the field a through model "
        "(through=...) to choose its indexes, then run makemigrations",
    )


def _through_part(through: ModelType, index: _Index) -> str | None:
    meta = through._meta
    if _match_primary_key(through, index) is not None:
        return "its primary key"
    if len(index.columns) > 1 and index.unique is not False:
        return f"its unique pair ({', '.join(str(column) for column in index.columns)})"
    foreign_keys = {f.column for f in meta.local_fields if isinstance(f, models.ForeignKey)}
    if len(index.columns) == 1 and index.columns[0] in foreign_keys:
        return f"the index of its foreign key {index.columns[0]}"
    return None


def _unmanaged(model: ModelType, index: _Index, match: _Match) -> _Match:
    """Django creates no index for a model with managed=False: whoever made the table did."""
    label = model._meta.label
    return _Match(
        match.declaration,
        f"{label} has managed=False, so its migrations do not create or drop this index: "
        f"DROP INDEX CONCURRENTLY {_quoted(index.name)} where the table is maintained",
    )


# --- Where a declaration is written


def _field_pattern(name: str) -> str:
    return rf"^\s*{re.escape(name)}\s*[:=]"


def _quoted_pattern(name: str) -> str:
    return rf"""["']{re.escape(name)}["']"""


def _location(model: ModelType, pattern: str | None = None) -> str | None:
    """``path:line`` of the first line matching ``pattern`` in the class of ``model`` (or a
    parent class, for an inherited field), else of the class statement; None without source.
    """
    classes = [cls for cls in model.__mro__ if issubclass(cls, models.Model)]
    classes = [cls for cls in classes if cls is not models.Model]
    found = [_source(cls) for cls in classes]
    if pattern is not None:
        regex = re.compile(pattern)
        for source in found:
            if source is None:
                continue
            path, lines, start = source
            for offset, line in enumerate(lines):
                if regex.search(line):
                    return f"{short_path(path)}:{start + offset}"
    if found and found[0] is not None:
        return f"{short_path(found[0][0])}:{found[0][2]}"
    return None


def _source(cls: type) -> tuple[str, list[str], int] | None:
    try:
        path = inspect.getsourcefile(cls)
        lines, start = inspect.getsourcelines(cls)
    except (OSError, TypeError):  # defined in a shell, or from a compiled module
        return None
    return (path, lines, start) if path else None


def _module_location(entry: Declared) -> str | None:
    """``path:line`` of the entry's index name in its app's ``dbperf_indexes.py`` (read as text:
    ``declarations`` runs the file without importing it)."""
    path = Path(apps.get_app_config(entry.app_label).path) / f"{MODULE_NAME}.py"
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    regex = re.compile(_quoted_pattern(entry.index.name))
    line = next((number for number, text in enumerate(lines, 1) if regex.search(text)), 1)
    return f"{short_path(str(path))}:{line}"


# --- Reading the database


# Every index outside the system schemas, with its key columns (NULL for an expression) and
# whether one of its operator classes is a pattern_ops one.
INDEXES_SQL = """
SELECT n.nspname AS schema, t.relname AS "table", c.relname AS name,
       ARRAY(SELECT a.attname
             FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE k.position <= i.indnkeyatts
             ORDER BY k.position) AS columns,
       i.indisunique AS is_unique, i.indisprimary AS is_primary, i.indisvalid AS is_valid,
       i.indpred IS NOT NULL AS is_partial, am.amname AS method,
       EXISTS (SELECT 1 FROM unnest(i.indclass::oid[]) AS k(opclass)
               JOIN pg_opclass o ON o.oid = k.opclass
               WHERE o.opcname = ANY(%(pattern_opclasses)s)) AS pattern_ops,
       pg_table_is_visible(t.oid) AS visible,
       pg_get_indexdef(i.indexrelid) AS definition,
       pg_relation_size(i.indexrelid) AS size_bytes, s.idx_scan AS scans
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = c.relam
LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = i.indexrelid
WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
  AND (%(table)s::text IS NULL OR t.relname = %(table)s)
"""

# The planner's row estimate of tables in the search path; -1: never vacuumed or analysed.
TABLE_ROWS_SQL = """
SELECT c.relname, c.reltuples::bigint
FROM pg_class c
WHERE c.relkind IN ('r', 'p') AND pg_table_is_visible(c.oid) AND c.relname = ANY(%(tables)s)
"""


@dataclass(frozen=True)
class _CatalogIndex:
    schema: str
    table: str
    name: str
    columns: list[str | None]
    is_unique: bool
    is_primary: bool
    is_valid: bool
    is_partial: bool
    method: str
    pattern_ops: bool
    visible: bool
    definition: str
    size_bytes: int
    scans: int | None

    def traced(self) -> _Index:
        return _Index(
            self.table,
            self.name,
            tuple(self.columns),
            self.is_unique,
            self.is_primary,
            self.pattern_ops,
        )


@contextmanager
def _reading(using: str) -> Iterator[CursorWrapper]:
    """A cursor in a read-only savepoint with a timeout, rolled back (as the health checks do)."""
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
        cursor.execute("SET LOCAL transaction_read_only = on")
        yield cursor
        transaction.set_rollback(True, using=using)


def _catalog(using: str, table: str | None = None) -> list[_CatalogIndex]:
    params = {"table": table, "pattern_opclasses": list(PATTERN_OPCLASSES)}
    with _reading(using) as cursor:
        cursor.execute(INDEXES_SQL, params)
        names = [column.name for column in cursor.description]
        rows = cursor.fetchall()
    return [_CatalogIndex(**dict(zip(names, row, strict=True))) for row in rows]


def _table_rows(using: str, tables: Collection[str]) -> dict[str, int]:
    with _reading(using) as cursor:
        cursor.execute(TABLE_ROWS_SQL, {"tables": list(tables)})
        return dict(cursor.fetchall())


def _describe(using: str, table: str, name: str, columns: tuple[str, ...]) -> _Index:
    """The index as the database knows it; its kind unknown when the database has no such index."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        found = [index for index in _catalog(using, table) if index.name == name]
        if found:
            known = found[0].traced()
            return _Index(table, name, columns, known.unique, known.primary, known.pattern_ops)
        return _Index(table, name, columns, None, None)
    with connection.cursor() as cursor:
        constraint = connection.introspection.get_constraints(cursor, table).get(name)
    if constraint is None:
        return _Index(table, name, columns, None, None)
    return _Index(table, name, columns, constraint["unique"], constraint["primary_key"])


def _require_postgresql(using: str) -> None:
    connection = connections[using]
    if connection.vendor != "postgresql":
        raise InventoryUnavailable(
            f"The index inventory needs PostgreSQL; the database {using!r} is "
            f"{connection.vendor}. Pass using= the alias of a PostgreSQL database."
        )
    version = cast("PostgresWrapper", connection).pg_version
    if version < MIN_SERVER_VERSION:
        raise InventoryUnavailable(
            f"The index inventory needs PostgreSQL 15 or newer; the database {using!r} runs "
            f"{version // 10000}.{version % 10000}. Upgrade the server."
        )


def _quoted(name: str) -> str:
    """An identifier as SQL needs it: quoted unless plain lower case."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


# --- The problems


def index_problems(
    using: str = "default",
    *,
    min_scans: int = 0,
    min_rows: int = FOREIGN_KEY_MIN_ROWS,
    kinds: Collection[str] | None = None,
    models: Iterable[ModelType] | None = None,
) -> list[IndexProblem]:
    """Indexes to drop or fix on the PostgreSQL database ``using``, each traced to its code.

    - ``unused``: scanned at most ``min_scans`` times since the statistics reset, not unique and
      not backing a constraint (``health.unused_indexes``);
    - ``redundant``: another index serves every query it serves (``health.duplicate_indexes``);
    - ``invalid``: left by a failed concurrent build, not being built now;
    - ``unindexed_foreign_key``: a foreign key of ``models`` whose table has at least
      ``min_rows`` rows (the planner's estimate) and no valid, non-partial btree or hash index
      leading with its column.

    An index can be both unused and redundant: it is then listed under each kind. ``models``:
    the model classes to trace to and check, all installed models by default. Raises
    InventoryUnavailable on another database than PostgreSQL 15+.
    """
    wanted = _wanted(kinds)
    _require_postgresql(using)
    catalog = {(index.schema, index.name): index for index in _catalog(using)}
    tracer = _Tracer(models)
    problems: list[IndexProblem] = []
    if "unused" in wanted:
        problems += _unused(using, min_scans, catalog, tracer)
    if "redundant" in wanted:
        problems += _redundant(using, catalog, tracer)
    if "invalid" in wanted:
        problems += _invalid(using, catalog, tracer)
    if "unindexed_foreign_key" in wanted:
        problems += _unindexed_foreign_keys(using, min_rows, catalog.values(), tracer)
    return problems


def _wanted(kinds: Collection[str] | None) -> frozenset[str]:
    if kinds is None:
        return frozenset(KINDS)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"Unknown index problem kind(s) {unknown}: choose from {list(KINDS)}.")
    return frozenset(kinds)


def _unused(
    using: str, min_scans: int, catalog: dict[tuple[str, str], _CatalogIndex], tracer: _Tracer
) -> list[IndexProblem]:
    problems = []
    for found in unused_indexes(using, max_scans=min_scans):
        index = catalog.get((found.schema, found.index))
        if index is None:  # dropped between the two reads
            continue
        match = tracer.trace(index.traced())
        problems.append(
            IndexProblem(
                kind="unused",
                table=found.table,
                index=found.index,
                definition=index.definition,
                size_bytes=found.size_bytes,
                scans=found.scans,
                reason=(
                    f"{found.index} was scanned {found.scans} time(s) since {_since(found)}, "
                    f"yet every write to {found.table} updates it."
                ),
                advice=f"{match.removal}. Scans are counted per server: check replicas first.",
                declaration=match.declaration,
            )
        )
    return problems


def _since(found: UnusedIndex) -> str:
    if found.stats_reset is None:
        return "the server's statistics began (they were never reset)"
    return f"the statistics were reset at {found.stats_reset:%Y-%m-%d %H:%M %Z}".rstrip()


def _redundant(
    using: str, catalog: dict[tuple[str, str], _CatalogIndex], tracer: _Tracer
) -> list[IndexProblem]:
    problems = []
    for found in duplicate_indexes(using):
        index = catalog.get((found.schema, found.index))
        cover = catalog.get((found.schema, found.covered_by))
        if index is None or cover is None:
            continue
        match = tracer.trace(index.traced())
        advice = match.removal
        if match.declaration == tracer.trace(cover.traced()).declaration:
            advice = (
                f"both {found.index} and {found.covered_by} match {match.declaration.source}: "
                "keep the one its migration created and DROP INDEX CONCURRENTLY the other"
            )
        problems.append(
            IndexProblem(
                kind="redundant",
                table=found.table,
                index=found.index,
                definition=found.definition,
                size_bytes=found.size_bytes,
                scans=index.scans,
                reason=(
                    f"{found.covered_by} serves every query {found.index} serves: "
                    f"{found.covered_by_definition}."
                ),
                advice=advice,
                declaration=match.declaration,
            )
        )
    return problems


def _invalid(
    using: str, catalog: dict[tuple[str, str], _CatalogIndex], tracer: _Tracer
) -> list[IndexProblem]:
    problems = []
    for found in invalid_indexes(using):
        index = catalog.get((found.schema, found.index))
        if index is None:
            continue
        match = tracer.trace(index.traced())
        problems.append(
            IndexProblem(
                kind="invalid",
                table=found.table,
                index=found.index,
                definition=found.definition,
                size_bytes=found.size_bytes,
                scans=index.scans,
                reason=(
                    f"{found.index} is INVALID (a concurrent build failed or was cancelled): "
                    "PostgreSQL updates it on every write but never reads it."
                ),
                advice=_invalid_advice(index, match),
                declaration=match.declaration,
            )
        )
    return problems


def _invalid_advice(index: _CatalogIndex, match: _Match) -> str:
    name = f"{_quoted(index.schema)}.{_quoted(index.name)}"
    drop = f"DROP INDEX CONCURRENTLY {name}"
    if match.declaration.source == NOT_DECLARED:
        return f"{drop} (no model declares it)"
    advice = (
        f"{drop}, then run migrate again (a failed AddIndexConcurrently is not recorded as "
        f"applied), or rebuild it in place with REINDEX INDEX CONCURRENTLY {name}"
    )
    if index.is_unique:
        advice += "; it is UNIQUE: remove the duplicate rows first or the build fails again"
    return advice


# --- Foreign keys without an index


def _unindexed_foreign_keys(
    using: str, min_rows: int, catalog: Iterable[_CatalogIndex], tracer: _Tracer
) -> list[IndexProblem]:
    keys = _checked_foreign_keys(tracer.models)
    rows = _table_rows(using, {model._meta.db_table for model, _ in keys})
    led = {
        (index.table, index.columns[0])
        for index in catalog
        if index.visible
        and index.is_valid
        and not index.is_partial
        and index.method in ("btree", "hash")
        and index.columns
    }
    problems = []
    for model, field in keys:
        table = model._meta.db_table
        estimate = rows.get(table, -1)
        if estimate >= min_rows and (table, field.column) not in led:
            problems.append(_unindexed_problem(model, field, estimate))
    return sorted(problems, key=lambda problem: (problem.table, problem.reason))


def _checked_foreign_keys(
    models_: Iterable[ModelType],
) -> list[tuple[ModelType, models.ForeignKey[Any, Any]]]:
    """Foreign keys whose referenced rows' deletion looks rows up by their column, once per
    (table, column). Not with DO_NOTHING and no database constraint: nothing looks then."""
    found: dict[tuple[str, str], tuple[ModelType, models.ForeignKey[Any, Any]]] = {}
    for model in models_:
        if model._meta.auto_created:  # a many-to-many table: Django indexes both keys
            continue
        for field in model._meta.local_fields:
            if not isinstance(field, models.ForeignKey) or not field.column:
                continue
            if field.remote_field.on_delete is models.DO_NOTHING and not getattr(
                field, "db_constraint", True
            ):
                continue
            found.setdefault((model._meta.db_table, field.column), (model, field))
    return list(found.values())


def _unindexed_problem(
    model: ModelType, field: models.ForeignKey[Any, Any], estimate: int
) -> IndexProblem:
    meta = model._meta
    name = f"{meta.object_name}.{field.name}"
    parent = field.related_model._meta.object_name
    on_delete = getattr(field.remote_field.on_delete, "__name__", "on_delete")
    declared_as = "db_index=False" if not _db_index(field) else "db_index=True, but no such index"
    return IndexProblem(
        kind="unindexed_foreign_key",
        table=meta.db_table,
        index=None,
        definition=None,
        size_bytes=None,
        scans=None,
        reason=(
            f"Deleting {parent} rows looks up {meta.object_name} rows by {field.column} "
            f"(on_delete={on_delete} and the foreign key check), and no index leads with "
            f"{field.column}: each such delete reads all ~{estimate} rows of {meta.db_table}."
        ),
        advice=_unindexed_advice(model, field),
        declaration=Declaration(
            meta.label,
            f"{type(field).__name__} {name} ({declared_as})",
            _location(model, _field_pattern(field.name)),
        ),
    )


def _unindexed_advice(model: ModelType, field: models.ForeignKey[Any, Any]) -> str:
    meta = model._meta
    name = f"{meta.object_name}.{field.name}"
    if not meta.managed:
        return (
            f"{meta.label} has managed=False: CREATE INDEX CONCURRENTLY ON "
            f"{_quoted(meta.db_table)} ({_quoted(field.column)}) where the table is maintained"
        )
    if _db_index(field):
        return (
            f"{name} declares an index but the database has none: run migrate, or find the "
            "migration or the person that dropped it"
        )
    return (
        f"set db_index=True on {name} (or add models.Index(fields=[{field.name!r}], name=...) "
        f"to {meta.object_name}.Meta.indexes) and run makemigrations; on a large table, build "
        "it with AddIndexConcurrently"
    )
