"""Cached querysets on real PostgreSQL and Redis: what a hit costs, what a write costs, hit ratios.

Run from the repository root (it needs the throwaway servers, or URLs of your own)::

    .venv/bin/pip install -e '.[bench]'        # the peers: django-cachalot, django-cacheops
    .venv/bin/python -m tests.servers -- .venv/bin/python benchmarks/cache_hits.py

The script configures Django itself: a tiny app (``Author``; ``Book`` with a foreign key to
it; ``Visit``, a table no cached query reads), 500 authors with 4 books each, a django-redis
cache alias and ``DBPERF = {"CACHE": {"ALIAS": ...}}``. The page it reads is 20 books with
``select_related("author")``.

1. Reads, interleaved: each round runs a time-boxed batch of every variant in a shuffled
   order, with the garbage collector off during the batch; each variant's ratio to the floor
   is taken per round and the median of those ratios reported. The variants: the queryset
   against PostgreSQL; the floor, a plain django-redis ``cache.get(key)`` of the same pickled
   list of instances (what a hand-written cache reaches); ``list(qs.cached())`` when warm.
2. ``book.save()`` with django_dbperf's invalidation (``DBPERF["CACHE"]`` set) and without
   (no ``CACHE``: the write wrapper steps aside), interleaved the same way.
   Then the same pair on a durable PostgreSQL (``fsync`` and ``synchronous_commit`` turned on
   for the run, as production servers run; ``--skip-durable`` skips it).
   "dbperf @cached_as hit" reads the same page through a function decorated with
   ``@cached_as(Book, Author)``. Rows named "what-if" are not django_dbperf as shipped (a save
   that does not wait for its bump's reply).
3. A read-heavy Zipf workload (95% reads of 500 distinct cached querysets, 5% writes) in three
   variants: writes to ``Book`` (every cached query reads it), writes to ``Author`` (joined by
   one query shape in five), writes to ``Visit`` (read by none). Every read is compared with a
   fresh uncached read of the same queryset right after it, outside the timed part; a read that
   ran no SQL statement is a hit (cross-checked with ``django_dbperf.cache.stats()``).
4. A hit replayed step by step with a clock read between steps, the pieces behind the
   suggestions timed on their own, and a cProfile of hits.
5. The peers, django-cachalot and django-cacheops, each in a subprocess of this script (both
   patch the ORM globally when their app loads), measured against a floor taken in the same
   subprocess, with the same save() comparison and Zipf workloads. A peer that cannot be
   installed or configured is reported as not runnable here.

Options: ``--rounds`` (20), ``--batch-ms`` (100), ``--zipf-ops`` (20,000), ``--zipf-queries``
(500), ``--zipf-s`` (1.1), ``--write-share`` (0.05), ``--peers cachalot,cacheops|none``,
``--skip-zipf``, ``--skip-durable``, ``--skip-profile``, ``--json PATH``. Exit status 0 even
when a target is missed: the targets are printed as MET or MISSED.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import json
import os
import pickle
import platform
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import author_book_models, noop, paired, register_app_module, version_of

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # django_dbperf and example_project, run from anywhere

APP_LABEL = "dbperf_cachebench"
DATABASE_ENV = "DBPERF_TEST_DATABASE_URL"
REDIS_ENV = "DBPERF_TEST_REDIS_URL"
CACHE_ALIAS = "redis"
KEY_PREFIX = "dbperf-cachebench"  # every key this script writes (cleaned up at the end)
RUN_HINT = ".venv/bin/python -m tests.servers -- .venv/bin/python benchmarks/cache_hits.py"

AUTHORS = 500
BOOKS_PER_AUTHOR = 4
PAGE_AUTHORS = 5  # the page: books of authors 1-5, i.e. 20 rows, with select_related("author")
FLOOR_KEY = "hand-written:books-page"
PEERS = {"cachalot": "django-cachalot", "cacheops": "django-cacheops"}

# Targets from the issue.
TARGET_HIT_VS_FLOOR = 1.5
TARGET_SAVE_RATIO = 1.15
TARGET_ZIPF_HIT_RATIO = 0.90


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Django set-up: settings, the tiny app and its data.
# --------------------------------------------------------------------------------------------


def server_urls() -> tuple[str, str]:
    database, redis = os.environ.get(DATABASE_ENV), os.environ.get(REDIS_ENV)
    missing = [name for name, value in ((DATABASE_ENV, database), (REDIS_ENV, redis)) if not value]
    if missing or database is None or redis is None:
        sys.exit(
            f"cache_hits.py measures real PostgreSQL and Valkey/Redis, and {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set. Run it as\n  {RUN_HINT}\n"
            "(which starts throwaway servers and sets both), or set them to servers of your own."
        )
    if not database.startswith(("postgres://", "postgresql://", "pgsql://")):
        sys.exit(f"{DATABASE_ENV} must be a postgres:// URL, not {database!r}.")
    return database, redis


def _cacheops_prefix(query: Any) -> str:
    return f"{KEY_PREFIX}:"


def configure(mode: str) -> None:
    """settings.configure() and django.setup(); ``mode`` is "dbperf" or a peer's name."""
    import django
    from django.conf import settings

    from example_project.config import cache_from_url, database_from_url

    database_url, redis_url = server_urls()
    database = database_from_url(database_url)
    database["CONN_MAX_AGE"] = None
    redis_cache = cache_from_url(redis_url)
    redis_cache["KEY_PREFIX"] = KEY_PREFIX
    redis_cache["TIMEOUT"] = 600
    installed_apps = [
        "django.contrib.contenttypes",
        "django_dbperf",
        register_app_module(APP_LABEL, HERE),
    ]
    extra: dict[str, Any] = {}
    if mode == "dbperf":
        extra["DBPERF"] = {"CACHE": {"ALIAS": CACHE_ALIAS}}
    elif mode == "cachalot":
        installed_apps.append("cachalot")
        extra.update(
            CACHALOT_CACHE=CACHE_ALIAS,
            CACHALOT_TIMEOUT=600,
            CACHALOT_ONLY_CACHABLE_TABLES=frozenset(
                {f"{APP_LABEL}_book", f"{APP_LABEL}_author", f"{APP_LABEL}_visit"}
            ),
        )
    elif mode == "cacheops":
        installed_apps.append("cacheops")
        profile = {"ops": (), "timeout": 600}  # nothing implicit: reads opt in with .cache()
        extra.update(
            CACHEOPS_REDIS=redis_url,
            CACHEOPS_PREFIX=_cacheops_prefix,
            CACHEOPS={f"{APP_LABEL}.book": profile, f"{APP_LABEL}.author": profile},
        )
    settings.configure(
        DEBUG=False,
        SECRET_KEY="dbperf-benchmark",
        USE_TZ=True,
        TIME_ZONE="UTC",
        INSTALLED_APPS=installed_apps,
        DATABASES={"default": database},
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            CACHE_ALIAS: redis_cache,
        },
        LOGGING_CONFIG=None,
        **extra,
    )
    django.setup()


@dataclass
class BenchApp:
    author: Any
    book: Any
    visit: Any


_app: BenchApp | None = None


def define_app() -> BenchApp:
    """The models (after django.setup()); created once per process."""
    global _app
    if _app is not None:
        return _app
    from django.db import models

    Author, Book = author_book_models(APP_LABEL, "cache")

    class Visit(models.Model):
        page = models.CharField(max_length=100)
        count = models.IntegerField(default=0)

        class Meta:
            app_label = APP_LABEL

        def __str__(self) -> str:
            return self.page

    _app = BenchApp(Author, Book, Visit)
    return _app


def create_data(app: BenchApp) -> None:
    """500 authors, 2,000 books (author k has books 4k-3 to 4k), 20 visit counters."""
    from django.db import connection

    drop_tables(app)
    with connection.schema_editor() as editor:
        for model in (app.author, app.book, app.visit):
            editor.create_model(model)
    app.author.objects.bulk_create(
        app.author(pk=k, name=f"Author {k}", email=f"author{k}@example.com")
        for k in range(1, AUTHORS + 1)
    )
    app.book.objects.bulk_create(
        app.book(
            pk=i,
            title=f"Book {i}",
            author_id=(i - 1) // BOOKS_PER_AUTHOR + 1,
            year=1990 + (i * 7) % 30,
            pages=100 + (i * 37) % 400,
        )
        for i in range(1, AUTHORS * BOOKS_PER_AUTHOR + 1)
    )
    app.visit.objects.bulk_create(app.visit(pk=i, page=f"/page/{i}/") for i in range(1, 21))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def drop_tables(app: BenchApp) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for model in (app.visit, app.book, app.author):
            cursor.execute(
                f"DROP TABLE IF EXISTS {connection.ops.quote_name(model._meta.db_table)}"
            )


def clear_keys() -> None:
    """Delete every key this script wrote (the alias's KEY_PREFIX; cacheops' prefix too)."""
    from django.core.cache import caches

    cache = caches[CACHE_ALIAS]
    cache.delete_pattern("*")  # type: ignore[attr-defined]  # django-redis: within KEY_PREFIX
    client = cache.client.get_client(write=True)  # type: ignore[attr-defined]
    for key in client.scan_iter(match=f"{KEY_PREFIX}:*", count=1000):
        client.delete(key)


def set_cache_setting(enabled: bool, not_cached: list[str] | None = None) -> None:
    """Switch DBPERF["CACHE"] on or off, as a settings change would (without the signal);
    ``not_cached``: its NOT_CACHED list (None: the default)."""
    from django.conf import settings

    from django_dbperf.cache.skipped import skipped_tables
    from django_dbperf.conf import cache_configured, get_config

    cache: dict[str, Any] = {"ALIAS": CACHE_ALIAS}
    if not_cached is not None:
        cache["NOT_CACHED"] = not_cached
    settings.DBPERF = {"CACHE": cache} if enabled else {}
    get_config.cache_clear()
    cache_configured.cache_clear()
    skipped_tables.cache_clear()


# --------------------------------------------------------------------------------------------
# What is read and compared.
# --------------------------------------------------------------------------------------------


def page(manager: Any) -> Any:
    """The page every read variant loads: 20 books with their authors."""
    return manager.select_related("author").filter(author_id__lte=PAGE_AUTHORS).order_by("id")


def shape(manager: Any, k: int, joined: bool) -> Any:
    """The Zipf workload's query number ``k``: the books of author ``k``."""
    queryset = manager.filter(author_id=k).order_by("id")
    return queryset.select_related("author") if joined else queryset


def snapshot(books: list[Any], joined: bool = True) -> list[tuple[Any, ...]]:
    return [
        (b.pk, b.title, b.pages, b.year, b.author_id, b.author.name if joined else None)
        for b in books
    ]


class QueryCounter:
    """An ``execute_wrapper`` that only counts: a read that ran no query was a hit."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


def queries_run(func: Callable[[], Any]) -> tuple[Any, int]:
    from django.db import connection

    counter = QueryCounter()
    with connection.execute_wrapper(counter):
        result = func()
    return result, counter.count


@dataclass
class Backend:
    """A caching library as the workloads use it."""

    name: str
    read_page: Callable[[], list[Any]]  # the page, through the cache
    read: Callable[[int, bool], list[Any]]  # Zipf query k (joined or not), through the cache
    fresh: Callable[[int, bool], list[Any]]  # the same, straight from the database
    on: Callable[[], None]  # caching (and its invalidation) switched on ...
    off: Callable[[], None]  # ... and off, for the save() comparison
    off_label: str


def dbperf_backend(app: BenchApp) -> Backend:
    Book = app.book
    return Backend(
        name="dbperf",
        read_page=lambda: list(page(Book.cache).cached()),
        read=lambda k, joined: list(shape(Book.cache, k, joined).cached()),
        fresh=lambda k, joined: list(shape(Book.objects, k, joined)),
        on=lambda: set_cache_setting(True),
        off=lambda: set_cache_setting(False),
        off_label="no DBPERF CACHE",
    )


def cachalot_backend(app: BenchApp) -> Backend:
    from cachalot.api import cachalot_disabled, invalidate
    from cachalot.settings import cachalot_settings

    Book = app.book

    def fresh(k: int, joined: bool) -> list[Any]:
        with cachalot_disabled():
            return list(shape(Book.objects, k, joined))

    def on() -> None:
        if not cachalot_settings.patched:
            cachalot_settings.load()
            # Writes made while unpatched were not seen: forget what was cached before.
            invalidate(app.book, app.author, app.visit, cache_alias=CACHE_ALIAS)

    return Backend(
        name="cachalot",
        read_page=lambda: list(page(Book.objects)),
        read=lambda k, joined: list(shape(Book.objects, k, joined)),
        fresh=fresh,
        on=on,
        off=cachalot_settings.unload,  # its ORM patches removed: plain Django
        off_label="cachalot unpatched",
    )


def cacheops_backend(app: BenchApp) -> Backend:
    from cacheops.conf import settings as cacheops_settings
    from django.conf import settings

    Book = app.book

    def enabled(value: bool) -> Callable[[], None]:
        def apply() -> None:
            settings.CACHEOPS_ENABLED = value
            cacheops_settings.__dict__.pop("CACHEOPS_ENABLED", None)

        return apply

    return Backend(
        name="cacheops",
        read_page=lambda: list(page(Book.objects).cache()),
        read=lambda k, joined: list(shape(Book.objects, k, joined).cache()),
        fresh=lambda k, joined: list(shape(Book.objects, k, joined).nocache()),
        on=enabled(True),
        off=enabled(False),  # its patches cannot be removed; CACHEOPS_ENABLED=False
        off_label="CACHEOPS_ENABLED=False",
    )


# --------------------------------------------------------------------------------------------
# Interleaved micro-benchmarks.
# --------------------------------------------------------------------------------------------


@dataclass
class Variant:
    name: str
    op: Callable[[], Any]
    baseline: str  # the variant this one's per-round ratio is taken against
    enter: Callable[[], None] = noop
    exit: Callable[[], None] = noop
    note: str = ""
    queries: int | None = None  # statements one read must run (checked before timing)
    batch: int = 0  # operations per timed batch, set by calibration
    samples: list[float] = field(default_factory=list)  # ns per operation, one per round


def timed_batch(variant: Variant, count: int) -> float:
    """Nanoseconds per operation over ``count`` operations (garbage collector off)."""
    op = variant.op
    variant.enter()
    try:
        gc.collect()
        gc.disable()
        started = time.perf_counter_ns()
        for _ in range(count):
            op()
        elapsed = time.perf_counter_ns() - started
    finally:
        gc.enable()
        variant.exit()
    return elapsed / count


def run_interleaved(
    variants: list[Variant], rounds: int, batch_seconds: float, warmup: int, label: str
) -> None:
    for variant in variants:
        timed_batch(variant, warmup)
        per_op = timed_batch(variant, warmup) / 1e9
        variant.batch = max(3, round(batch_seconds / per_op))
    shuffler = random.Random(20260101)
    order = list(variants)
    for number in range(rounds):
        shuffler.shuffle(order)
        for variant in order:
            variant.samples.append(timed_batch(variant, variant.batch))
        print(f"\r  {label}: round {number + 1}/{rounds}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


@dataclass
class Row:
    name: str
    baseline: str
    batch: int
    median_us: float
    ratio: float  # median of the per-round ratios to the baseline
    ratio_p25: float
    ratio_p75: float
    diff_us: float  # median of the per-round differences to the baseline
    note: str = ""


def summarise(variants: list[Variant]) -> list[Row]:
    by_name = {variant.name: variant for variant in variants}
    rows = []
    for variant in variants:
        against = paired(variant.samples, by_name[variant.baseline].samples)
        rows.append(
            Row(
                name=variant.name,
                baseline=variant.baseline,
                batch=variant.batch,
                median_us=statistics.median(variant.samples) / 1000,
                ratio=against.ratio,
                ratio_p25=against.ratio_p25,
                ratio_p75=against.ratio_p75,
                diff_us=against.diff / 1000,
                note=variant.note,
            )
        )
    return rows


def make_variants(app: BenchApp, backend: Backend, floor_name: str) -> list[Variant]:
    """Reads against the floor, and save() with the backend's caching on against off."""
    from django.core.cache import caches

    cache = caches[CACHE_ALIAS]
    Book = app.book
    expected = list(page(Book.objects))
    cache.set(FLOOR_KEY, expected, timeout=None)
    saved = list(Book.objects.order_by("-id")[:20])  # books no read variant loads
    cycle = itertools.cycle(saved)

    def warm() -> None:
        backend.on()
        backend.read_page()

    def save() -> None:
        next(cycle).save()

    peer = backend.name != "dbperf"
    variants = [
        Variant(
            floor_name,
            lambda: cache.get(FLOOR_KEY),
            floor_name,
            note="django-redis cache.get() of the same pickled list",
            queries=0,
        ),
        Variant(
            f"uncached: PostgreSQL{f' ({backend.off_label})' if peer else ''}",
            lambda: list(page(Book.objects)),
            floor_name,
            enter=backend.off if peer else noop,
            exit=backend.on if peer else noop,
            note="list(qs): the query, 20 books + authors built",
            queries=1,
        ),
    ]
    if backend.name == "dbperf":
        prebuilt = page(Book.cache).cached()
        variants += [
            Variant(
                "dbperf hit",
                backend.read_page,
                floor_name,
                enter=warm,
                note="list(Book.cache.select_related(...).filter(...).order_by(...).cached())",
                queries=0,
            ),
            Variant(
                "dbperf hit, queryset built once",
                lambda: list(prebuilt.all()),
                floor_name,
                enter=warm,
                note="list(qs.all()) of a prebuilt cached queryset",
                queries=0,
            ),
            *keyed_reads(app, floor_name),
        ]
    else:
        variants.append(
            Variant(
                f"{backend.name} hit",
                backend.read_page,
                floor_name,
                enter=warm,
                note="its own cached read of the same page",
                queries=0,
            )
        )
    off_name = f"save(), {backend.off_label}"
    variants += [
        Variant(
            off_name,
            save,
            off_name,
            enter=backend.off,
            exit=backend.on,
            note="book.save(): one UPDATE",
        ),
        Variant(f"save(), {backend.name} invalidation", save, off_name, enter=backend.on),
    ]
    if backend.name == "dbperf":
        variants += what_if_saves(save, off_name)
        variants += unread_table_saves(app)
    verify(variants, expected, backend)
    return variants


def unread_table_saves(app: BenchApp) -> list[Variant]:
    """``Visit.save()``, a table no cached query reads: without DBPERF["CACHE"], with it (a
    bump per write), and with Visit in ``NOT_CACHED`` (no round trip)."""
    cycle = itertools.cycle(list(app.visit.objects.order_by("pk")))
    label = f"{APP_LABEL}.Visit"

    def save() -> None:
        next(cycle).save()

    def tracked() -> None:
        set_cache_setting(True, not_cached=[])

    def skipped() -> None:
        set_cache_setting(True, not_cached=[label])

    def on() -> None:
        set_cache_setting(True)

    off_name = "Visit.save(), no DBPERF CACHE"
    return [
        Variant(off_name, save, off_name, enter=lambda: set_cache_setting(False), exit=on,
                note="visit.save(): one UPDATE of a table no cached query reads"),
        Variant("Visit.save(), dbperf invalidation", save, off_name, enter=tracked, exit=on),
        Variant("Visit.save(), NOT_CACHED lists it", save, off_name, enter=skipped, exit=on),
    ]  # fmt: skip


def keyed_reads(app: BenchApp, floor_name: str) -> list[Variant]:
    """The page through ``@cached_as(Book, Author)``: the keyed API, no queryset built on a
    hit."""
    from django_dbperf.cache import cached_as

    @cached_as(app.book, app.author, key="bench page")  # closes over app: one per process
    def page_of_books(authors: int) -> list[Any]:
        return list(page(app.book.objects))

    def warm() -> None:
        set_cache_setting(True)
        page_of_books(PAGE_AUTHORS)

    return [
        Variant("dbperf @cached_as hit", lambda: page_of_books(PAGE_AUTHORS), floor_name,
                enter=warm, note="a function decorated with @cached_as(Book, Author)",
                queries=0),
    ]  # fmt: skip


def what_if_saves(save: Callable[[], None], off_name: str) -> list[Variant]:
    """save() with its bump sent but its reply left unread (read after the batch): what a
    write would cost without waiting for the round trip, which the cache does not allow (a
    reader in another thread could start after the save returned and still get the old
    entry)."""
    from django_dbperf.cache.store import STORE

    writer = STORE._writer
    unread = [0]

    def send_only(pool: Any, arguments: list[Any]) -> None:
        connection = writer.connection
        if connection is None:
            raise SystemExit("what-if: the bump connection is not open yet")
        connection.send_packed_command(connection.pack_command(*arguments), check_health=False)
        unread[0] += 1

    def sending_on() -> None:
        set_cache_setting(True)
        next_save()  # opens the connection the normal way
        writer.send = send_only  # type: ignore[method-assign]

    def sending_off() -> None:
        del writer.send
        while unread[0]:
            unread[0] -= 1
            writer.connection.read_response()

    from django.db import connection

    active: list[Any] = []

    def overlapped_on() -> None:
        set_cache_setting(False)  # the wrapper below stands in for the invalidation
        active.append(connection.execute_wrapper(overlapped))
        active[-1].__enter__()

    def overlapped_off() -> None:
        active.pop().__exit__(None, None, None)
        drain()
        set_cache_setting(True)

    overlapped, drain = overlapped_bumps(save)
    next_save = save
    return [
        Variant("what-if: save(), bump sent without waiting for its reply", save, off_name,
                enter=sending_on, exit=sending_off),
        Variant("what-if: save(), bump overlapped with the UPDATE, + a second message", save,
                off_name, enter=overlapped_on, exit=overlapped_off),
    ]  # fmt: skip


def overlapped_bumps(save: Callable[[], None]) -> tuple[Any, Callable[[], None]]:
    """An ``execute_wrapper`` that sends a row's bump script before the statement, reads its
    reply after it, then sends one more message without waiting: the messages a design that
    hides the round trip behind the database's would send (it would mark the table's writes in
    flight before the statement and clear the mark after the commit). Commands are packed in
    advance and no row is looked up: the cost of the messages alone. Returns the wrapper and a
    function that reads the last unread reply."""
    from django_dbperf.cache.store import _BUMP_ROW_SHA, STORE

    set_cache_setting(True)
    save()  # opens the bump connection
    writer = STORE._writer
    bump_connection = writer.connection
    made = STORE._made_prefix(STORE.cache.client)  # type: ignore[attr-defined]
    table = f"{APP_LABEL}_book"
    keys = [made + name for name in ("meta:seq", f"table:{table}", f"part:{table}:author_id:1",
                                      f"pk:{table}:1", f"row:{table}:1")]  # fmt: skip
    before = bump_connection.pack_command("EVALSHA", _BUMP_ROW_SHA, len(keys), *keys, 1, 300)
    after = bump_connection.pack_command("DECR", made + f"flight:{table}")
    unread = [0]

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        bump_connection.send_packed_command(before, check_health=False)
        result = execute(sql, params, many, context)
        for _ in range(unread[0] + 1):
            bump_connection.read_response()
        bump_connection.send_packed_command(after, check_health=False)
        unread[0] = 1
        return result

    def drain() -> None:
        if unread[0]:
            bump_connection.read_response()
            unread[0] = 0

    return wrapper, drain


def verify(variants: list[Variant], expected: list[Any], backend: Backend) -> None:
    """Every read variant returns the page; hits run no query; uncached runs one."""
    want = snapshot(expected)
    for variant in variants:
        if variant.queries is None:
            continue
        variant.enter()
        try:
            result, count = queries_run(variant.op)
        finally:
            variant.exit()
        if count != variant.queries:
            raise SystemExit(f"{variant.name}: {count} queries, not {variant.queries}")
        if snapshot(result) != want:
            raise SystemExit(f"{variant.name}: returned something else than the page")


# --------------------------------------------------------------------------------------------
# The Zipf workload.
# --------------------------------------------------------------------------------------------

WORKLOADS = {
    "book": "writes update a random Book: every cached query reads that table",
    "author": "writes update a random Author: joined by 1 query shape in 5",
    "visit": "writes update a Visit counter: a table no cached query reads",
}


@dataclass
class ZipfResult:
    backend: str
    workload: str
    reads: int
    writes: int
    hits: int
    stale: int
    distinct: int
    joined_share: float
    cached_mean_us: float  # every read through the cache, hits and misses
    hit_median_us: float
    miss_median_us: float
    fresh_mean_us: float
    fresh_median_us: float
    stats_hits: int | None = None  # django_dbperf.cache.stats() deltas, dbperf only
    stats_misses: int | None = None

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.reads if self.reads else 0.0


def zipf_workload(
    app: BenchApp,
    backend: Backend,
    workload: str,
    ops: int,
    queries: int,
    s: float,
    write_share: float,
    seed: int,
) -> ZipfResult:
    from django.db import connection

    rng = random.Random(seed)
    weights = list(itertools.accumulate(1 / k**s for k in range(1, queries + 1)))
    ranks = list(range(1, queries + 1))
    joined_shapes = workload == "author"

    def is_joined(k: int) -> bool:
        return joined_shapes and k % 5 == 0

    backend.on()
    # In-memory objects to write (loaded once, uncached): writes are not timed.
    books = {b.pk: b for b in app.book.objects.all()} if workload == "book" else {}
    authors = {a.pk: a for a in app.author.objects.all()} if workload == "author" else {}
    visits = list(app.visit.objects.all()) if workload == "visit" else []

    def write(number: int) -> None:
        if workload == "book":
            book = books[rng.randint(1, len(books))]
            book.pages += 1
            book.save()
        elif workload == "author":
            author = authors[rng.randint(1, len(authors))]
            author.name = f"Author {author.pk} v{number}"
            author.save()
        else:
            visit = rng.choice(visits)
            visit.count += 1
            visit.save()

    # Warm: every query once, so the run measures the steady state, not 500 cold misses.
    for k in ranks:
        backend.read(k, is_joined(k))
    stats_before = _dbperf_stats(app) if backend.name == "dbperf" else None

    counter = QueryCounter()
    reads = writes = hits = stale = 0
    seen: set[int] = set()
    joined_reads = 0
    cached_ns: list[int] = []
    hit_ns: list[int] = []
    miss_ns: list[int] = []
    fresh_ns: list[int] = []
    with connection.execute_wrapper(counter):
        for number in range(ops):
            if rng.random() < write_share:
                write(number)
                writes += 1
                continue
            k = rng.choices(ranks, cum_weights=weights)[0]
            joined = is_joined(k)
            before = counter.count
            started = time.perf_counter_ns()
            got = backend.read(k, joined)
            middle = time.perf_counter_ns()
            ran = counter.count - before
            # Outside the timed part: a fresh read of the same queryset, right after.
            expected = backend.fresh(k, joined)
            fresh_ns.append(time.perf_counter_ns() - middle)
            cached_ns.append(middle - started)
            (miss_ns if ran else hit_ns).append(middle - started)
            reads += 1
            hits += ran == 0
            joined_reads += joined
            seen.add(k)
            if snapshot(got, joined) != snapshot(expected, joined):
                stale += 1
    result = ZipfResult(
        backend=backend.name,
        workload=workload,
        reads=reads,
        writes=writes,
        hits=hits,
        stale=stale,
        distinct=len(seen),
        joined_share=joined_reads / reads if reads else 0.0,
        cached_mean_us=statistics.fmean(cached_ns) / 1000,
        hit_median_us=statistics.median(hit_ns) / 1000 if hit_ns else float("nan"),
        miss_median_us=statistics.median(miss_ns) / 1000 if miss_ns else float("nan"),
        fresh_mean_us=statistics.fmean(fresh_ns) / 1000,
        fresh_median_us=statistics.median(fresh_ns) / 1000,
    )
    if stats_before is not None:
        after = _dbperf_stats(app)
        result.stats_hits = after["hit"] - stats_before["hit"]
        result.stats_misses = after["miss"] - stats_before["miss"]
    return result


def _dbperf_stats(app: BenchApp) -> dict[str, int]:
    from django_dbperf import cache as dbperf_cache

    found = dbperf_cache.stats().get(app.book._meta.label, {})
    return {event: found.get(event, 0) for event in ("hit", "miss", "bypass")}


def run_zipf(app: BenchApp, backend: Backend, args: argparse.Namespace) -> list[ZipfResult]:
    results = []
    for number, workload in enumerate(WORKLOADS):
        say(f"  zipf ({backend.name}): {workload} writes, {args.zipf_ops} operations")
        results.append(
            zipf_workload(
                app,
                backend,
                workload,
                args.zipf_ops,
                args.zipf_queries,
                args.zipf_s,
                args.write_share,
                seed=42 + number,
            )
        )
    return results


# --------------------------------------------------------------------------------------------
# Where a hit's time goes (dbperf only).
# --------------------------------------------------------------------------------------------


def per_call_us(func: Callable[[], Any], repeats: int = 7, budget: float = 0.05) -> float:
    """Median microseconds per call over ``repeats`` batches of about ``budget`` seconds."""
    for _ in range(20):
        func()
    started = time.perf_counter()
    calls = 0
    while time.perf_counter() - started < budget / 5:
        func()
        calls += 1
    number = max(10, int(calls * 5))
    samples = []
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        begin = time.perf_counter_ns()
        for _ in range(number):
            func()
        samples.append((time.perf_counter_ns() - begin) / number / 1000)
        gc.enable()
    return statistics.median(samples)


HIT_STEPS = (
    "build: Book.cache.select_related().filter().order_by().cached()",
    "key: query_key() (the query's shape; SQL compiled once per shape)",
    "tables, narrowing, entry name, dirty_tables(), available",
    "STORE.lookup(): one MGET, header compared, payload.loads()",
    "STORE.count() (hit counters)",
    "list() over the result",
)


def hit_in_flow(app: BenchApp, iterations: int) -> tuple[list[tuple[str, float]], float]:
    """A hit's path (``_through_cache``), replayed step by step with a clock read between
    steps: median us per step, and the median total.

    The steps call the same functions as the real path, in its order, on real objects, so
    they add up to a real hit (compare the total with "dbperf hit" above); timing each piece
    in a loop of its own underestimates it (warm CPU caches).
    """
    from time import perf_counter_ns as now

    from django_dbperf.cache import invalidation, queryset, store
    from django_dbperf.cache.keys import query_key
    from django_dbperf.cache.prefetch import UNKNOWN, prefetch_tables
    from django_dbperf.cache.tables import read_tables

    STORE = store.STORE
    Book = app.book
    label = Book._meta.label
    list(page(Book.cache).cached())  # stored
    samples: list[list[int]] = [[] for _ in HIT_STEPS]
    totals: list[int] = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(iterations):
            t0 = now()
            qs = page(Book.cache).cached()
            t1 = now()
            key = query_key(qs)
            t2 = now()
            prefetched = prefetch_tables(qs)
            read = read_tables(key.sql) | prefetched
            narrow = qs._narrowing("rows", key.sql, prefetched)
            entry = store.entry_name(
                qs.db, "rows", label, queryset._fields_signature(Book), key.sql, key.identity,
                qs._iterable_class.__name__, queryset._prefetch_identity(qs),
            )  # fmt: skip
            if UNKNOWN in read or read & invalidation.dirty_tables(qs.db) or not STORE.available:
                raise SystemExit("the page would bypass the cache")
            t3 = now()
            lookup = STORE.lookup(entry, read, (), narrow)
            t4 = now()
            STORE.count(label, "hit")
            t5 = now()
            result = list(lookup.payload) if lookup is not None else []
            t6 = now()
            if lookup is None or not lookup.hit or len(result) != BOOKS_PER_AUTHOR * PAGE_AUTHORS:
                raise SystemExit(
                    "the replayed hit was not a hit: django_dbperf/cache/queryset.py changed; "
                    "update hit_in_flow()"
                )
            stamps = (t0, t1, t2, t3, t4, t5, t6)
            for index in range(len(HIT_STEPS)):
                samples[index].append(stamps[index + 1] - stamps[index])
            totals.append(t6 - t0)
    finally:
        gc.enable()
    steps = [
        (name, statistics.median(values) / 1000)
        for name, values in zip(HIT_STEPS, samples, strict=True)
    ]
    return steps, statistics.median(totals) / 1000


def what_ifs(app: BenchApp) -> tuple[list[tuple[str, float]], dict[str, int]]:
    """Isolated timings of a hit's and a write's parts, next to the floor's."""
    from django.core.cache import caches

    from django_dbperf.cache import payload
    from django_dbperf.cache.keys import query_key
    from django_dbperf.cache.shape import query_shape
    from django_dbperf.cache.store import STORE

    cache = caches[CACHE_ALIAS]
    client = cache.client  # type: ignore[attr-defined]
    redis = client.get_client(write=True)
    books = list(page(app.book.objects))
    floor_raw = redis.get(client.make_key(FLOOR_KEY))
    lean = payload.dumps(books)
    if snapshot(payload.loads(lean)) != snapshot(books):  # type: ignore[arg-type]
        raise SystemExit("the lean payload did not rebuild the page")
    prebuilt = page(app.book.cache).cached()
    query_key(prebuilt)  # its shape remembered, as after a first read
    table = f"{APP_LABEL}_visit"
    timed = [
        ("floor: cache.get(key), all included", lambda: cache.get(FLOOR_KEY)),
        ("  its GET round trip (redis-py, bytes)", lambda: redis.get(client.make_key(FLOOR_KEY))),
        ("  its unpickling of 20 books + 20 authors", lambda: pickle.loads(floor_raw)),
        ("payload.loads() of the same page (what a hit rebuilds)", lambda: payload.loads(lean)),
        ("a miss's pickle.dumps() of the page", lambda: pickle.dumps(books, -1)),
        ("  payload.dumps() of the page (what a miss stores)", lambda: payload.dumps(books)),
        ("query_shape() of the page's query", lambda: query_shape(prebuilt.query)),
        ("query_key() of the page (shape seen before)", lambda: query_key(prebuilt)),
        ("  compiling its SQL: get_compiler().as_sql()",
         lambda: prebuilt.query.get_compiler(using="default").as_sql()),
        ("STORE.bump({table}): one MSET", lambda: STORE.bump({table})),
        ("STORE.count(table, 'invalidation')", lambda: STORE.count(table, "invalidation")),
    ]  # fmt: skip
    results = [(name, per_call_us(func)) for name, func in timed]
    sizes = {"floor bytes (pickle)": len(floor_raw), "lean payload bytes": len(lean)}
    return results, sizes


PROFILE_MARKERS = (
    "(_through_cache)",
    "(lookup)",
    "(query_key)",
    "(query_shape)",
    "(as_sql)",
    "(loads)",
    "registry.py:188(get_model)",
    "(_chain)",
    "(count)",
    "(entry_name)",
    "(mget)",
)


def profile_hits(app: BenchApp, hits: int) -> tuple[list[tuple[str, float, float, int]], float]:
    """cProfile of ``hits`` warm reads: (function, own us/hit, cumulative us/hit, calls/hit)."""
    Book = app.book
    list(page(Book.cache).cached())
    profiler = cProfile.Profile()
    gc.collect()
    gc.disable()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(hits):
        list(page(Book.cache).cached())
    profiler.disable()
    elapsed = time.perf_counter() - started
    gc.enable()
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, function), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            (
                f"{short(filename)}:{line}({function})",
                own / hits * 1e6,
                cumulative / hits * 1e6,
                round(calls / hits),
            )
        )
    rows.sort(key=lambda row: row[1], reverse=True)
    return rows, elapsed / hits * 1e6


def short(filename: str) -> str:
    for marker in ("site-packages/", f"{ROOT}/", "lib/python3.12/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def durable_saves(app: BenchApp, backend: Backend, args: argparse.Namespace) -> list[Row]:
    """The save() pair again on a PostgreSQL that flushes its WAL at every commit (``fsync``
    and ``synchronous_commit`` on, as production servers run; the test server runs without).
    """
    from django.db import connection

    saved = list(app.book.objects.order_by("-id")[:20])
    cycle = itertools.cycle(saved)

    def save() -> None:
        next(cycle).save()

    def configure_durability(on: bool) -> str:
        with connection.cursor() as cursor:
            for setting in ("fsync", "synchronous_commit"):
                if on:
                    cursor.execute(f"ALTER SYSTEM SET {setting} = on")
                else:
                    cursor.execute(f"ALTER SYSTEM RESET {setting}")
            cursor.execute("SELECT pg_reload_conf()")
            time.sleep(0.3)  # the server rereads its configuration
            cursor.execute("SHOW fsync")
            return str(cursor.fetchone()[0])

    off_name = "save(), durable PostgreSQL, no DBPERF CACHE"
    variants = [
        Variant(off_name, save, off_name, enter=backend.off, exit=backend.on),
        Variant("save(), durable PostgreSQL, dbperf invalidation", save, off_name,
                enter=backend.on),
    ]  # fmt: skip
    try:
        if configure_durability(True) != "on":
            say("  could not turn fsync on: durable save() not measured")
            return []
        rounds = max(6, args.rounds // 2)
        run_interleaved(variants, rounds, args.batch_ms / 1000, args.warmup // 5, "durable")
    finally:
        configure_durability(False)
    return summarise(variants)


def save_bumps(app: BenchApp) -> dict[str, int]:
    """Cache round trips of one save() with invalidation on: bumps, and what else it calls."""
    from django_dbperf.cache.store import STORE

    calls = {"STORE.bump()": 0, "STORE.bump_row()": 0, "cache.set_many()": 0}
    original_bump, original_bump_row, cache = STORE.bump, STORE.bump_row, STORE.cache
    original_set_many = cache.set_many

    def bump(*args: Any, **kwargs: Any) -> None:
        calls["STORE.bump()"] += 1
        original_bump(*args, **kwargs)

    def bump_row(*args: Any, **kwargs: Any) -> None:
        calls["STORE.bump_row()"] += 1
        original_bump_row(*args, **kwargs)

    def set_many(*args: Any, **kwargs: Any) -> Any:
        calls["cache.set_many()"] += 1
        return original_set_many(*args, **kwargs)

    book = app.book.objects.order_by("-id").first()
    set_cache_setting(True)
    STORE.bump = bump  # type: ignore[method-assign]
    STORE.bump_row = bump_row  # type: ignore[method-assign]
    cache.set_many = set_many  # type: ignore[method-assign]
    try:
        _, queries = queries_run(book.save)
    finally:
        del STORE.bump, STORE.bump_row
        del cache.set_many
    return {**calls, "SQL statements": queries}


# --------------------------------------------------------------------------------------------
# The peers, each in a subprocess of this script.
# --------------------------------------------------------------------------------------------


@dataclass
class PeerReport:
    name: str
    runnable: bool
    reason: str = ""
    version: str | None = None
    rows: list[Row] = field(default_factory=list)
    zipf: list[ZipfResult] = field(default_factory=list)


def run_peer_subprocess(name: str, args: argparse.Namespace) -> PeerReport:
    distribution = PEERS[name]
    version = version_of(distribution)
    if version is None:
        return PeerReport(
            name, False, f"{distribution} is not installed: pip install -e '.[bench]'"
        )
    with tempfile.TemporaryDirectory(prefix="dbperf-cachebench-") as tmp:
        out = Path(tmp) / "peer.json"
        command = [
            sys.executable,
            __file__,
            "--peer",
            name,
            "--peer-json",
            str(out),
            "--rounds",
            str(args.rounds),
            "--batch-ms",
            str(args.batch_ms),
            "--warmup",
            str(args.warmup),
            "--zipf-ops",
            str(args.zipf_ops),
            "--zipf-queries",
            str(args.zipf_queries),
            "--zipf-s",
            str(args.zipf_s),
            "--write-share",
            str(args.write_share),
        ]
        if args.skip_zipf:
            command.append("--skip-zipf")
        say(f"\n{distribution} {version}, in a subprocess:")
        completed = subprocess.run(command, stderr=subprocess.PIPE, text=True, check=False)
        sys.stderr.write(completed.stderr)
        if completed.returncode != 0 or not out.exists():
            lines = [line for line in completed.stderr.strip().splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit status {completed.returncode}"
            return PeerReport(
                name, False, f"{distribution} {version} failed here: {reason}", version
            )
        data = json.loads(out.read_text())
    return PeerReport(
        name,
        True,
        version=version,
        rows=[Row(**row) for row in data["rows"]],
        zipf=[ZipfResult(**result) for result in data["zipf"]],
    )


def peer_main(args: argparse.Namespace) -> int:
    """In the subprocess: the peer's app loaded; a floor, its hit, save(), its Zipf runs."""
    name = args.peer
    configure(name)
    app = define_app()
    backend = {"cachalot": cachalot_backend, "cacheops": cacheops_backend}[name](app)
    create_data(app)
    try:
        backend.on()
        variants = make_variants(app, backend, "floor (this process)")
        run_interleaved(variants, args.rounds, args.batch_ms / 1000, args.warmup, name)
        rows = summarise(variants)
        zipf = [] if args.skip_zipf else run_zipf(app, backend, args)
    finally:
        backend.on()
        drop_tables(app)
        clear_keys()
    Path(args.peer_json).write_text(
        json.dumps({"rows": [asdict(row) for row in rows], "zipf": [asdict(z) for z in zipf]})
    )
    return 0


# --------------------------------------------------------------------------------------------
# Output.
# --------------------------------------------------------------------------------------------


def print_rows(title: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    width = max(len(row.name) for row in rows)
    header = (
        f"{'variant':<{width}}  {'ops/batch':>9}  {'median us':>10}  {'ratio':>7}  "
        f"{'ratio IQR':>13}  {'+us':>8}  baseline"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        base = row.name == row.baseline
        ratio = "base" if base else f"{row.ratio:.3f}"
        iqr = "" if base else f"{row.ratio_p25:.3f}-{row.ratio_p75:.3f}"
        diff = "" if base else f"{row.diff_us:+.1f}"
        print(
            f"{row.name:<{width}}  {row.batch:>9}  {row.median_us:>10.1f}  {ratio:>7}  "
            f"{iqr:>13}  {diff:>8}  {'' if base else row.baseline}"
        )


def print_zipf(results: list[ZipfResult]) -> None:
    header = (
        f"{'backend':<9} {'writes to':<9} {'reads':>6} {'writes':>6} {'distinct':>8} "
        f"{'hit ratio':>9} {'stale':>5} {'read mean':>9} {'hit med':>7} {'miss med':>8} "
        f"{'uncached':>17} {'speed-up':>8}"
    )
    print(header)
    print(
        f"{'':<9} {'':<9} {'':>6} {'':>6} {'':>8} {'':>9} {'':>5} {'us':>9} {'us':>7} "
        f"{'us':>8} {'mean / median us':>17} {'(means)':>8}"
    )
    print("-" * len(header))
    for r in results:
        fresh = f"{r.fresh_mean_us:.0f} / {r.fresh_median_us:.0f}"
        print(
            f"{r.backend:<9} {r.workload:<9} {r.reads:>6} {r.writes:>6} {r.distinct:>8} "
            f"{r.hit_ratio:>9.1%} {r.stale:>5} {r.cached_mean_us:>9.0f} {r.hit_median_us:>7.0f} "
            f"{r.miss_median_us:>8.0f} {fresh:>17} {r.fresh_mean_us / r.cached_mean_us:>7.2f}x"
        )


def print_summary(rows: list[Row], reports: list[PeerReport]) -> None:
    """One line per library: its hit against the floor of its own process, its save()."""
    print("\nSide by side (each ratio is paired within its own process):")
    header = (
        f"{'library':<16} {'hit us':>7} {'floor us':>8} {'hit x floor':>11} {'save() ratio':>12}"
    )
    print(header)
    print("-" * len(header))
    entries = [("django_dbperf", rows, "dbperf hit")]
    entries += [(PEERS[r.name], r.rows, f"{r.name} hit") for r in reports if r.runnable]
    for library, table, hit_name in entries:
        by_name = {row.name: row for row in table}
        hit = by_name[hit_name]
        floor = by_name[hit.baseline]
        save = next(row for row in table if row.name.endswith(" invalidation"))
        print(
            f"{library:<16} {hit.median_us:>7.0f} {floor.median_us:>8.0f} {hit.ratio:>10.2f}x "
            f"{save.ratio:>11.2f}x"
        )
    for report in reports:
        if not report.runnable:
            print(f"{PEERS[report.name]:<16} not runnable here")


def code_version() -> str:
    """The commit of django_dbperf measured, and whether its cache package had local changes."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
            ).stdout.strip()
        except OSError:
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--", "django_dbperf/cache")
    return (
        f"django_dbperf at {commit}{' + local changes in django_dbperf/cache' if changed else ''}"
    )


def describe_machine() -> dict[str, str]:
    from django.core.cache import caches
    from django.db import connection

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        database = f"PostgreSQL {cursor.fetchone()[0]}"
    info = caches[CACHE_ALIAS].client.get_client(write=False).info("server")  # type: ignore[attr-defined]
    server = "Valkey" if "valkey_version" in info else "Redis"
    version = info.get("valkey_version") or info.get("redis_version")
    packages = ", ".join(
        f"{name} {version}"
        for name in ("Django", "django-redis", "redis", "psycopg", *PEERS.values())
        if (version := version_of(name))
    )
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "code": code_version(),
        "cpu": f"{cpu}, {os.cpu_count()} logical CPUs",
        "servers": f"{database} and {server} {version}, loopback TCP",
        "packages": packages,
    }


def check_targets(rows: list[Row], zipf: list[ZipfResult]) -> list[tuple[str, bool]]:
    by_name = {row.name: row for row in rows}
    checks: list[tuple[str, bool]] = []
    ratio_targets = (
        ("dbperf hit", "a hit costs <= {t}x the floor (cache.get), building the queryset "
         "included", TARGET_HIT_VS_FLOOR),
        ("dbperf hit, queryset built once", "a hit costs <= {t}x the floor (cache.get), the "
         "evaluation of a built queryset", TARGET_HIT_VS_FLOOR),
        ("dbperf @cached_as hit", "a hit costs <= {t}x the floor (cache.get), through "
         "@cached_as", TARGET_HIT_VS_FLOOR),
        ("save(), dbperf invalidation", "save() with the cache <= {t}x without, PostgreSQL "
         "without durability", TARGET_SAVE_RATIO),
        ("save(), durable PostgreSQL, dbperf invalidation", "save() with the cache <= {t}x "
         "without, durable PostgreSQL", TARGET_SAVE_RATIO),
    )  # fmt: skip
    for name, text, target in ratio_targets:
        row = by_name.get(name)
        if row is not None:
            measured = (
                f"{row.ratio:.2f}x ({row.median_us:.0f} vs "
                f"{by_name[row.baseline].median_us:.0f} us)"
            )
            checks.append((f"{text.format(t=target)}: {measured}", row.ratio <= target))
    for result in zipf:
        if result.backend != "dbperf":
            continue
        checks.append(
            (
                f"Zipf, writes to {result.workload}: hit ratio >= "
                f"{TARGET_ZIPF_HIT_RATIO:.0%} with 0 stale reads: {result.hit_ratio:.1%}, "
                f"{result.stale} stale",
                result.hit_ratio >= TARGET_ZIPF_HIT_RATIO and result.stale == 0,
            )
        )
    return checks


# --------------------------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds (20)")
    parser.add_argument(
        "--batch-ms", type=float, default=100.0, help="time per variant per round (100 ms)"
    )
    parser.add_argument("--warmup", type=int, default=50, help="warm-up operations per variant")
    parser.add_argument(
        "--zipf-ops", type=int, default=20000, help="operations per Zipf workload (20,000)"
    )
    parser.add_argument("--zipf-queries", type=int, default=500, help="distinct querysets (500)")
    parser.add_argument("--zipf-s", type=float, default=1.1, help="Zipf exponent (1.1)")
    parser.add_argument("--write-share", type=float, default=0.05, help="share of writes (0.05)")
    parser.add_argument("--profile-hits", type=int, default=3000, help="hits under cProfile")
    parser.add_argument("--top", type=int, default=25, help="cProfile rows to print")
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help="comma-separated peers, or 'none' (cachalot,cacheops)",
    )
    parser.add_argument("--skip-zipf", action="store_true")
    parser.add_argument("--skip-durable", action="store_true", help="no fsync-on save() pair")
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--peer", choices=sorted(PEERS), help=argparse.SUPPRESS)
    parser.add_argument("--peer-json", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.peer:
        return peer_main(args)
    peers = [] if args.peers == "none" else [name for name in args.peers.split(",") if name]
    unknown = set(peers) - set(PEERS)
    if unknown:
        sys.exit(f"unknown peers: {sorted(unknown)}; known: {sorted(PEERS)}")

    configure("dbperf")
    app = define_app()
    backend = dbperf_backend(app)
    create_data(app)
    clear_keys()
    machine = describe_machine()
    zipf: list[ZipfResult] = []
    steps: list[tuple[str, float]] = []
    replay_total = 0.0
    extras: list[tuple[str, float]] = []
    sizes: dict[str, int] = {}
    profile: list[tuple[str, float, float, int]] = []
    profiled_us = 0.0
    started = time.monotonic()
    try:
        variants = make_variants(app, backend, "floor: cache.get()")
        run_interleaved(variants, args.rounds, args.batch_ms / 1000, args.warmup, "dbperf")
        rows = summarise(variants)
        bumps = save_bumps(app)
        if not args.skip_durable:
            rows += durable_saves(app, backend, args)
        if not args.skip_zipf:
            zipf = run_zipf(app, backend, args)
        if not args.skip_profile:
            say("  profiling a hit")
            steps, replay_total = hit_in_flow(app, args.profile_hits)
            extras, sizes = what_ifs(app)
            profile, profiled_us = profile_hits(app, args.profile_hits)
    finally:
        set_cache_setting(True)
        drop_tables(app)
        clear_keys()
    reports = [run_peer_subprocess(name, args) for name in peers]
    elapsed = time.monotonic() - started

    for key, value in machine.items():
        print(f"{key:>9}: {value}")
    print(
        f"\n{args.rounds} interleaved rounds, ~{args.batch_ms:g} ms per batch, "
        f"{elapsed:.0f}s in all. median us = median per-operation time; ratio = median of "
        "per-round ratios to the baseline, with their IQR; +us = median per-round "
        "difference."
    )
    print_rows("django_dbperf (the page: 20 books with select_related('author')):", rows)
    print(f"\n  one save() with invalidation on: {bumps}")
    for report in reports:
        if report.runnable:
            print_rows(
                f"{PEERS[report.name]} {report.version} (its own process; "
                "compare its 'x floor' ratio):",
                report.rows,
            )
        else:
            print(f"\n{PEERS[report.name]}: not runnable here. {report.reason}")

    all_zipf = zipf + [z for report in reports for z in report.zipf]
    if all_zipf:
        print(
            f"\nZipf workload: {args.zipf_queries} distinct querysets (books of author k, k "
            f"drawn with s={args.zipf_s}), {1 - args.write_share:.0%} reads / "
            f"{args.write_share:.0%} writes, {args.zipf_ops} operations after one warm read "
            "of every query; each read checked against a fresh uncached read."
        )
        for workload, text in WORKLOADS.items():
            print(f"  {workload}: {text}")
        print_zipf(all_zipf)
        for result in zipf:
            if result.stats_hits is not None:
                print(
                    f"  dbperf stats() deltas, {result.workload}: {result.stats_hits} hits, "
                    f"{result.stats_misses} misses (counted by queries: {result.hits} hits of "
                    f"{result.reads} reads); joined reads {result.joined_share:.0%}"
                )

    print_summary(rows, reports)
    if steps:
        hit = next(row for row in rows if row.name == "dbperf hit")
        print(
            f"\nA dbperf hit replayed step by step ({args.profile_hits} times; median us per "
            f"step; total {replay_total:.0f} us, the interleaved 'dbperf hit' "
            f"{hit.median_us:.0f} us):"
        )
        for name, us in steps:
            print(f"  {name:<68} {us:7.1f}  {us / replay_total:4.0%}")
        print(f"\nBehind the suggestions, each timed in a loop of its own (us; sizes {sizes}):")
        for name, us in extras:
            print(f"  {name:<68} {us:7.1f}")
        print(
            f"\ncProfile of {args.profile_hits} hits ({profiled_us:.0f} us per hit under the "
            "profiler, which inflates small calls; per hit):"
        )
        print(f"  {'function':<76} {'own us':>7} {'cum us':>7} {'calls':>5}")
        for function, own, cumulative, calls in profile[: args.top]:
            print(f"  {function[-76:]:<76} {own:7.2f} {cumulative:7.2f} {calls:>5}")
        print("  ... and by cumulative time, the calls that make up a hit:")
        for function, own, cumulative, calls in sorted(profile, key=lambda r: -r[2]):
            if any(marker in function for marker in PROFILE_MARKERS):
                print(f"  {function[-76:]:<76} {own:7.2f} {cumulative:7.2f} {calls:>5}")

    checks = check_targets(rows, zipf)
    print("\nTargets:")
    for text, met in checks:
        print(f"  [{'MET' if met else 'MISSED'}] {text}")
    if args.skip_zipf:
        print(f"  [not measured] Zipf hit ratio >= {TARGET_ZIPF_HIT_RATIO:.0%}: --skip-zipf")
    for report in reports:
        if not report.runnable:
            print(f"  [not runnable here] {PEERS[report.name]}: {report.reason}")

    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": machine,
                    "rows": [asdict(row) for row in rows],
                    "save_round_trips": bumps,
                    "zipf": [asdict(z) | {"hit_ratio": z.hit_ratio} for z in all_zipf],
                    "peers": [asdict(report) for report in reports],
                    "hit_steps_us": dict(steps),
                    "what_ifs_us": dict(extras),
                    "targets": [{"target": text, "met": met} for text, met in checks],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
