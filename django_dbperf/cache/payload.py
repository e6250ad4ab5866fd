"""The bytes a cached queryset result is stored as, and back: ``dumps()`` and ``loads()``.

A list of model instances is stored lean: each class once (label and columns), each instance as
its attribute dict, and every reference to one of them (select_related caches, prefetched
querysets, ``to_attr`` lists) as its position. Loading rebuilds them without pickle's calls
into Django per instance. Other results, and instances the lean form does not describe, are
pickled whole.
"""

from __future__ import annotations

import copyreg
import datetime
import decimal
import io
import operator
import pickle
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from itertools import repeat
from typing import Any

import django
from django.apps import apps
from django.db import DJANGO_VERSION_PICKLE_KEY
from django.db.models import Model, QuerySet
from django.db.models.base import ModelState

__all__ = ["dumps", "loads"]

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
    """The result ``dumps()`` stored. Raises on garbage, other formats and changed models."""
    start = len(_PREFIX)
    if blob[:start] != _PREFIX:
        raise ValueError(
            "not a django_dbperf cache payload of this format and Django version "
            f"(expected a blob starting with {_PREFIX!r}, got {bytes(blob[:start])!r})"
        )
    kind = blob[start]
    body = memoryview(blob)[start + 1 :]
    if kind == _PICKLED:
        return pickle.loads(body)
    if kind != _LEAN:
        raise ValueError(f"unknown django_dbperf cache payload kind {kind!r}")
    instances, attrs, top, peer_positions = pickle.loads(body)
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
