"""The bytes a cached queryset result is stored as, and back: ``dumps()`` and ``loads()``.

A list of model instances is stored lean: each class once (label and columns), each instance as
its attribute dict, and every reference to one of them (select_related caches, prefetched
querysets, ``to_attr`` lists) as its position. Loading rebuilds them without pickle's calls
into Django per instance. Other results, and instances the lean form does not describe, are
pickled whole. Both forms are pickle streams, loaded by an unpickler that only rebuilds model
instances, column values and the ORM objects a prefetched queryset holds (``_EntryUnpickler``);
store.py loads only payloads whose signature it verified (``signing.py``).
"""

from __future__ import annotations

import copyreg
import datetime
import decimal
import enum
import io
import operator
import pickle
import sys
import uuid
import weakref
import zoneinfo
from collections import deque
from collections.abc import Callable, Iterable
from itertools import repeat
from types import BuiltinFunctionType, FunctionType, MappingProxyType, ModuleType
from typing import Any

import django
from django.apps import apps
from django.db import DJANGO_VERSION_PICKLE_KEY
from django.db.models import Model, QuerySet
from django.db.models.base import ModelBase, ModelState
from django.db.models.query import BaseIterable

__all__ = ["RefusedGlobal", "dumps", "loads"]

# The format's version and Django's: a blob written by other code, or under another Django
# (whose instance state may differ), is refused, so it becomes a miss. Bump the version when
# the layout, or what the functions blobs name (_shells, _rebuild_queryset) take, changes.
FORMAT_VERSION = 1
_PREFIX = bytes([FORMAT_VERSION]) + django.__version__.encode() + b"\x00"
_LEAN = ord("L")
_PICKLED = ord("P")

# Attribute values of these exact types hold no model instance: not searched for any.
# (ModelState does, in its fields cache, which is searched on its own.)
_ATOMIC: frozenset[type[Any]] = frozenset(
    {
        int, float, str, bool, bytes, type(None), decimal.Decimal, uuid.UUID,
        datetime.date, datetime.datetime, datetime.time, datetime.timedelta, ModelState,
    }
)  # fmt: skip

# The ModelState attributes Django sets: their values are part of a state template's key.
_STATE_NAMES = frozenset({"db", "adding", "fields_cache", "fetch_mode", "peers"})

# Runs an iterator (of setattr calls) to its end, in C.
_consume: Callable[[Iterable[object]], None] = deque[object](maxlen=0).extend
_newobj = copyreg.__newobj__  # type: ignore[attr-defined]  # pickled as the NEWOBJ opcode


# --- the full pickle: results that are not lists of instances, and the fallback --------------


def _rebuild_queryset(cls: type[QuerySet[Any]], state: dict[str, Any]) -> QuerySet[Any]:
    if not (isinstance(cls, type) and issubclass(cls, QuerySet)):
        raise RefusedGlobal(f"_rebuild_queryset() rebuilds querysets, not {cls!r}")
    queryset = cls.__new__(cls)
    queryset.__setstate__(state)  # type: ignore[attr-defined]
    return queryset


_queryset_keys: dict[type[Any], frozenset[str]] = {}


def _own_state(queryset: QuerySet[Any]) -> dict[str, Any]:
    """The state Django's own QuerySet keeps, without attributes other tools set on it."""
    cls = type(queryset)
    keys = _queryset_keys.get(cls)
    if keys is None:
        keys = _queryset_keys[cls] = frozenset(vars(QuerySet(model=queryset.model))) | {
            DJANGO_VERSION_PICKLE_KEY
        }
    return {key: value for key, value in queryset.__getstate__().items() if key in keys}


class _ResultPickler(pickle.Pickler):
    """Pickles the querysets that prefetch caches hold with Django's own state only: tools
    such as nplusone set functions and context on them, which pickle refuses."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, QuerySet):
            return _rebuild_queryset, (type(obj), _own_state(obj))
        if isinstance(obj, type) or type(obj) in _ROUTINES:
            _check_dumpable(obj)  # pickled by name: refused now if loads() would refuse it
        return NotImplemented


# --- the lean form --------------------------------------------------------------------------


class _TableMarker:
    """Stands for the list of the blob's instances while pickling; loads as ``_shells(spec)``."""

    def __init__(self, spec: tuple[tuple[str, tuple[str, ...], int], ...]) -> None:
        self.spec = spec


class _InstancePickler(_ResultPickler):
    """Writes each of the blob's own instances as ``instances[position]``."""

    def __init__(self, file: io.BytesIO, positions: dict[int, int], table: _TableMarker) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._positions = positions
        self._table = table
        self._templates: dict[tuple[Any, ...], dict[str, Any]] = {}

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is ModelState:
            return self._reduce_state(obj.__dict__)
        # Keyed by id(): every instance in the table stays alive while this runs.
        position = self._positions.get(id(obj))
        if position is not None:
            # operator.getitem runs in C when loading; the table is pickled once (memo).
            return operator.getitem, (self._table, position)
        if obj is self._table:
            return _shells, (self._table.spec,)
        return super().reducer_override(obj)

    def _reduce_state(self, state: dict[str, Any]) -> Any:
        """A ModelState as the template its class's states share (written once) and its own
        fields cache, which BUILD sets as a slot-state attribute (in C, keeping its place)."""
        names = tuple(state)
        key = (names, state.get("db"), state.get("adding"), state.get("fetch_mode"))
        template = self._templates.get(key)
        if template is None:
            # Django 6.1's weak references to peers are dropped, as ModelState.__getstate__ does.
            shared = {name: value for name, value in state.items() if name != "peers"}
            if not _STATE_NAMES.issuperset(names):
                return _newobj, (ModelState,), shared  # no template: the key misses a value
            if "fields_cache" in shared:
                shared["fields_cache"] = None
            template = self._templates[key] = shared
        fields_cache = state.get("fields_cache")
        if fields_cache is None:
            return _newobj, (ModelState,), template
        return _newobj, (ModelState,), (template, {"fields_cache": fields_cache})


_lean_classes: dict[type[Any], bool] = {}
_PICKLING = ("__reduce__", "__reduce_ex__", "__getstate__", "__setstate__")


def _is_lean_class(cls: type[Any]) -> bool:
    """Whether instances of ``cls`` pickle the way Model does (so rebuilding them is the same)."""
    lean = _lean_classes.get(cls)
    if lean is None:
        lean = _lean_classes[cls] = issubclass(cls, Model) and all(
            getattr(cls, name) is getattr(Model, name) for name in _PICKLING
        )
    return lean


class _NotLean(Exception):
    """The result holds an instance the lean form does not describe: pickle it whole."""


def dumps(result: object) -> bytes:
    """``result`` as bytes for the cache; the lean form for a list of model instances."""
    if type(result) is list and result and all(map(_is_lean_class, set(map(type, result)))):
        buffer = io.BytesIO()
        buffer.write(_PREFIX + bytes([_LEAN]))
        try:
            _dump_instances(result, buffer)
        except Exception:
            # Not lean (or not picklable that way, e.g. a memoryview): the full pickle
            # stores it, or raises why it cannot.
            pass
        else:
            return buffer.getvalue()
    buffer = io.BytesIO()
    buffer.write(_PREFIX + bytes([_PICKLED]))
    _ResultPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(result)
    return buffer.getvalue()


def _dump_instances(result: list[Any], buffer: io.BytesIO) -> None:
    by_class: dict[type[Model], list[Model]] = {}
    peers: dict[int, list[Model]] = {}
    queue = list({id(obj): obj for obj in result}.values())
    seen = set(map(id, queue))
    for obj in queue:  # grows while it is walked: every instance reachable through relations
        cls = type(obj)
        instances = by_class.get(cls)
        if instances is None:
            if not _is_lean_class(cls):
                raise _NotLean(cls)
            instances = by_class[cls] = []
        instances.append(obj)
        attrs = obj.__dict__
        state = attrs["_state"]
        if type(state) is not ModelState:
            raise _NotLean(state)
        state_attrs = state.__dict__
        fields_cache = state_attrs.get("fields_cache")
        if fields_cache:
            for related in fields_cache.values():
                if id(related) not in seen and isinstance(related, Model):
                    seen.add(id(related))
                    queue.append(related)
        if "peers" in state_attrs:
            peers.setdefault(id(state_attrs["peers"]), []).append(obj)
        if not _ATOMIC.issuperset(map(type, attrs.values())):
            for related in _linked(attrs.values()):
                if id(related) not in seen:
                    seen.add(id(related))
                    queue.append(related)

    # One run per class, so loading creates each class's instances in one go.
    table = [obj for instances in by_class.values() for obj in instances]
    positions = dict(zip(map(id, table), range(len(table)), strict=True))
    spec = tuple(
        (cls._meta.label, _attnames(cls), len(instances)) for cls, instances in by_class.items()
    )
    top: int | tuple[int, ...] = tuple(map(positions.__getitem__, map(id, result)))
    if top == tuple(range(len(result))):
        top = len(result)
    peer_positions = tuple(
        tuple(map(positions.__getitem__, map(id, group))) for group in peers.values()
    )
    marker = _TableMarker(spec)
    _InstancePickler(buffer, positions, marker).dump(
        # The table first: every later reference to an instance needs it.
        (marker, [obj.__dict__ for obj in table], top, peer_positions)
    )


def _linked(values: Iterable[object]) -> Iterable[Model]:
    """The instances attribute values hold: themselves, ``to_attr`` lists, prefetched querysets."""
    for value in values:
        if isinstance(value, Model):
            yield value
        elif type(value) is list or type(value) is tuple:
            yield from (item for item in value if isinstance(item, Model))
        elif type(value) is dict:
            for item in value.values():
                if isinstance(item, QuerySet) and item._result_cache is not None:
                    yield from (obj for obj in item._result_cache if isinstance(obj, Model))


# --- loads ----------------------------------------------------------------------------------


def loads(blob: bytes) -> object:
    """The result ``dumps()`` stored. Raises on garbage, other formats and changed models, and
    ``RefusedGlobal`` (a ``pickle.UnpicklingError``) on a class or function no result holds."""
    start = len(_PREFIX)
    if blob[:start] != _PREFIX:
        raise ValueError(
            "not a django_dbperf cache payload of this format and Django version "
            f"(expected a blob starting with {_PREFIX!r}, got {bytes(blob[:start])!r})"
        )
    kind = blob[start]
    body = io.BytesIO(memoryview(blob)[start + 1 :])
    if kind == _PICKLED:
        return _EntryUnpickler(body).load()
    if kind != _LEAN:
        raise ValueError(f"unknown django_dbperf cache payload kind {kind!r}")
    instances, attrs, top, peer_positions = _EntryUnpickler(body).load()
    if len(attrs) != len(instances):
        raise ValueError(f"payload has {len(attrs)} attribute dicts for {len(instances)} instances")
    _consume(map(setattr, instances, repeat("__dict__"), attrs))
    for positions in peer_positions:
        # Django 6.1's FETCH_PEERS: instances fetched together load deferred fields together.
        # Pickle drops these weak references; restoring them keeps that batching on a hit.
        members = list(map(instances.__getitem__, positions))
        refs = list(map(weakref.ref, members))
        for member in members:
            member._state.peers = refs
    if type(top) is int:
        return instances[:top]
    return list(map(instances.__getitem__, top))


_attnames_cache: dict[type[Any], tuple[object, tuple[str, ...]]] = {}


def _attnames(cls: type[Model]) -> tuple[str, ...]:
    fields = cls._meta.concrete_fields
    cached = _attnames_cache.get(cls)
    # Valid while Options keeps the same list: it builds a new one when fields change.
    if cached is None or cached[0] is not fields:
        cached = _attnames_cache[cls] = (fields, tuple(field.attname for field in fields))
    return cached[1]


def _shells(spec: tuple[tuple[str, tuple[str, ...], int], ...]) -> list[Model]:
    """Empty instances of each class, in the blob's order (``loads()`` fills their dicts)."""
    instances: list[Model] = []
    for label, attnames, count in spec:
        cls = apps.get_model(label)
        if _attnames(cls) != attnames:
            raise ValueError(
                f"the cached {label} instances have columns {attnames}, the model now has "
                f"{_attnames(cls)}: stored before a migration"
            )
        instances += map(object.__new__, repeat(cls, count))
    return instances


# --- what an entry may hold: the restricted unpickler -----------------------------------------
#
# The signature is the real guard: store.py decodes only payloads signed with this site's secret
# for the entry's own key (signing.py), so bytes written by anyone else are never unpickled.
# This allowlist is defence in depth, for a leaked secret or a bug: a payload can rebuild model
# instances, the values their columns hold and the ORM objects a prefetched queryset keeps, and
# call nothing else (no os.system, eval or getattr gadget). Names are looked up in the modules
# already imported, in their namespaces: nothing is imported and no attribute hook runs.


class RefusedGlobal(pickle.UnpicklingError):
    """A payload names a class or function that cached results never hold."""


# Functions, objects and value classes, by the module and name pickle writes for them.
_NAMED: dict[str, frozenset[str]] = {
    "builtins": frozenset({"bytearray", "complex", "frozenset", "getattr", "set", "slice"}),
    "datetime": frozenset({"date", "datetime", "time", "timedelta", "timezone"}),
    "decimal": frozenset({"Decimal"}),
    "uuid": frozenset({"UUID"}),
    "zoneinfo": frozenset({"ZoneInfo"}),
    "_operator": frozenset({"getitem"}),  # the lean form's references to instances
    __name__: frozenset({"_shells", "_rebuild_queryset"}),
    "django.db.models.base": frozenset({"ModelState", "model_unpickle"}),
    "django.db.models.fields": frozenset({"_load_field", "_empty"}),
    "django.db.models.utils": frozenset({"unpickle_named_row"}),  # values_list(named=True)
    "django.db.models.fetch_modes": frozenset({"FETCH_ONE", "FETCH_PEERS", "FETCH_RAISE"}),
    # The on_delete of the relations that joins (in a prefetched queryset's query) hold.
    "django.db.models.deletion": frozenset(
        {
            "CASCADE",
            "PROTECT",
            "RESTRICT",
            "SET_NULL",
            "SET_DEFAULT",
            "DO_NOTHING",
            "DatabaseOnDelete",
        }
    ),
    # PostgreSQL range values (psycopg_any's range types are psycopg's Range; psycopg2's own).
    "psycopg.types.range": frozenset(
        {
            "Range",
            "Int4Range",
            "Int8Range",
            "NumericRange",
            "DateRange",
            "TimestampRange",
            "TimestamptzRange",
        }
    ),
    "psycopg2._range": frozenset(
        {"Range", "NumericRange", "DateRange", "DateTimeRange", "DateTimeTZRange"}
    ),
}

# Every class (never a function) defined in these modules: the expressions, lookups, database
# functions, fields and query internals a prefetched queryset's Query holds. A Prefetch queryset
# may filter, annotate and order with any of them, far too many to list by name (and a list
# would miss those of the next Django). Left out: the modules that define metaclasses, managers
# and deletion (base, manager, options, deletion, sql.compiler), whose classes act when called.
_ORM_MODULES = frozenset({
    "django.db.models.aggregates", "django.db.models.constants", "django.db.models.expressions",
    "django.db.models.lookups", "django.db.models.query", "django.db.models.query_utils",
    "django.db.models.fields", "django.db.models.fields.composite",
    "django.db.models.fields.files", "django.db.models.fields.generated",
    "django.db.models.fields.json", "django.db.models.fields.related",
    "django.db.models.fields.related_lookups", "django.db.models.fields.reverse_related",
    "django.db.models.fields.tuple_lookups",
    "django.db.models.functions.comparison", "django.db.models.functions.datetime",
    "django.db.models.functions.json", "django.db.models.functions.math",
    "django.db.models.functions.mixins", "django.db.models.functions.text",
    "django.db.models.functions.uuid", "django.db.models.functions.window",
    "django.db.models.sql.datastructures", "django.db.models.sql.query",
    "django.db.models.sql.where",
    "django.contrib.contenttypes.fields",
    "django.contrib.postgres.aggregates.general", "django.contrib.postgres.aggregates.statistics",
    "django.contrib.postgres.expressions", "django.contrib.postgres.fields.array",
    "django.contrib.postgres.fields.citext", "django.contrib.postgres.fields.hstore",
    "django.contrib.postgres.fields.jsonb", "django.contrib.postgres.fields.ranges",
    "django.contrib.postgres.functions", "django.contrib.postgres.lookups",
    "django.contrib.postgres.search",
})  # fmt: skip

_MISSING = object()
_loadable_memo: dict[tuple[str, str], Any] = {}
_ROUTINES = (FunctionType, BuiltinFunctionType)
# The namespaces themselves, read past any __getattribute__ of a module or metaclass.
_module_namespace: Callable[[ModuleType], dict[str, Any]] = vars(ModuleType)["__dict__"].__get__
_class_namespace: Callable[[type], MappingProxyType[str, Any]] = vars(type)["__dict__"].__get__


def _zoneinfo_getattr(owner: object, name: str) -> Any:
    """The only ``getattr`` an entry may call: pickle writes a ZoneInfo as
    ``getattr(ZoneInfo, "_unpickle")(key, from_cache)``."""
    if owner is zoneinfo.ZoneInfo and name == "_unpickle":
        return zoneinfo.ZoneInfo._unpickle  # type: ignore[attr-defined]
    raise RefusedGlobal(f"cached entries never call getattr({owner!r}, {name!r})")


def _lookup(module: str, name: str) -> Any:
    """What pickle would find for ``module.name`` (a module's attribute, or a class's for a
    dotted name), read from namespaces: nothing is imported, no descriptor or ``__getattr__``
    runs."""
    found: Any = sys.modules.get(module, _MISSING)
    for part in name.split("."):
        if isinstance(found, ModuleType):
            found = _module_namespace(found).get(part, _MISSING)
        elif isinstance(found, type):
            found = _class_namespace(found).get(part, _MISSING)
        else:
            return _MISSING
    return found


def _plain_enum(cls: type[enum.Enum]) -> bool:
    """An enum whose unpickling (``cls(value)``) runs only the enum machinery: no ``__new__``
    or ``_missing_`` of the project's own, which a crafted value could reach."""
    for klass in cls.__mro__:
        namespace = _class_namespace(klass)
        if klass.__module__ in ("enum", "builtins", "django.db.models.enums"):
            continue
        if namespace.get("__new__", enum.Enum.__new__) is not enum.Enum.__new__:
            return False  # (the enum machinery sets Enum.__new__ on every enum class)
        if "_missing_" in namespace or "__init__" in namespace:
            return False
    return True


def _registered(model: type[Model]) -> bool:
    opts = model._meta
    return apps.all_models.get(opts.app_label, {}).get(opts.model_name or "") is model


def _loadable(module: str, name: str) -> Any:
    """The object ``module.name`` names, if a cached entry may hold it; else raises."""
    found = _loadable_memo.get((module, name), _MISSING)
    if found is not _MISSING:
        return found
    found = _lookup(module, name)
    allowed = False
    if found is _MISSING:
        pass
    elif name in _NAMED.get(module, ()):
        allowed = True
        if found is getattr:
            found = _zoneinfo_getattr
    elif isinstance(found, type) and (found.__module__, found.__qualname__) == (module, name):
        if issubclass(found, Model):
            # Checked on every load (not remembered): models can be registered and removed.
            if isinstance(found, ModelBase) and _registered(found):
                return found
        else:
            # Enums: the choices a column's values are compared with (a Prefetch queryset
            # filtered on TextChoices member holds one); unpickled by value, calling nothing.
            allowed = module in _ORM_MODULES or issubclass(found, QuerySet | BaseIterable)
            allowed = allowed or (issubclass(found, enum.Enum) and _plain_enum(found))
    if not allowed:
        raise RefusedGlobal(
            f"{module}.{name} is not something a cached result holds: entries rebuild only "
            "registered models, field values (dates, times, decimals, UUIDs, ranges...) and "
            "Django's query objects"
        )
    _loadable_memo[(module, name)] = found
    return found


class _EntryUnpickler(pickle.Unpickler):
    """Unpickles a payload, finding only what ``_loadable()`` allows."""

    def find_class(self, module: str, name: str, /) -> Any:
        return _loadable(module, name)


_dumpable: set[Any] = set()  # classes and functions found loadable (models: checked each time)


def _check_dumpable(obj: Any) -> None:
    """Refuse to pickle a class or function that ``loads()`` would refuse: such a result is
    served uncached (store.py logs why) instead of being stored and refused on every read."""
    if obj in _dumpable:
        return
    if type(obj) is BuiltinFunctionType and not isinstance(obj.__self__, ModuleType):
        return  # a bound method: pickled as getattr(owner, name), whose parts are checked
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    try:
        if not isinstance(module, str) or not isinstance(name, str):
            raise RefusedGlobal(f"{obj!r} cannot be found by name")
        found = _loadable(module, name)
    except RefusedGlobal as error:
        raise pickle.PicklingError(f"not stored in the cache: {error}") from None
    if not isinstance(found, ModelBase):
        _dumpable.add(obj)
