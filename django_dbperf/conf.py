"""The ``DBPERF`` setting: documented options, their defaults, and the merged, cached view of them.

Every option is described once, here. The system checks validate against these descriptions
and the docs' settings reference is generated from them, so the three never disagree.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SETTING_NAME = "DBPERF"


@dataclass(frozen=True)
class Option:
    """One key of ``DBPERF`` (or of a nested dict such as ``DBPERF["CACHE"]``)."""

    default: Any
    help: str
    types: tuple[type, ...]
    nullable: bool = False
    choices: tuple[object, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    # A dict-valued option whose own keys are described here (merged over their defaults).
    options: Mapping[str, Option] = field(default_factory=dict)
    # A dict-valued option whose keys are free (model labels) and whose values are checked.
    value_option: Option | None = None


STATS_OPTIONS: dict[str, Option] = {
    "ENABLED": Option(
        default=True,
        types=(bool,),
        help="Keep statistics of the queries of sampled requests (per statement shape, view "
        "and line) and write them to the database in the background. False keeps nothing.",
    ),
    "DATABASE": Option(
        default="default",
        types=(str,),
        help="The ``DATABASES`` alias that holds the statistics tables (run ``migrate`` for "
        "``django_dbperf`` there). Writes go through a connection of their own, never inside "
        "a request or a user's transaction.",
    ),
    "FLUSH_INTERVAL_S": Option(
        default=60.0,
        types=(int, float),
        minimum=1.0,
        help="Seconds between two writes of a process's buffered statistics (one batched "
        "write per interval, from a background thread, and one at process exit).",
    ),
    "MAX_FINGERPRINTS": Option(
        default=5000,
        types=(int,),
        minimum=1,
        help="Most statement shapes a process buffers between two flushes. Queries of further "
        "shapes are counted as overflow (shown in the admin), never kept: memory stays bounded.",
    ),
    "RETENTION_DAYS": Option(
        default=14,
        types=(int,),
        minimum=1,
        help="Days of hourly history kept per statement shape; ``dbperf_prune`` (and each "
        "flush, once an hour) deletes older hours.",
    ),
    "STORE_PARAMS": Option(
        default=False,
        types=(bool,),
        help="Keep one sample of each shape's parameter values (for EXPLAIN with real values). "
        "Off by default: values can be personal data. When on, values of columns matching "
        "``REDACT_COLUMNS``, and values whose column cannot be told, are stored masked.",
    ),
    "EXPLAIN_TIMEOUT_MS": Option(
        default=5000,
        types=(int,),
        minimum=1,
        help="``statement_timeout`` of the admin's EXPLAIN (milliseconds). EXPLAIN runs only "
        "for stored SELECT shapes, in a read-only transaction that is always rolled back.",
    ),
    "EXPLAIN_ANALYZE": Option(
        default=False,
        types=(bool,),
        help="Offer ``EXPLAIN ANALYZE`` (which runs the statement) in the admin, to superusers "
        "only, for SELECT shapes whose parameter values are stored (``STORE_PARAMS``).",
    ),
    "REDACT_COLUMNS": Option(
        default=None,
        types=(list, tuple),
        nullable=True,
        help="Column-name patterns (``fnmatch`` globs, case-insensitive) whose values are "
        "never stored, with ``STORE_PARAMS``. ``None`` means the built-in list (``*password*``, "
        "``*token*``, ``*secret*``, ``*email*`` and similar).",
    ),
}

CACHE_OPTIONS: dict[str, Option] = {
    "ENABLED": Option(
        default=True,
        types=(bool,),
        help="Serve cached querysets from the cache. False turns queryset caching off at once; "
        "reads go to the database.",
    ),
    "ALIAS": Option(
        default="default",
        types=(str,),
        help="The ``CACHES`` alias that stores cached querysets and table versions. Point it at a "
        "django-redis cache backed by Valkey or Redis.",
    ),
    "KEY_PREFIX": Option(
        default="dbperf",
        types=(str,),
        help="Prefix of every cache key django_dbperf writes, so it never collides with yours.",
    ),
    "RETRY_AFTER": Option(
        default=5.0,
        types=(int, float),
        minimum=0.0,
        help="Seconds to go straight to the database after the cache server failed, before "
        "trying it again (so an outage costs one timeout, not one per query).",
    ),
    "ERROR_LOG_INTERVAL": Option(
        default=60.0,
        types=(int, float),
        minimum=0.0,
        help="Cache errors are counted always, but logged at most once per this many seconds.",
    ),
    "TTL": Option(
        default={"*": 300},
        types=(dict,),
        value_option=Option(default=300, types=(int,), minimum=1, help="Seconds."),
        help='Seconds a cached queryset lives, per model label (``"app_label.Model"``); '
        '``"*"`` applies to every other model.',
    ),
    "NAMESPACE": Option(
        default=None,
        types=(str,),
        nullable=True,
        help="Dotted path of a function ``(connection) -> str`` whose result joins the "
        "database's identity in cache keys and versions, for databases Django's settings do "
        "not tell apart: with a schema per tenant (e.g. django-tenants), return the "
        "connection's current schema. Versions are already kept per database name and "
        "``search_path`` option.",
    ),
    "NOT_CACHED": Option(
        default=["sessions.Session", "admin.LogEntry"],
        types=(list, tuple),
        help="Model labels whose tables no cached read uses: writes to them skip the cache "
        "server (no invalidation round trip), and a cached read touching them is served "
        "uncached (counted as a bypass). Django's ``django_migrations`` table is always "
        "skipped. Add the write-heavy models you never cache; ``[]`` skips only migrations.",
    ),
    "DEPENDS_ON": Option(
        default={},
        types=(dict,),
        value_option=Option(default=[], types=(list, tuple), help="Model labels."),
        help="What an unmanaged model (``Meta.managed = False``, typically a database view) "
        'reads, e.g. ``{"reports.SalesView": ["shop.Order", "shop.OrderLine"]}``: a cached read '
        "of its table is then invalidated by every write to theirs. An empty list means only "
        "statements sent through Django change its table. Reads of an unmanaged model that is "
        "not listed here are served uncached (counted as bypasses, and logged once).",
    ),
    "ALSO_WRITES": Option(
        default={},
        types=(dict,),
        value_option=Option(default=[], types=(list, tuple), help="Model labels."),
        help="The tables database triggers write, per model whose table fires them, e.g. "
        '``{"shop.Order": ["shop.OrderTotal"]}``: every write to ``Order``\'s table also '
        "invalidates cached reads of ``OrderTotal``. Triggers not declared here are not seen.",
    ),
    "WARM": Option(
        default=[],
        types=(list, tuple),
        help="Dotted paths of functions without arguments that return a cached queryset (or "
        "fill the cache when called, like a ``@cached_as`` function), evaluated by "
        "``dbperf_cache warm`` (e.g. after a deploy) along with the functions decorated with "
        "``@hot_queryset``.",
    ),
}

INDEXES_OPTIONS: dict[str, Option] = {
    "CONCURRENTLY": Option(
        default="auto",
        types=(str, bool),
        choices=("auto", True, False),
        help="How ``makemigrations`` writes the indexes declared in ``dbperf_indexes.py`` "
        "modules: ``True`` as Django's ``AddIndexConcurrently`` in a non-atomic migration of "
        "their own (no write lock on the table while the index builds), ``False`` as plain "
        '``AddIndex``, ``"auto"`` concurrently when the database the model is routed to for '
        "writes is PostgreSQL. Either way the migration uses only Django's own operations.",
    ),
    "LOCK_TIMEOUT_MS": Option(
        default=5000,
        types=(int,),
        minimum=0,
        help="``lock_timeout`` (milliseconds) of each ``CREATE INDEX CONCURRENTLY`` run by "
        "``migrate``, so a long transaction on the table makes the build give up and retry "
        "instead of waiting behind it unseen. 0 waits without limit.",
    ),
    "BUILD_RETRIES": Option(
        default=5,
        types=(int,),
        minimum=0,
        help="How many times ``migrate`` retries a concurrent index build that hit the lock "
        "timeout (after dropping the INVALID index the interrupted build left) before failing "
        "with an error naming the index.",
    ),
    "RETRY_BACKOFF_S": Option(
        default=2.0,
        types=(int, float),
        minimum=0.0,
        help="Seconds to wait before the first retry of an interrupted index build; the wait "
        "doubles at each further retry, up to ``MAX_BACKOFF_S``.",
    ),
    "MAX_BACKOFF_S": Option(
        default=60.0,
        types=(int, float),
        minimum=0.0,
        help="Longest wait between two retries of an interrupted index build, in seconds.",
    ),
    "MIN_COST_SAVING_PCT": Option(
        default=50,
        types=(int, float),
        minimum=1,
        maximum=99,
        help="The index advisor keeps a candidate for a statement only when, as a hypothetical "
        "index (hypopg), it cuts that statement's plan cost by at least this percent.",
    ),
    "MIN_TABLE_ROWS": Option(
        default=10_000,
        types=(int,),
        minimum=0,
        help="Tables with fewer rows (the planner's estimate) get no suggestion: reading them "
        "whole is cheap.",
    ),
    "WORKLOAD_SIZE": Option(
        default=200,
        types=(int,),
        minimum=1,
        help="How many statements the advisor reads from the statistics store and "
        "pg_stat_statements, costliest (by total time) first.",
    ),
}

OPTIONS: dict[str, Option] = {
    "ENABLED": Option(
        default=True,
        types=(bool,),
        help="Master switch. False makes every runtime feature of django_dbperf step aside.",
    ),
    "SAMPLE_RATE": Option(
        default=1.0,
        types=(int, float),
        minimum=0.0,
        maximum=1.0,
        help="Share of requests the query-count middleware captures (0.0 to 1.0). Unsampled "
        "requests pay almost nothing, so production can run with e.g. 0.05.",
    ),
    "HEADERS": Option(
        default=True,
        types=(bool,),
        help="Add ``Server-Timing`` and ``X-DB-Query-Count`` headers to captured responses.",
    ),
    "SLOW_QUERY_MS": Option(
        default=100.0,
        types=(int, float),
        minimum=0.0,
        help="A query taking at least this many milliseconds is slow: it is reported and "
        "recorded in the statistics store.",
    ),
    "NPLUSONE_THRESHOLD": Option(
        default=3,
        types=(int,),
        minimum=2,
        help="The same statement shape run this many times from one line is reported as N+1.",
    ),
    "ON_NPLUSONE": Option(
        default="log",
        types=(str,),
        choices=("log", "warn", "raise"),
        help="What the middleware does with a request's findings (N+1 and duplicates alike): "
        '``"log"`` a record on the '
        '``django_dbperf`` logger, ``"warn"`` a Python warning, ``"raise"`` fail the request '
        "(for development and tests).",
    ),
    "PROJECT_ROOTS": Option(
        default=None,
        types=(list, tuple),
        nullable=True,
        help="What is the project's own code, where callsites point: directories (paths) and "
        "package names (dotted, for a project installed as a wheel). ``None`` means the "
        "``BASE_DIR`` setting's directory plus the packages of the settings module and of "
        "``ROOT_URLCONF``; without ``BASE_DIR``, every file outside installed packages and the "
        "standard library. Code elsewhere (Wagtail, the admin, DRF) is framework code: a "
        "finding names the framework line beside the project's.",
    ),
    "HIDE_IN_CALLSITES": Option(
        default=[],
        types=(list, tuple),
        help="Module prefixes never named as a callsite, like django-debug-toolbar's "
        "``HIDE_IN_STACKTRACES``: a project's own data-access helpers, so the line that called "
        'them is named instead (``["myproject.db"]``). Django\'s ORM, ``django.utils`` and '
        "django_dbperf are always hidden.",
    ),
    "QUERY_BUDGET": Option(
        default=None,
        types=(int,),
        nullable=True,
        minimum=0,
        help="Most queries a request may run before it is reported as over budget; ``None`` "
        "means no global budget (views can still declare their own).",
    ),
    "DEFAULT_FETCH_MODE": Option(
        default=None,
        types=(str,),
        nullable=True,
        help="The fetch mode (Django 6.1) of querysets from ``EagerManager`` managers that do not "
        'set their own: ``"FETCH_ONE"``, ``"FETCH_PEERS"`` (batch lazy loads across a '
        'queryset\'s rows, for production), ``"FETCH_RAISE"`` (for tests), or the dotted path '
        "of a ``FetchMode`` instance. Ignored, with check ``dbperf.W003``, on Django 5.2.",
    ),
    "IGNORE": Option(
        default=[],
        types=(list, tuple),
        help="Findings to silence without turning detection off (third-party code you cannot "
        "fix): a list of rules, each a dict. A finding is ignored when every key of some rule "
        "matches it (keys within a rule AND, rules OR). Matching keys: ``path`` (glob on the "
        'request\'s URL path, e.g. ``"/admin/*"``), ``path_regex`` (a regular expression the '
        "whole path must match, ``re.fullmatch``), ``view`` (glob on the URL pattern's view name, "
        '``"admin:*_changelist"``), ``app``, ``model`` and ``relation`` (globs on the '
        'finding\'s relation ``"app_label.Model.field"`` and its parts, e.g. '
        '``"wagtailcore.*"``, ``"auth.User.groups"``; case-insensitive; a finding without a '
        "relation never matches them), ``module`` (glob on the dotted module of the line that "
        "ran the queries, the project's or the framework's, ``\"wagtail.*\"``), ``fingerprint`` "
        "(the finding's statement shape exactly, or its ``fingerprint_id`` as logs and test "
        'failures print it: 8 or more hex digits) and ``kind`` (``"n_plus_one"``, '
        '``"duplicate"`` or ``"unused_eager_load"``). ``reason`` is free text for the next '
        "reader and is not matched. Globs are ``fnmatch`` patterns (``*``, ``?``, ``[...]``) "
        "matched against the whole value. Request keys match findings whose queries ran in "
        "requests through ``QueryCountMiddleware`` (also inside test captures); they never "
        "match other findings. Values are strings; there is no shorthand for a rule. Queries "
        "inside ``django_dbperf.ignore_queries()`` are counted but never part of a finding.",
    ),
    "STATS": Option(
        default={},
        types=(dict,),
        options=STATS_OPTIONS,
        help="The statistics store behind the admin pages; a dict of the keys below.",
    ),
    "CACHE": Option(
        default=None,
        types=(dict,),
        options=CACHE_OPTIONS,
        help="Cached querysets in Valkey or Redis; a dict of the keys below.",
    ),
    "INDEXES": Option(
        default={},
        types=(dict,),
        options=INDEXES_OPTIONS,
        help="The index advisor, how the indexes declared in ``dbperf_indexes.py`` modules "
        "become migrations, and how ``migrate`` builds them; a dict of the keys below.",
    ),
}


def _merge(options: Mapping[str, Option], given: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for name, option in options.items():
        value = given.get(name, option.default)
        if option.options:
            value = MappingProxyType(
                _merge(option.options, value if isinstance(value, dict) else {})
            )
        merged[name] = value
    return merged


def user_settings() -> object:
    """``settings.DBPERF`` as the user wrote it (an empty dict when absent)."""
    return getattr(settings, SETTING_NAME, {})


@functools.cache
def get_config() -> Mapping[str, Any]:
    """The ``DBPERF`` setting merged over the defaults. Read-only; cached until settings change.

    Unknown keys are ignored here: the system checks report them with the key's name.
    """
    given = user_settings()
    if not isinstance(given, dict):
        raise ImproperlyConfigured(
            f"The {SETTING_NAME} setting must be a dict, not {type(given).__name__}."
        )
    return MappingProxyType(_merge(OPTIONS, given))


@functools.cache
def cache_configured() -> bool:
    """Whether the project opted into queryset caching by setting ``DBPERF["CACHE"]``.

    Until it does, writes are not tracked at all (no cache round trip per write).
    """
    given = user_settings()
    return isinstance(given, dict) and isinstance(given.get("CACHE"), dict)


def clear_config_cache(*, setting: str, **kwargs: object) -> None:
    """``setting_changed`` receiver, so ``override_settings(DBPERF=...)`` takes effect."""
    if setting == SETTING_NAME:
        get_config.cache_clear()
        cache_configured.cache_clear()
