#!/usr/bin/env python
"""The private Django internals django_dbperf relies on, checked against the installed Django.

Each row names an internal (what the code reads or overrides that Django does not document),
the django_dbperf files that depend on it, and OK, BROKEN (with what is wrong) or "n/a" (not
used on this Django). Exits 1 when one is broken. ``nox -s django_prerelease`` runs it on the
newest Django pre-release, before the tests that exercise these files.

Run it with the repository on the path: ``python scripts/django_internals.py``.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

Check = Callable[[], str | None]  # None when the internal is as the code expects


@dataclass(frozen=True)
class Internal:
    name: str  # as the code uses it
    users: str  # the django_dbperf files that depend on it
    check: Check
    since: tuple[int, int] | None = None  # used only from this Django version on


def resolve(path: str) -> Any:
    """``"django.db.models.query:QuerySet._fetch_all"`` -> the object."""
    module_name, _, attributes = path.partition(":")
    found: Any = import_module(module_name)
    for name in filter(None, attributes.split(".")):
        found = getattr(found, name)
    return found


def exists(path: str, params: Iterable[str] = ()) -> Check:
    """The object exists; a callable's signature has ``params`` (read as frame locals, or
    passed by keyword)."""

    def check() -> str | None:
        try:
            found = resolve(path)
        except (ImportError, AttributeError) as error:
            return f"missing: {error}"
        if params:
            have = set(inspect.signature(found).parameters)
            lacking = [name for name in params if name not in have]
            if lacking:
                return f"signature {inspect.signature(found)} lacks {', '.join(lacking)}"
        return None

    return check


def all_of(module: str, names: Iterable[str]) -> Check:
    def check() -> str | None:
        lacking = [name for name in names if not hasattr(import_module(module), name)]
        return f"missing: {', '.join(lacking)}" if lacking else None

    return check


def attributes(make: Callable[[], object], names: Iterable[str]) -> Check:
    """The object ``make()`` returns has each attribute (set in ``__init__`` or on its class)."""

    def check() -> str | None:
        made = make()
        lacking = [name for name in names if not hasattr(made, name)]
        return f"missing: {', '.join(lacking)}" if lacking else None

    return check


def only_known(make: Callable[[], dict[str, Any]], known: Callable[[], Iterable[str]]) -> Check:
    """Django sets no attribute but the ``known`` ones (the code compares or copies them all)."""

    def check() -> str | None:
        unknown = sorted(set(make()) - set(known()))
        return f"new attributes: {', '.join(unknown)}" if unknown else None

    return check


def holds(description: str, test: Callable[[], bool]) -> Check:
    def check() -> str | None:
        try:
            return None if test() else description
        except Exception as error:
            return f"{description}: {type(error).__name__}: {error}"

    return check


# --- what the checks build: small querysets and instances of django.contrib.auth -------------


def _user() -> Any:
    from django.contrib.auth.models import User

    return User


def _queryset() -> Any:
    from django.db.models import QuerySet

    return QuerySet()


def _exact_lookup() -> Any:
    return _user().objects.filter(pk=1).query.where.children[0]


def _join() -> Any:
    from django.db.models.sql.datastructures import Join

    aliases = _user().objects.filter(groups__name="x").query.alias_map.values()
    return next(table for table in aliases if type(table) is Join)


def _positional(function: Callable[..., Any]) -> list[str]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    parameters = list(inspect.signature(function).parameters.values())[1:]  # without self
    return [parameter.name for parameter in parameters if parameter.kind in kinds]


def _shape_read() -> frozenset[str]:
    from django_dbperf.cache.shape import _READ

    return _READ


def _lookup_attrs() -> frozenset[str]:
    from django_dbperf.cache.shape import _LOOKUP_ATTRS

    return _LOOKUP_ATTRS


def _node_attrs() -> frozenset[str]:
    from django_dbperf.cache.shape import _NODE_ATTRS

    return _NODE_ATTRS


def _state_names() -> frozenset[str]:
    from django_dbperf.cache.payload import _STATE_NAMES

    return _STATE_NAMES


def _shape_of_a_filter() -> bool:
    from django_dbperf.cache.shape import query_shape

    return query_shape(_user().objects.filter(pk=1, username="x").query) is not None


def _payload_round_trip() -> bool:
    from django_dbperf.cache import payload

    user = _user()(pk=1, username="x")
    (loaded,) = payload.loads(payload.dumps([user]))
    return bool(loaded.pk == 1 and loaded.username == "x" and loaded._state.db == user._state.db)


QUERY = "django.db.models.query"
INTERNALS = [
    # The queryset: overridden by the caching and eager querysets, read by the capture.
    Internal(
        "QuerySet._fetch_all()",
        "cache/queryset.py (overrides), capture/callsite.py (its frame)",
        exists(f"{QUERY}:QuerySet._fetch_all", ["self"]),
    ),
    Internal(
        "QuerySet._clone()",
        "managers.py, cache/queryset.py (override)",
        exists(f"{QUERY}:QuerySet._clone", ["self"]),
    ),
    Internal(
        "QuerySet._result_cache, _prefetch_done, _prefetch_related_lookups, "
        "_known_related_objects, _iterable_class, _query",
        "cache/queryset.py, cache/prefetch.py, managers.py, capture/callsite.py",
        attributes(
            _queryset,
            [
                "_result_cache",
                "_prefetch_done",
                "_prefetch_related_lookups",
                "_known_related_objects",
                "_iterable_class",
                "_query",
            ],
        ),
    ),
    Internal(
        "QuerySet._fetch_mode",
        "cache/queryset.py (part of a cached queryset's identity)",
        attributes(_queryset, ["_fetch_mode"]),
        since=(6, 1),
    ),
    Internal(
        "QuerySet.__getstate__/__setstate__, DJANGO_VERSION_PICKLE_KEY",
        "cache/payload.py",
        holds(
            "missing",
            lambda: bool(
                exists(f"{QUERY}:QuerySet.__getstate__")() is None
                and exists(f"{QUERY}:QuerySet.__setstate__")() is None
                and exists("django.db:DJANGO_VERSION_PICKLE_KEY")() is None
            ),
        ),
    ),
    Internal(
        "ModelIterable, BaseIterable",
        "cache/queryset.py, cache/payload.py, capture/callsite.py",
        all_of(QUERY, ["ModelIterable", "BaseIterable"]),
    ),
    Internal(
        "prefetch_one_level(instances, prefetcher, lookup, level)",
        "capture/callsite.py (reads lookup and level from its frame)",
        exists(f"{QUERY}:prefetch_one_level", ["lookup", "level"]),
    ),
    Internal(
        "RelatedPopulator.__init__(klass_info, select, db, ...)",
        "integrations/nplusone.py (the Django 6.1 fix keeps the first three)",
        holds(
            "the first positional parameters are not (klass_info, select, db)",
            lambda: (
                _positional(resolve(f"{QUERY}:RelatedPopulator.__init__"))[:3]
                == ["klass_info", "select", "db"]
            ),
        ),
    ),
    # Model instances and their state.
    Internal(
        "Model._save_table(self, ..., cls, ..., update_fields)",
        "cache/invalidation.py (finds the saved row in its frame)",
        exists("django.db.models.base:Model._save_table", ["self", "cls", "update_fields"]),
    ),
    Internal(
        "ModelState (its attributes), model_unpickle",
        "cache/payload.py (state templates), cache/queryset.py (fields_cache)",
        holds(
            "a ModelState attribute payload.py does not know, or model_unpickle missing",
            lambda: (
                set(vars(_user()()._state)) <= _state_names()
                and hasattr(resolve("django.db.models.base"), "model_unpickle")
            ),
        ),
    ),
    Internal(
        "fields._load_field, fields._empty, utils.unpickle_named_row",
        "cache/payload.py (the unpickler's allowlist)",
        holds(
            "missing",
            lambda: (
                all_of("django.db.models.fields", ["_load_field", "_empty"])() is None
                and all_of("django.db.models.utils", ["unpickle_named_row"])() is None
            ),
        ),
    ),
    Internal(
        "a cached instance round-trips dumps()/loads()",
        "cache/payload.py",
        holds("the instance did not come back", _payload_round_trip),
    ),
    Internal(
        "ForeignKey.cache_name, .is_cached(), .from_fields",
        "cache/queryset.py (the caller's related objects)",
        attributes(
            lambda: resolve("django.contrib.auth.models:Permission")._meta.get_field(
                "content_type"
            ),
            ["cache_name", "is_cached", "from_fields"],
        ),
    ),
    # The lazy-load descriptors whose frames name a lazy load (Django 5.2, and 6.1 querysets
    # without FETCH_RECORD).
    Internal(
        "ForwardManyToOneDescriptor.__get__(self, instance), .field",
        "capture/callsite.py, capture/fetch_mode.py",
        exists(
            "django.db.models.fields.related_descriptors:ForwardManyToOneDescriptor.__get__",
            ["self", "instance"],
        ),
    ),
    Internal(
        "ReverseOneToOneDescriptor.__get__(self, instance), .related",
        "capture/callsite.py, capture/fetch_mode.py",
        exists(
            "django.db.models.fields.related_descriptors:ReverseOneToOneDescriptor.__get__",
            ["self", "instance"],
        ),
    ),
    Internal(
        "DeferredAttribute.__get__(self, instance), .field",
        "capture/callsite.py, capture/fetch_mode.py",
        exists("django.db.models.query_utils:DeferredAttribute.__get__", ["self", "instance"]),
    ),
    Internal(
        "GenericForeignKey(Descriptor).__get__(self, instance)",
        "capture/callsite.py",
        holds(
            "neither has __get__(self, instance)",
            lambda: (
                {"self", "instance"}
                <= set(
                    inspect.signature(
                        getattr(
                            resolve("django.contrib.contenttypes.fields"),
                            "GenericForeignKeyDescriptor",
                            resolve("django.contrib.contenttypes.fields:GenericForeignKey"),
                        ).__get__
                    ).parameters
                )
            ),
        ),
    ),
    Internal(
        "Node.render_annotated(self, ...), Node.origin, .token",
        "capture/callsite.py (the template line of a query)",
        exists("django.template.base:Node.render_annotated", ["self"]),
    ),
    Internal(
        "BaseHandler.get_response(_async), SyncToAsync.thread_handler",
        "capture/callsite.py (where a request's frames end)",
        holds(
            "missing",
            lambda: (
                exists("django.core.handlers.base:BaseHandler.get_response")() is None
                and exists("django.core.handlers.base:BaseHandler.get_response_async")() is None
                and exists("asgiref.sync:SyncToAsync.thread_handler")() is None
            ),
        ),
    ),
    Internal(
        "connection.execute_wrappers (a list)",
        "capture/recorder.py, cache/invalidation.py (wrappers installed outermost)",
        holds(
            "not a list",
            lambda: type(resolve("django.db:connection").execute_wrappers) is list,
        ),
    ),
    Internal(
        "connection.ops.integer_field_range(internal_type)",
        "cache/shape.py (integer lookups a backend drops)",
        holds(
            "missing",
            lambda: (
                resolve("django.db:connection").ops.integer_field_range("IntegerField") is not None
            ),
        ),
    ),
    # The query's shape, read without compiling it.
    Internal(
        "Query attributes (shape.py _READ)",
        "cache/shape.py",
        holds(
            "missing",
            lambda: all(hasattr(_user().objects.all().query, name) for name in _shape_read()),
        ),
    ),
    Internal(
        "lookups.Integer*, IntegerFieldOverflow; related_lookups.Related*",
        "cache/shape.py (imported at module level)",
        holds(
            "missing",
            lambda: (
                all_of(
                    "django.db.models.lookups",
                    [
                        "IntegerFieldExact",
                        "IntegerGreaterThan",
                        "IntegerGreaterThanOrEqual",
                        "IntegerLessThan",
                        "IntegerLessThanOrEqual",
                        "IntegerFieldOverflow",
                    ],
                )()
                is None
                and all_of(
                    "django.db.models.fields.related_lookups",
                    [
                        "RelatedExact",
                        "RelatedIn",
                        "RelatedIsNull",
                        "RelatedLessThan",
                        "RelatedGreaterThan",
                        "RelatedGreaterThanOrEqual",
                        "RelatedLessThanOrEqual",
                    ],
                )()
                is None
            ),
        ),
    ),
    Internal(
        "Col, BaseTable, Join, WhereNode, where.AND",
        "cache/shape.py, cache/narrow.py, cache/keys.py",
        holds(
            "missing",
            lambda: (
                all_of("django.db.models.expressions", ["Col"])() is None
                and all_of("django.db.models.sql.datastructures", ["BaseTable", "Join"])() is None
                and all_of("django.db.models.sql.where", ["WhereNode", "AND"])() is None
            ),
        ),
    ),
    Internal(
        "Join.table_name, parent_alias, table_alias, join_type, join_field, nullable, "
        "filtered_relation",
        "cache/shape.py",
        attributes(
            _join,
            [
                "table_name",
                "parent_alias",
                "table_alias",
                "join_type",
                "join_field",
                "nullable",
                "filtered_relation",
            ],
        ),
    ),
    Internal(
        "Lookup.__dict__ (shape.py _LOOKUP_ATTRS)",
        "cache/shape.py (any other attribute makes every query unsupported)",
        only_known(lambda: vars(_exact_lookup()), _lookup_attrs),
    ),
    Internal(
        "WhereNode.__dict__ (shape.py _NODE_ATTRS)",
        "cache/shape.py",
        only_known(lambda: vars(_user().objects.filter(pk=1).query.where), _node_attrs),
    ),
    Internal(
        "query_shape() reads a filter() query",
        "cache/shape.py (else every cached lookup compiles its SQL)",
        holds("unsupported", _shape_of_a_filter),
    ),
    # Django 6.1's fetch modes.
    Internal(
        "FetchMode.fetch(fetcher, instance), .track_peers; FETCH_ONE, FETCH_PEERS, FETCH_RAISE",
        "capture/fetch_mode.py, cache/payload.py, managers.py",
        holds(
            "missing",
            lambda: (
                exists("django.db.models.fetch_modes:FetchMode.fetch", ["fetcher", "instance"])()
                is None
                and hasattr(resolve("django.db.models.fetch_modes:FETCH_ONE"), "track_peers")
                and all_of("django.db.models.fetch_modes", ["FETCH_PEERS", "FETCH_RAISE"])() is None
            ),
        ),
        since=(6, 1),
    ),
    Internal(
        "test.utils._TestState",
        "stats/flusher.py (no flush at exit under the test runner)",
        exists("django.test.utils:_TestState"),
    ),
]


def setup() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        )
    django.setup()


def main() -> int:
    import django

    setup()
    rows: list[tuple[str, str, str]] = []
    broken = 0
    for internal in INTERNALS:
        if internal.since is not None and django.VERSION[:2] < internal.since:
            status = f"n/a (Django {internal.since[0]}.{internal.since[1]}+)"
        else:
            try:
                problem = internal.check()
            except Exception as error:
                problem = f"{type(error).__name__}: {error}"
            status = "OK" if problem is None else f"BROKEN: {problem}"
            broken += problem is not None
        rows.append((status, internal.name, internal.users))
    print(f"Django {django.get_version()}: the private internals django_dbperf depends on")
    width = max(len(status) for status, _, _ in rows if not status.startswith("BROKEN"))
    for status, name, users in rows:
        print(f"{status:<{width}}  {name}\n{'':<{width}}    used by django_dbperf/ {users}")
    print(f"{len(rows)} internals: {broken} broken.")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
