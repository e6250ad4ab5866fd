"""System checks for the ``DBPERF`` setting and for how django_dbperf is wired into a project.

Every id is listed in ``CHECKS`` (the docs' checks reference is generated from it) and is stable:
projects silence them by id in ``SILENCED_SYSTEM_CHECKS``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DEFAULT_DB_ALIAS, connections, router
from django.db.models import Model
from django.utils.module_loading import import_string

from django_dbperf import extras
from django_dbperf.conf import (
    CACHE_OPTIONS,
    INDEXES_OPTIONS,
    OPTIONS,
    SETTING_NAME,
    Option,
    cache_configured,
    user_settings,
)

MIDDLEWARE_PATH = "django_dbperf.middleware.QueryCountMiddleware"
PANEL_PATH = "django_dbperf.panels.DbPerfPanel"

# Middleware that runs queries outside the view (in process_request/response): placed before
# QueryCountMiddleware, their queries escape the count.
QUERYING_MIDDLEWARE = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.RemoteUserMiddleware",
    "django.contrib.auth.middleware.PersistentRemoteUserMiddleware",
)

# Caches each process keeps to itself: invalidation could never reach the other instances.
UNSHARED_BACKENDS = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
    "django.core.cache.backends.filebased.FileBasedCache",
)

CHECKS: dict[str, str] = {
    "dbperf.E001": f"``{SETTING_NAME}`` (or a nested option such as ``CACHE``) is not a dict.",
    "dbperf.E002": f"``{SETTING_NAME}`` has a key django_dbperf does not know (often a typo).",
    "dbperf.E003": "An option has a value of the wrong type.",
    "dbperf.E004": "A number is outside its allowed range (negative thresholds, "
    "``SAMPLE_RATE`` outside 0.0 to 1.0).",
    "dbperf.E005": "An option is not one of its allowed values.",
    "dbperf.E006": '``CACHE["ALIAS"]`` names a cache that is not in ``CACHES``.',
    "dbperf.E007": '``CACHE["TTL"]`` has a key that is neither ``"*"`` nor an installed '
    'model label (``"app_label.Model"``), or ``CACHE["DEPENDS_ON"]`` or '
    '``CACHE["ALSO_WRITES"]`` names a model that is not installed.',
    "dbperf.E008": "``DEFAULT_FETCH_MODE`` (or an ``EagerManager``'s ``fetch_mode``) is not "
    "a fetch mode: not a ``FETCH_*`` name, not importable, or not a ``FetchMode``.",
    "dbperf.E009": "An ``EagerManager`` profile names a path that is not a relation of its "
    "model, or its ``default`` names a profile that is not declared.",
    "dbperf.E010": '``CACHE["ALIAS"]`` is a cache that is not shared between processes (local '
    "memory, dummy, file) while ``DEBUG`` is off: other instances would never see invalidations.",
    "dbperf.E011": '``CACHE["NAMESPACE"]`` is not the dotted path of an importable callable.',
    "dbperf.E012": 'A ``DBPERF["IGNORE"]`` rule is malformed: not a dict, an unknown key, no key '
    "to match on, a value that is not a string, a ``path_regex`` that does not compile, a "
    "``fingerprint`` that is neither a statement shape nor a shape id, or a ``kind`` that is not "
    "a finding kind.",
    "dbperf.E013": '``DBPERF["PROJECT_ROOTS"]`` or ``DBPERF["HIDE_IN_CALLSITES"]`` has an entry '
    "that is not a string (or, for ``PROJECT_ROOTS``, a ``pathlib.Path``), or a "
    "``PROJECT_ROOTS`` path that is not an existing directory.",
    "dbperf.E014": '``STATS["DATABASE"]`` names a database that is not in ``DATABASES``, or '
    '``STATS["REDACT_COLUMNS"]`` has an entry that is not a non-empty string.',
    "dbperf.E015": '``INDEXES["CONCURRENTLY"]`` is ``True`` while a database the declared '
    "indexes' models are written to is not PostgreSQL (``AddIndexConcurrently`` fails there), "
    'or ``INDEXES["MAX_BACKOFF_S"]`` is smaller than ``INDEXES["RETRY_BACKOFF_S"]``.',
    "dbperf.E016": "An app's ``dbperf_indexes.py`` module cannot be used: it fails to import, "
    "``INDEXES`` is not a dict of model name -> list of named ``models.Index``, it names a model "
    "the app does not have, or two models declare the same index name.",
    "dbperf.E017": '``CACHE["WARM"]`` has an entry that is not the dotted path of an importable '
    "callable taking no arguments.",
    "dbperf.E018": "A feature is configured whose extra is not installed: cached querysets "
    "(``CACHE``) on a PostgreSQL database without psycopg 3 (the ``postgres`` extra; psycopg2 "
    "is not enough), "
    "``DbPerfPanel`` in ``DEBUG_TOOLBAR_PANELS`` without django-debug-toolbar (``toolbar``), or "
    "nplusone's middleware without nplusone (``nplusone``). The message names the extra and its "
    '``pip install`` command. (A django-redis ``CACHE["ALIAS"]`` without django-redis (``redis``) '
    "stops start-up with that message instead: Django's own cache checks would fail first.)",
    "dbperf.W001": "``QueryCountMiddleware`` comes after middleware that runs queries "
    "outside the view, so those queries are not counted.",
    "dbperf.W002": "nplusone is enabled on Django 6.1 or later without django_dbperf's "
    "compatibility fix, so every ``select_related()`` query nplusone watches would crash.",
    "dbperf.W003": "A fetch mode is configured (``DEFAULT_FETCH_MODE`` or an ``EagerManager``'s "
    "``fetch_mode``) on a Django older than 6.1, where it is ignored.",
}


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def _type_names(option: Option) -> str:
    names = [t.__name__ for t in option.types]
    if option.nullable:
        names.append("None")
    return " or ".join(names)


def _has_type(option: Option, value: object) -> bool:
    if value is None:
        return option.nullable
    # bool is an int subclass, but True is never a sensible number of queries.
    if isinstance(value, bool) and bool not in option.types:
        return False
    return isinstance(value, option.types)


def _check_value(key: str, option: Option, value: object) -> list[CheckMessage]:
    """Errors for one option's value; ``key`` is its full name, e.g. ``DBPERF["CACHE"]["TTL"]``."""
    if not _has_type(option, value):
        return [
            Error(
                f"{key} must be {_type_names(option)}, not {_describe(value)}.",
                hint=f"Default: {option.default!r}. {option.help}",
                id="dbperf.E001" if dict in option.types else "dbperf.E003",
            )
        ]
    if value is None:
        return []
    if option.choices and value not in option.choices:
        allowed = ", ".join(repr(c) for c in option.choices)
        return [Error(f"{key} is {value!r}; allowed values: {allowed}.", id="dbperf.E005")]
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = option.minimum, option.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            return [Error(f"{key} is {value!r}; it must be {bounds}.", id="dbperf.E004")]
    if option.options:
        assert isinstance(value, dict)
        return _check_mapping(key, option.options, value)
    if option.value_option is not None:
        assert isinstance(value, dict)
        return [
            error
            for name, item in value.items()
            for error in _check_value(f"{key}[{name!r}]", option.value_option, item)
        ]
    return []


def _check_mapping(
    key: str, options: Mapping[str, Option], given: Mapping[str, Any]
) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for name, value in given.items():
        option = options.get(name)
        if option is None:
            errors.append(_unknown_key(key, name, options))
        else:
            errors.extend(_check_value(f"{key}[{name!r}]", option, value))
    return errors


def _unknown_key(key: str, name: object, options: Iterable[str]) -> Error:
    known = sorted(options)
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"Did you mean {close[0]!r}? " if close else ""
    return Error(
        f"{key} has an unknown key {name!r}.",
        hint=f"{hint}Known keys: {', '.join(known)}.",
        id="dbperf.E002",
    )


def _check_cache(cache: Mapping[str, Any]) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    alias = cache.get("ALIAS", CACHE_OPTIONS["ALIAS"].default)
    if isinstance(alias, str) and alias not in settings.CACHES:
        errors.append(
            Error(
                f'{SETTING_NAME}["CACHE"]["ALIAS"] is {alias!r}, but CACHES has no such alias.',
                hint=f"Known aliases: {', '.join(sorted(settings.CACHES)) or 'none'}. Add a "
                "django-redis cache for Valkey or Redis to CACHES, or name an existing alias.",
                id="dbperf.E006",
            )
        )
    backend = settings.CACHES.get(alias, {}).get("BACKEND", "") if isinstance(alias, str) else ""
    if backend in UNSHARED_BACKENDS and not settings.DEBUG:
        errors.append(
            Error(
                f'{SETTING_NAME}["CACHE"]["ALIAS"] is {alias!r}, a {backend.rsplit(".", 1)[-1]}: '
                "each process has its own, so a write in one never invalidates the others.",
                hint="Use a django-redis cache backed by Valkey or Redis (allowed only while "
                "DEBUG is on, for development).",
                id="dbperf.E010",
            )
        )
    ttl = cache.get("TTL")
    if isinstance(ttl, dict):
        errors.extend(_check_model_labels(f'{SETTING_NAME}["CACHE"]["TTL"]', ttl))
    not_cached = cache.get("NOT_CACHED")
    if isinstance(not_cached, list | tuple):  # else reported as a type error (dbperf.E003)
        key = f'{SETTING_NAME}["CACHE"]["NOT_CACHED"]'
        errors.extend(_check_model_labels(key, not_cached, wildcard=False, item=True))
    namespace = cache.get("NAMESPACE")
    if isinstance(namespace, str):
        errors.extend(_check_namespace_hook(namespace))
    warm = cache.get("WARM")
    if isinstance(warm, list | tuple):  # else reported as a type error (dbperf.E003)
        errors.extend(_check_warm_entries(warm))
    for name in ("DEPENDS_ON", "ALSO_WRITES"):
        declared = cache.get(name)
        if not isinstance(declared, dict):
            continue  # absent, or reported as a type error (dbperf.E001)
        key = f'{SETTING_NAME}["CACHE"]["{name}"]'
        errors.extend(_check_model_labels(key, declared, wildcard=False))
        for label, listed in declared.items():
            if isinstance(listed, list | tuple):  # else reported as a type error (dbperf.E003)
                errors.extend(_check_model_labels(f"{key}[{label!r}]", listed, item=True))
    return errors


def _check_namespace_hook(path: str) -> list[CheckMessage]:
    try:
        hook = import_string(path)
    except ImportError as error:
        problem = f"cannot be imported ({error})"
    else:
        if callable(hook):
            return []
        problem = f"is {type(hook).__name__}, not a callable"
    return [
        Error(
            f'{SETTING_NAME}["CACHE"]["NAMESPACE"] is {path!r}, which {problem}.',
            hint="Give the dotted path of a function (connection) -> str, e.g. "
            '"myproject.cache.tenant_schema".',
            id="dbperf.E011",
        )
    ]


def _check_warm_entries(paths: list[object] | tuple[object, ...]) -> list[CheckMessage]:
    # Imported here: checks.py (and CHECKS, read by the docs) stays free of the cache.
    from django_dbperf.cache.warming import setting_problem

    errors: list[CheckMessage] = []
    for index, path in enumerate(paths):
        problem = setting_problem(path)
        if problem is not None:
            errors.append(
                Error(
                    f'{SETTING_NAME}["CACHE"]["WARM"][{index}] is {path!r}, which {problem}.',
                    hint="Give the dotted path of a function without arguments that returns a "
                    'cached queryset, e.g. "myproject.hot.top_books".',
                    id="dbperf.E017",
                )
            )
    return errors


def _check_model_labels(
    key: str, labels: Iterable[object], wildcard: bool = True, item: bool = False
) -> list[CheckMessage]:
    """``dbperf.E007`` for each label that is not an installed model: the keys of ``key`` (and
    ``"*"`` when ``wildcard``), or with ``item`` the items of a list."""
    errors: list[CheckMessage] = []
    for label in labels:
        if wildcard and label == "*":
            continue
        try:
            apps.get_model(str(label))
        except (LookupError, ValueError):
            what = "the item" if item else "the key"
            other = ' or "*" for every other model' if wildcard else ""
            errors.append(
                Error(
                    f"{key} has {what} {label!r}, which is not an installed model.",
                    hint=f'Use "app_label.ModelName" (e.g. "auth.User"){other}.',
                    id="dbperf.E007",
                )
            )
    return errors


@register(Tags.compatibility)
def check_settings(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    """Validate every key of ``settings.DBPERF`` against the documented options."""
    given = user_settings()
    if not isinstance(given, dict):
        return [
            Error(
                f"{SETTING_NAME} must be a dict, not {_describe(given)}.",
                hint=f"For example: {SETTING_NAME} = {{'SAMPLE_RATE': 0.1}}.",
                id="dbperf.E001",
            )
        ]
    errors = _check_mapping(SETTING_NAME, OPTIONS, given)
    cache = given.get("CACHE")
    if isinstance(cache, dict):
        errors.extend(_check_cache(cache))
    rules = given.get("IGNORE")
    if isinstance(rules, list | tuple):  # else reported as a type error (dbperf.E003)
        errors.extend(_check_ignore_rules(rules))
    errors.extend(_check_project_code(given))
    stats = given.get("STATS")
    if isinstance(stats, dict):
        errors.extend(_check_stats(stats))
    indexes = given.get("INDEXES")
    if isinstance(indexes, dict):
        errors.extend(_check_indexes(indexes))
    return errors


def _check_stats(stats: Mapping[str, Any]) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    database = stats.get("DATABASE")
    if isinstance(database, str) and database not in settings.DATABASES:
        errors.append(
            Error(
                f'{SETTING_NAME}["STATS"]["DATABASE"] is {database!r}, but DATABASES has no '
                "such alias.",
                hint=f"Known aliases: {', '.join(sorted(settings.DATABASES))}.",
                id="dbperf.E014",
            )
        )
    patterns = stats.get("REDACT_COLUMNS")
    if isinstance(patterns, list | tuple):
        for index, pattern in enumerate(patterns):
            if not isinstance(pattern, str) or not pattern:
                errors.append(
                    Error(
                        f'{SETTING_NAME}["STATS"]["REDACT_COLUMNS"][{index}] is '
                        f"{_describe(pattern)}; it must be a column-name pattern such as "
                        '"*password*".',
                        id="dbperf.E014",
                    )
                )
    return errors


def _check_indexes(indexes: Mapping[str, Any]) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    key = f'{SETTING_NAME}["INDEXES"]'
    if indexes.get("CONCURRENTLY") is True:
        for alias in _index_databases():
            vendor = connections[alias].vendor
            if vendor != "postgresql":
                errors.append(
                    Error(
                        f'{key}["CONCURRENTLY"] is True, but the database {alias!r} is {vendor}: '
                        "the AddIndexConcurrently migrations makemigrations would write fail "
                        "there.",
                        hint='Use "auto" (concurrently only where the database is PostgreSQL) '
                        "or False.",
                        id="dbperf.E015",
                    )
                )
    backoff, most = (
        indexes.get(name, INDEXES_OPTIONS[name].default)
        for name in ("RETRY_BACKOFF_S", "MAX_BACKOFF_S")
    )
    if _is_number(backoff) and _is_number(most) and most < backoff:
        errors.append(
            Error(
                f'{key}["MAX_BACKOFF_S"] is {most!r}, smaller than {key}["RETRY_BACKOFF_S"] '
                f"({backoff!r}), so the wait between retries could never grow.",
                hint="Make MAX_BACKOFF_S at least RETRY_BACKOFF_S (defaults: 60.0 and 2.0).",
                id="dbperf.E015",
            )
        )
    return errors


def _is_number(value: object) -> bool:
    # Other types are reported as type errors (dbperf.E003).
    return isinstance(value, int | float) and not isinstance(value, bool)


def _index_databases() -> set[str]:
    """Where the models of declared indexes are written (the default database when none)."""
    from django_dbperf.indexes.declarations import declared

    aliases = {
        router.db_for_write(apps.get_model(item.app_label, item.model_name))
        for item in declared().values()
    }
    return aliases or {DEFAULT_DB_ALIAS}


def _check_project_code(given: Mapping[str, Any]) -> list[CheckMessage]:
    """Entries of PROJECT_ROOTS (paths or package names) and HIDE_IN_CALLSITES (modules)."""
    errors: list[CheckMessage] = []
    for key in ("PROJECT_ROOTS", "HIDE_IN_CALLSITES"):
        entries = given.get(key)
        if not isinstance(entries, list | tuple):  # None, or a type error (dbperf.E003)
            continue
        for index, entry in enumerate(entries):
            where = f'{SETTING_NAME}["{key}"][{index}]'
            path_allowed = key == "PROJECT_ROOTS"
            if isinstance(entry, Path) and path_allowed:
                entry = str(entry)
            if not isinstance(entry, str) or not entry:
                kind = "a directory or a package name" if path_allowed else "a module prefix"
                errors.append(
                    Error(
                        f"{where} is {_describe(entry)}; it must be {kind} (a string).",
                        id="dbperf.E013",
                    )
                )
            elif path_allowed and os.sep in entry and not os.path.isdir(entry):
                errors.append(
                    Error(
                        f"{where} is {entry!r}, which is not a directory.",
                        hint="Give the directory of your project's code (e.g. BASE_DIR), "
                        "or a package name without slashes.",
                        id="dbperf.E013",
                    )
                )
    return errors


def _check_ignore_rules(rules: list[object] | tuple[object, ...]) -> list[CheckMessage]:
    # Imported here: checks.py (and CHECKS, read by the docs) stays free of the analysis.
    from django_dbperf.analysis.ignore import rule_problems

    return [
        Error(problem.message, hint=problem.hint, id="dbperf.E012")
        for problem in rule_problems(rules)
    ]


@register(Tags.compatibility)
def check_middleware_order(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    """Warn when queries of earlier middleware would escape ``QueryCountMiddleware``."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if MIDDLEWARE_PATH not in middleware:
        return []
    position = middleware.index(MIDDLEWARE_PATH)
    earlier = [path for path in middleware[:position] if path in QUERYING_MIDDLEWARE]
    if not earlier:
        return []
    return [
        Warning(
            f"{MIDDLEWARE_PATH} comes after {', '.join(earlier)} in MIDDLEWARE, so the queries "
            "those run (e.g. saving the session) are not counted.",
            hint=f"Move {MIDDLEWARE_PATH} above them, right after SecurityMiddleware.",
            id="dbperf.W001",
        )
    ]


@register(Tags.compatibility)
def check_nplusone_compat(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    """Warn when nplusone 1.0 would crash on this Django because the compatibility fix is off."""
    # Imported here: checks.py (and CHECKS, read by the docs) stays free of the capture stack.
    from django_dbperf.integrations import nplusone

    if not nplusone.compat_fix_missing():
        return []
    return [
        Warning(
            "nplusone is enabled (its middleware or app) but cannot read this Django's "
            "select_related() rows: every select_related() query run while nplusone listens "
            "(each request through NPlusOneMiddleware, each nplusone Profiler block) raises "
            "ValueError: too many values to unpack (expected 3).",
            hint=f"Add {nplusone.APP!r} to INSTALLED_APPS (with 'django_dbperf'), so "
            "django_dbperf applies its compatibility fix at startup; or remove nplusone.",
            id="dbperf.W002",
        )
    ]


def missing_cache_extra() -> str | None:
    """Why ``DBPERF["CACHE"]["ALIAS"]``'s django-redis cache cannot work: django-redis is missing.

    Not a system check: Django's own cache checks build every cache in ``CACHES`` and stop
    ``check`` on the missing backend first, so ``ready()`` raises this instead."""
    given = user_settings()
    cache = given.get("CACHE") if isinstance(given, dict) else None
    if not isinstance(cache, dict):
        return None
    alias = cache.get("ALIAS", CACHE_OPTIONS["ALIAS"].default)
    config = settings.CACHES.get(alias) if isinstance(alias, str) else None
    backend = config.get("BACKEND") if isinstance(config, dict) else None
    if not (isinstance(backend, str) and backend.startswith("django_redis.")):
        return None
    key = f'{SETTING_NAME}["CACHE"]["ALIAS"]'
    return extras.missing("redis", f"The cache {key} names, {alias!r} (BACKEND {backend!r}),")


@register(Tags.compatibility)
def check_extras(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    """Each configured feature whose extra is missing, with the pip command that installs it.

    Read from settings only: nothing here imports the extras, nor loads a database backend."""
    errors: list[CheckMessage] = []

    def need(extra: str, feature: str, hint: str) -> None:
        problem = extras.missing(extra, feature)
        if problem is not None:
            errors.append(Error(problem, hint=hint, id="dbperf.E018"))

    # Cached querysets read psycopg 3's isolation levels and value types; the rest works on
    # psycopg2 too. Without any driver Django itself fails first ("Error loading psycopg2 or
    # psycopg module").
    postgres_databases = settings.DATABASES.items() if cache_configured() else ()
    for name, database in postgres_databases:
        engine = database.get("ENGINE", "")
        if isinstance(engine, str) and ("postgresql" in engine or "postgis" in engine):
            need(
                "postgres",
                f'Cached querysets (DBPERF["CACHE"]) on the PostgreSQL database {name!r} '
                f"(ENGINE {engine!r})",
                "The cache reads psycopg 3's isolation levels and value types; psycopg2 is not "
                'enough. Or remove DBPERF["CACHE"].',
            )
            break
    panels = getattr(settings, "DEBUG_TOOLBAR_PANELS", None) or ()
    if PANEL_PATH in panels:
        need(
            "toolbar",
            f"The panel {PANEL_PATH!r} in DEBUG_TOOLBAR_PANELS",
            "Or remove the panel from DEBUG_TOOLBAR_PANELS.",
        )
    # nplusone's app without nplusone fails in Django's app registry, before any check.
    from django_dbperf.integrations.nplusone import MIDDLEWARE as NPLUSONE_MIDDLEWARE

    for path in getattr(settings, "MIDDLEWARE", None) or ():
        if path in NPLUSONE_MIDDLEWARE:
            need("nplusone", f"nplusone's middleware {path!r} in MIDDLEWARE", "Or remove it.")
    return errors


def _fetch_mode_error(where: str, value: object) -> Error | None:
    from django_dbperf.managers import FETCH_MODE_NAMES, resolve_fetch_mode

    try:
        mode = resolve_fetch_mode(value)
    except ImportError as error:
        problem = f"cannot be imported ({error})"
    else:
        from django.db.models.fetch_modes import FetchMode

        if isinstance(mode, FetchMode):
            return None
        problem = f"is {type(mode).__name__}, not a FetchMode"
    return Error(
        f"{where} is {value!r}, which {problem}.",
        hint=f"Use one of {', '.join(FETCH_MODE_NAMES)}, or the dotted path of a FetchMode "
        "instance.",
        id="dbperf.E008",
    )


def _eager_managers() -> Iterable[tuple[type[Model], Any]]:
    from django_dbperf.managers import EagerManagerMixin

    for model in apps.get_models():
        for manager in model._meta.managers:
            if isinstance(manager, EagerManagerMixin):
                yield model, manager


def _profile_errors(model: type[Model], manager: Any) -> list[CheckMessage]:
    from django.core.exceptions import FieldError

    from django_dbperf.managers import plan

    queryset_class = manager._queryset_class
    profiles = manager.profiles if manager.profiles is not None else queryset_class.eager_profiles
    where = f"{model._meta.label}.{manager.name}"
    errors: list[CheckMessage] = []
    for name, paths in profiles.items():
        try:
            plan(model, paths)
        except (FieldError, TypeError) as error:
            errors.append(Error(f"{where} profile {name!r}: {error}", id="dbperf.E009", obj=model))
    default = manager.default_profile or queryset_class.default_profile
    if default is not None and default not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        errors.append(
            Error(
                f"{where} has default={default!r}, but its profiles are: {known}.",
                id="dbperf.E009",
                obj=model,
            )
        )
    return errors


@register(Tags.models)
def check_eager_managers(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    """Profiles are validated at start-up, not at request time; fetch modes need Django 6.1."""
    from django_dbperf.managers import HAS_FETCH_MODES

    messages: list[CheckMessage] = []
    configured = user_settings()
    default_mode = configured.get("DEFAULT_FETCH_MODE") if isinstance(configured, dict) else None
    modes = [(f"{SETTING_NAME}['DEFAULT_FETCH_MODE']", default_mode)]
    for model, manager in _eager_managers():
        messages.extend(_profile_errors(model, manager))
        modes.append((f"{model._meta.label}.{manager.name} fetch_mode", manager.fetch_mode))
    for where, mode in modes:
        if mode is None or (where.startswith(SETTING_NAME) and not isinstance(mode, str)):
            continue  # a non-string setting is reported as a type error (dbperf.E003)
        if not HAS_FETCH_MODES:
            messages.append(
                Warning(
                    f"{where} is set, but fetch modes need Django 6.1; it is ignored.",
                    hint="Upgrade to Django 6.1, or silence dbperf.W003 until then.",
                    id="dbperf.W003",
                )
            )
        elif error := _fetch_mode_error(where, mode):
            messages.append(error)
    return messages


@register(Tags.models)
def check_index_declarations(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    """What ``dbperf_indexes.py`` modules declare is read at start-up; what could not be used
    is reported here rather than raised, so one bad module never stops the project."""
    from django_dbperf.indexes.declarations import errors

    return [
        Error(
            problem,
            hint="Fix or delete the entry (dbperf_indexes suggest --write writes valid ones).",
            id="dbperf.E016",
        )
        for problem in errors()
    ]
