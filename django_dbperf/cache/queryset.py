"""``qs.cached()``: querysets whose results come from Valkey/Redis while they are valid.

A cached queryset's evaluation (iteration, ``list()``, ``len()``, ``get()``, ``first()``,
``values()``...) and its ``count()``, ``exists()`` and ``aggregate()`` are looked up by the
statement's SQL and parameters, together with the current versions of every table it reads
(joins, subqueries, prefetched relations). Instances come back with their ``select_related``
and ``prefetch_related`` results attached.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Self

from django.apps import apps
from django.core.exceptions import EmptyResultSet, ImproperlyConfigured
from django.db import connections, models
from django.db.models import Model, Prefetch, QuerySet
from django.db.models.query import ModelIterable

from django_dbperf.cache.dependencies import read_dependencies
from django_dbperf.cache.encode import Unencodable, encode, encode_all
from django_dbperf.cache.invalidation import DIRTY_READ, dirty_tables, model_label
from django_dbperf.cache.keys import QueryKey, query_key
from django_dbperf.cache.namespace import in_namespace, namespaces
from django_dbperf.cache.narrow import Narrowing, narrowing
from django_dbperf.cache.prefetch import UNKNOWN, prefetch_tables
from django_dbperf.cache.skipped import skipped_reason
from django_dbperf.cache.store import STORE, Lookup, entry_name, logger
from django_dbperf.cache.tables import read_tables
from django_dbperf.capture import recording
from django_dbperf.conf import cache_configured, get_config
from django_dbperf.managers import EagerManagerMixin, EagerQuerySet

if TYPE_CHECKING:
    _QuerySetBase = QuerySet[Any]
else:
    _QuerySetBase = object


@dataclass(frozen=True)
class CacheOptions:
    ttl: int | None
    tags: tuple[str, ...]
    lock: bool = False


# Stampede protection: how long a recompute may hold its lock, how long others wait for it.
LOCK_SECONDS = 30
WAIT_SECONDS = 2.0
POLL_SECONDS = 0.02


def ttl_for(model: type[Model], ttl: int | None) -> int:
    if ttl is not None:
        return ttl
    policy: dict[str, int] = get_config()["CACHE"]["TTL"]
    return int(policy.get(model._meta.label, policy.get("*", 300)))


def require_configuration() -> None:
    if not cache_configured():
        raise ImproperlyConfigured(
            'Queryset caching needs DBPERF["CACHE"], e.g. DBPERF = {"CACHE": {"ALIAS": '
            '"valkey"}} with a django-redis cache of that alias in CACHES: it switches on the '
            "invalidation of every write. See the django_dbperf cache documentation."
        )


_signatures: dict[tuple[type[Model], str], str] = {}


def _fields_signature(model: type[Model], using: str = "default") -> str:
    """The model's columns and their types in that database: after a migration changes them
    (adds, removes, or retypes one, e.g. an integer to a decimal), old entries are never read.
    """
    signature = _signatures.get((model, using))
    if signature is None:
        connection = connections[using]
        # The decimal places too: SQLite's column type does not show them, its values do.
        signature = _signatures[(model, using)] = ",".join(
            f"{field.attname}:{field.db_type(connection)}:{field.get_internal_type()}:"
            f"{getattr(field, 'max_digits', '')}:{getattr(field, 'decimal_places', '')}"
            for field in model._meta.concrete_fields
        )
    return signature


_schemas: dict[tuple[frozenset[str], str], str] = {}


def _schema_signature(tables: frozenset[str], using: str) -> str:
    """The columns and types of every model whose table a query reads (its select_related and
    prefetched rows are rebuilt from the entry too)."""
    signature = _schemas.get((tables, using))
    if signature is None:
        parts = []
        for table in sorted(tables):
            label = model_label(table)
            if label != table:  # a model's table
                parts.append(f"{table}({_fields_signature(apps.get_model(label), using)})")
        if len(_schemas) >= 4096:
            _schemas.clear()
        signature = _schemas[(tables, using)] = ";".join(parts)
    return signature


def _prefetch_identity(queryset: QuerySet[Any]) -> str:
    """The prefetch lookups, with the SQL and parameters of their querysets (``Unencodable``
    for a parameter ``encode.py`` cannot write exactly)."""
    parts: list[object] = []
    for lookup in getattr(queryset, "_prefetch_related_lookups", ()):
        if isinstance(lookup, Prefetch):
            inner = lookup.queryset
            sql: str | None = None
            params: Any = ()
            if inner is not None:
                try:
                    sql, params = inner.query.get_compiler(using=inner.db).as_sql()
                except EmptyResultSet:
                    sql = "empty"
                parts += (_prefetch_identity(inner), _fetch_mode(inner))
            parts += (lookup.prefetch_through, lookup.to_attr, sql, params)
        else:
            parts.append(lookup)
    return encode(parts)


def _fetch_mode(queryset: QuerySet[Any]) -> str:
    """Django 6.1's fetch mode (instances keep it in their state): part of the identity."""
    mode = getattr(queryset, "_fetch_mode", None)
    return "" if mode is None else f"{type(mode).__module__}.{type(mode).__qualname__}"


def can_store_in_transaction(using: str) -> bool:
    """In READ COMMITTED each statement sees what committed before it began, so a result read
    after the versions is never older than them; in a snapshot (SQLite, REPEATABLE READ) it
    can be, so nothing is stored from inside a transaction there."""
    connection = connections[using]
    if not connection.in_atomic_block:
        return True
    if connection.vendor != "postgresql":
        return False
    from psycopg import IsolationLevel

    level = getattr(connection, "isolation_level", None)
    return level in (None, IsolationLevel.READ_COMMITTED)


def wait_for_recompute(
    entry: str, tables: frozenset[str], tags: tuple[str, ...], narrow: Narrowing | None = None
) -> tuple[bool, Lookup | None]:
    """Take the recompute lock of ``entry``, or wait for the holder's result: (lock taken, hit)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not STORE.acquire(entry, LOCK_SECONDS):
        if time.monotonic() >= deadline:
            return False, None  # the other recompute is slow or gone: compute here too
        time.sleep(POLL_SECONDS)
        found = STORE.lookup(entry, tables, tags, narrow)
        if found is not None and found.hit:
            return False, found
    # The holder may have stored and released between our last look and the lock: look
    # once more under the lock, or its result is computed twice.
    found = STORE.lookup(entry, tables, tags, narrow)
    if found is not None and found.hit:
        STORE.release(entry)
        return False, found
    return True, None


def serve(
    entry: str,
    tables: frozenset[str],
    tags: tuple[str, ...],
    narrow: Narrowing | None,
    subject: str,
    lock: bool,
    compute: Callable[[], Any],
    compute_and_store: Callable[[Lookup], Any],
) -> Any:
    """A hit from the cache, or the result of ``compute_and_store(lookup)`` on a miss (under
    the recompute lock with ``lock``); ``compute()`` alone when the cache cannot be read."""
    lookup = STORE.lookup(entry, tables, tags, narrow)
    if lookup is None:
        return compute()
    STORE.count_lookup(subject, tags, "hit" if lookup.hit else "miss")
    if lookup.hit:
        return lookup.payload
    if not lock:
        return compute_and_store(lookup)
    acquired, waited = wait_for_recompute(entry, tables, tags, narrow)
    if waited is not None:
        return waited.payload
    try:
        return compute_and_store(lookup)
    finally:
        if acquired:
            STORE.release(entry)


def run_recorded(compute: Callable[[], Any]) -> tuple[Any, set[str], set[str]]:
    """``compute()``'s result, the tables its statements read and the aliases they ran on."""
    with recording() as recorder:
        result = compute()
    read = set().union(*(read_tables(query.sql) for query in recorder.records))
    return result, read, {query.alias for query in recorder.records}


def validate_options(ttl: object, tags: Iterable[str], where: str) -> tuple[str, ...]:
    """Check ``ttl`` and ``tags`` as ``cached()`` and ``cached_as()`` take them."""
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
        raise ValueError(f"{where}(ttl=...) must be a whole number of seconds > 0, not {ttl!r}.")
    checked = tuple(tags)
    if any(not isinstance(tag, str) or not tag for tag in checked):
        raise ValueError(f"{where}(tags=...) must be non-empty strings, not {checked!r}.")
    return checked


class CachingQuerySetMixin(_QuerySetBase):
    """Adds ``cached(ttl=None, tags=(), lock=False)`` and ``uncached()``.

    Composes with ``EagerQuerySetMixin`` (see ``CachingEagerQuerySet``).
    """

    _dbperf_cache: CacheOptions | None = None

    def _clone(self) -> Self:
        clone = super()._clone()  # type: ignore[misc]
        clone._dbperf_cache = self._dbperf_cache
        return clone  # type: ignore[no-any-return]

    def cached(self, ttl: int | None = None, tags: Iterable[str] = (), lock: bool = False) -> Self:
        """Serve this queryset's results from the cache while no table it reads has changed.

        ``lock=True`` for expensive queries: on a miss one process recomputes while the others
        wait (up to two seconds) for its result instead of all running the query at once.
        """
        require_configuration()
        tags = validate_options(ttl, tags, "cached")
        clone = self._chain()  # type: ignore[attr-defined]
        clone._dbperf_cache = CacheOptions(ttl, tags, lock)
        return clone  # type: ignore[no-any-return]

    def uncached(self) -> Self:
        """This queryset without caching (e.g. from a ``CachingManager(cache_all=True)``)."""
        clone = self._chain()  # type: ignore[attr-defined]
        clone._dbperf_cache = None
        return clone  # type: ignore[no-any-return]

    # --- the cached evaluations -----------------------------------------------------------

    def _through_cache(
        self,
        kind: str,
        compute: Callable[[], Any],
        make_key: Callable[[], QueryKey] | None = None,
    ) -> Any:
        options = self._dbperf_cache
        # select_for_update() must reach the database: its point is the lock.
        if options is None or not STORE.available or self.query.select_for_update:
            return compute()
        label = self.model._meta.label
        try:
            key = query_key(self) if make_key is None else make_key()
            prefetched = prefetch_tables(self)
            tables, refusal = read_dependencies(read_tables(key.sql) | prefetched)
            narrow = self._narrowing(kind, key.sql, prefetched) if make_key is None else None
            database, entries = namespaces(self.db)
            entry = entry_name(
                entries, kind, label, _fields_signature(self.model, self.db),
                _schema_signature(tables, self.db), key.sql, key.identity,
                self._iterable_class.__name__, _fetch_mode(self), _prefetch_identity(self),
            )  # fmt: skip
        except EmptyResultSet:
            return compute()  # Django knows without a query that nothing matches
        except Unencodable as error:
            # A value whose identity cannot be written exactly: never guess, serve uncached.
            STORE.bypass(label, f"a parameter cannot be keyed exactly ({error})")
            return compute()
        except Exception:
            # A queryset the analysis does not understand is served uncached, never failed.
            logger.exception("django_dbperf cache: could not key a %s queryset", label)
            return compute()
        if refusal is not None:  # an undeclared unmanaged model's table (dependencies.py)
            STORE.count(label, "bypass", reason=refusal)
            return compute()
        skipped = skipped_reason(tables)
        if skipped is not None:
            STORE.bypass(label, skipped)
            return compute()
        if UNKNOWN in tables:
            STORE.count(label, "bypass", reason="the tables it reads could not all be named")
            return compute()
        if tables & dirty_tables(self.db):
            STORE.count(label, "bypass", reason=DIRTY_READ)
            return compute()

        def compute_and_store(lookup: Lookup) -> Any:
            return self._compute_and_store(entry, lookup, tables, compute, options)

        # Versions are kept per database (namespace.py), under the tables' qualified names.
        if narrow is not None:
            joined = tuple(f"{database}/{table}" for table in narrow.joined)
            narrow = replace(narrow, table=f"{database}/{narrow.table}", joined=joined)
        versioned = in_namespace(database, tables)
        return serve(
            entry, versioned, options.tags, narrow, label, options.lock, compute, compute_and_store
        )

    def _narrowing(self, kind: str, sql: str, prefetched: frozenset[str]) -> Narrowing | None:
        """Narrow by primary key for any evaluation; by foreign key only for instances, whose
        primary keys the entry then lists (a row leaving the value must invalidate it)."""
        narrow = narrowing(self, sql, prefetched)
        if narrow is None or narrow.by_pk:
            return narrow
        return narrow if kind == "rows" and self._iterable_class is ModelIterable else None

    def _compute_and_store(
        self,
        entry: str,
        lookup: Lookup,
        tables: frozenset[str],
        compute: Callable[[], Any],
        options: CacheOptions,
    ) -> Any:
        result, read, _ = run_recorded(compute)
        # Store only what was read from versioned tables (a safety net for the table analysis).
        unversioned = read - tables
        if unversioned:
            label = self.model._meta.label
            STORE.bypass(
                label, f"it read {', '.join(sorted(unversioned))}, which its analysis missed"
            )
        elif can_store_in_transaction(self.db):
            rows = [row.pk for row in result] if lookup.rows_table is not None else ()
            with self._callers_objects_detached(result):
                ttl = ttl_for(self.model, options.ttl)
                STORE.store(entry, lookup, result, ttl, rows, subject=self.model._meta.label)
        return result

    # A related manager's queryset (``author.books``) attaches the caller's own instance to
    # every row (``_known_related_objects``), unsaved changes and all: it is not the cache's
    # to share. Stored without it; each caller's is attached to a hit, as Django does.

    @contextlib.contextmanager
    def _callers_objects_detached(self, result: Any) -> Iterator[None]:
        detached: list[tuple[dict[str, Any], str, Any]] = []
        if type(result) is list:
            for field, objects in self._callers_objects().items():
                known = set(map(id, objects.values()))
                name = field.cache_name
                for row in result:
                    cache = row._state.fields_cache
                    if id(cache.get(name)) in known:
                        detached.append((cache, name, cache.pop(name)))
        try:
            yield
        finally:
            for cache, name, value in detached:
                cache[name] = value

    def _callers_objects(self) -> dict[Any, dict[Any, Model]]:
        known: dict[Any, dict[Any, Model]] = getattr(self, "_known_related_objects", {})
        return known

    def _attach_callers_objects(self, rows: list[Any]) -> None:
        for field, objects in self._callers_objects().items():
            meta = self.model._meta
            attnames = [
                field.attname if name == "self" else meta.get_field(name).attname
                for name in field.from_fields
            ]
            for row in rows:
                values = row.__dict__
                if field.is_cached(row) or any(name not in values for name in attnames):
                    continue  # loaded by select_related(), or deferred (as Django skips them)
                key = (
                    values[attnames[0]] if len(attnames) == 1 else tuple(map(values.get, attnames))
                )
                known = objects.get(key)
                if known is not None:
                    setattr(row, field.name, known)

    def _fetch_all(self) -> None:
        if self._result_cache is not None or self._dbperf_cache is None:
            super()._fetch_all()
            return

        def evaluate() -> list[Any]:
            super(CachingQuerySetMixin, self)._fetch_all()
            return list(self._result_cache or ())

        self._result_cache = self._through_cache("rows", evaluate)
        self._prefetch_done = True
        if self._callers_objects() and self._iterable_class is ModelIterable:
            self._attach_callers_objects(self._result_cache)

    def count(self) -> int:
        if self._result_cache is not None or self._dbperf_cache is None:
            return super().count()
        return int(self._through_cache("count", super().count))

    def exists(self) -> bool:
        if self._result_cache is not None or self._dbperf_cache is None:
            return super().exists()
        return bool(self._through_cache("exists", super().exists))

    def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if self._dbperf_cache is None:
            return super().aggregate(*args, **kwargs)

        def compute() -> dict[str, Any]:
            return super(CachingQuerySetMixin, self).aggregate(*args, **kwargs)

        def make_key() -> QueryKey:
            return self._aggregate_key(args, kwargs)

        result: dict[str, Any] = self._through_cache("aggregate", compute, make_key)
        return result

    def _aggregate_key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> QueryKey:
        """The query with its aggregates added, compiled: its SQL and parameters name every
        aggregate, filter and join exactly (an expression's repr() does not: ``Q(author=a)``
        prints ``str(a)``)."""
        named = dict(kwargs)
        for arg in args:
            named[arg.default_alias] = arg  # as QuerySet.aggregate() names them
        query = self.query.chain()
        for alias, aggregate in named.items():
            query.add_annotation(aggregate, alias, select=True)
        sql, params = query.get_compiler(using=self.db).as_sql()
        return QueryKey(sql, "aggregate:" + encode_all(params))


class CachingQuerySet(CachingQuerySetMixin, QuerySet[Any]):
    """A QuerySet with ``cached()``."""


class CachingManagerMixin:
    """``CachingManager(cache_all=True)`` caches every read of the model by default."""

    def __init__(self, *args: Any, cache_all: bool = False, ttl: int | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cache_all = cache_all
        self.cache_ttl = ttl

    def get_queryset(self) -> Any:
        queryset = super().get_queryset()  # type: ignore[misc]
        if self.cache_all and not hasattr(self, "instance"):
            queryset = queryset.cached(ttl=self.cache_ttl)
        return queryset


class CachingManager(CachingManagerMixin, models.Manager.from_queryset(CachingQuerySet)):  # type: ignore[misc]
    """``objects = CachingManager()``; ``Model.objects.filter(...).cached(ttl=60)``."""


class CachingEagerQuerySet(CachingQuerySetMixin, EagerQuerySet):
    """``cached()`` and the eager-loading methods (``including()``, ``profile()``...) at once."""


class CachingEagerManager(
    CachingManagerMixin,
    EagerManagerMixin,
    models.Manager.from_queryset(CachingEagerQuerySet),  # type: ignore[misc]
):
    """``EagerManager`` whose querysets can also be ``cached()``."""
