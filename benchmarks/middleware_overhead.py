"""Request latency with and without django_dbperf's middleware, next to its peers.

Run from the repository root::

    .venv/bin/python benchmarks/middleware_overhead.py                 # in-memory SQLite
    .venv/bin/python -m tests.servers -- .venv/bin/python benchmarks/middleware_overhead.py \\
        --db postgres                                                  # throwaway PostgreSQL

The script configures Django itself: a tiny app (``Author``, ``Book``) and two views that
issue exactly 50 queries each, a mix like real views (``.get()``, filtered lists, counts,
aggregates, a forward and a reverse foreign-key access). ``/dashboard/`` has no N+1 and no
duplicate; ``/nplusone/`` loads 24 authors one by one, so detection has work to do.

Every variant gets its own ``WSGIHandler`` (a handler loads its middleware when it is built),
and requests are sent straight to the handler with a ``RequestFactory`` environ: no test
client, no network. Variants are interleaved: each round runs one time-boxed batch of every
variant, in a shuffled order, with the garbage collector off during the batch. The ratio of a
variant to its baseline is taken per round (so slow phases of a noisy machine cancel out), and
the median of those ratios is reported.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import has_module, noop, paired, register_app_module, version_of

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # django_dbperf and example_project, run from anywhere

APP_LABEL = "dbperf_bench"
QUERIES_PER_REQUEST = 50
DATABASE_ENV = "DBPERF_TEST_DATABASE_URL"

# Targets (in-memory SQLite): full capture within 15% of bare and within 3x the cost of a
# bare counting execute_wrapper; an unsampled request within 2% of bare.
TARGET_FULL_RATIO = 1.15
TARGET_FULL_VS_FLOOR = 3.0
TARGET_UNSAMPLED_RATIO = 1.02

# Filled in by setup(); Django imports this module as ROOT_URLCONF.
urlpatterns: list[Any] = []


# --------------------------------------------------------------------------------------------
# Django set-up: settings, the tiny app, its data and views.
# --------------------------------------------------------------------------------------------


def database_settings(db: str) -> dict[str, Any]:
    if db == "sqlite":
        database: dict[str, Any] = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    else:
        url = os.environ.get(DATABASE_ENV)
        if not url:
            sys.exit(
                f"--db postgres needs {DATABASE_ENV}; run it as\n"
                "  .venv/bin/python -m tests.servers -- .venv/bin/python "
                "benchmarks/middleware_overhead.py --db postgres"
            )
        from example_project.config import database_from_url

        database = database_from_url(url)
    # Persistent: request_finished must not close (and reopen) the connection every request.
    database["CONN_MAX_AGE"] = None
    return database


def _show_toolbar(request: Any) -> bool:
    return True


def configure(db: str) -> None:
    """settings.configure() and django.setup() for the benchmark app."""
    import django
    from django.conf import settings

    installed_apps = [
        "django.contrib.contenttypes",  # zeal patches GenericForeignKey, which needs it
        "django_dbperf",
        register_app_module(APP_LABEL, HERE),
    ]
    if has_module("debug_toolbar"):
        installed_apps.append("debug_toolbar")
    settings.configure(
        DEBUG=False,
        SECRET_KEY="dbperf-benchmark",
        ALLOWED_HOSTS=["*"],
        USE_TZ=True,
        TIME_ZONE="UTC",
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=installed_apps,
        MIDDLEWARE=[],
        DATABASES={"default": database_settings(db)},
        TEMPLATES=[
            {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}
        ],
        STATIC_URL="/static/",
        LOGGING_CONFIG=None,
        DBPERF={"SAMPLE_RATE": 1.0},
        # django-debug-toolbar: always shown, only the SQL panel.
        DEBUG_TOOLBAR_CONFIG={"IS_RUNNING_TESTS": False, "SHOW_TOOLBAR_CALLBACK": _show_toolbar},
        DEBUG_TOOLBAR_PANELS=["debug_toolbar.panels.sql.SQLPanel"],
        # django-zeal: same threshold as django_dbperf's default, warn instead of raise.
        ZEAL_RAISE=False,
        ZEAL_NPLUSONE_THRESHOLD=3,
        # django-query-doctor: report through logging (silenced below), not the console.
        QUERY_DOCTOR={"REPORTERS": ["log"]},
    )
    django.setup()
    # Findings are reported, but to nowhere: the benchmark measures detection, not log I/O.
    for name in ("django_dbperf", "zeal", "query_doctor"):
        logger = logging.getLogger(name)
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    warnings.filterwarnings("ignore", message=r"N\+1 detected")


@dataclass
class BenchApp:
    author: Any
    book: Any
    mixed: Callable[[int], list[str]]
    dashboard: Callable[[Any], Any]
    nplusone: Callable[[Any], Any]


_app: BenchApp | None = None


def define_app() -> BenchApp:
    """The models and views (after django.setup()); created once per process."""
    global _app
    if _app is not None:
        return _app
    from django.db import models
    from django.db.models import Avg, Count
    from django.http import HttpResponse
    from django.utils.html import escape

    class Author(models.Model):
        name = models.CharField(max_length=100)

        class Meta:
            app_label = APP_LABEL

        def __str__(self) -> str:
            return self.name

    class Book(models.Model):
        title = models.CharField(max_length=200)
        author = models.ForeignKey(Author, related_name="books", on_delete=models.CASCADE)
        year = models.IntegerField(db_index=True)
        pages = models.IntegerField()

        class Meta:
            app_label = APP_LABEL

        def __str__(self) -> str:
            return self.title

    def mixed(k: int) -> list[str]:
        """25 queries of the kinds real views run; ``k`` changes every parameter."""
        out: list[str] = []
        author = Author.objects.get(pk=1 + k)
        out.append(author.name)
        book = Book.objects.get(pk=5 + 7 * k)
        out.append(f"{book.title} by {book.author.name}")  # forward FK: one query
        out += [b.title for b in Book.objects.filter(author_id=2 + k)[:10]]
        recent = Book.objects.filter(year__gte=2000 + k).order_by("-year", "id")
        out += [b.title for b in recent[:10]]
        out.append(str(Book.objects.filter(author_id=3 + k).count()))
        out.append(str(Author.objects.filter(name__startswith=f"Author {k}").exists()))
        with_authors = Book.objects.select_related("author").filter(year=2001 + k)
        out += [f"{b.title} by {b.author.name}" for b in with_authors[:5]]
        out += [b.title for b in author.books.all()[:5]]  # reverse FK
        out.append(str(Book.objects.filter(pages__gt=300 + k).aggregate(avg=Avg("pages"))["avg"]))
        out += Book.objects.filter(year=1995 + k).values_list("title", flat=True)[:10]
        out += [a.name for a in Author.objects.order_by("name")[5 * k : 5 * k + 5]]
        first = Book.objects.filter(author_id=4 + k).order_by("year").first()
        latest = Book.objects.filter(author_id=5 + k).latest("year")
        out += [str(first), str(latest)]
        out.append(str(Book.objects.filter(title__contains=f"{k}7").count()))
        out.append(str(Author.objects.filter(books__year=1999 + k).distinct().count()))
        out += [b.title for b in Book.objects.only("id", "title").filter(author_id=6 + k)[:5]]
        per_year = Book.objects.filter(year__gte=1990 + k).values("year").annotate(n=Count("id"))
        out += [f"{row['year']}: {row['n']}" for row in per_year.order_by("year")[:5]]
        counted = Author.objects.annotate(n=Count("books")).filter(pk=7 + k)
        out += [f"{a.name}: {a.n}" for a in counted]
        out += [b.title for b in Book.objects.filter(pk__in=[10 + k, 20 + k, 30 + k])]
        by_name = Book.objects.filter(author__name=f"Author {8 + k}").order_by("id")
        out += [b.title for b in by_name[:3]]
        out.append(str(Author.objects.filter(pk=9 + k).values_list("name", flat=True).first()))
        out.append(str(Book.objects.exclude(year__lt=2010 + k).count()))
        out.append(str(Book.objects.filter(year__range=(1990 + k, 1995 + k)).exists()))
        out += [b.title for b in Book.objects.in_bulk([40 + k, 50 + k]).values()]
        return out

    def page(parts: Iterable[str]) -> HttpResponse:
        items = "".join(f"<li>{escape(part)}</li>" for part in parts)
        return HttpResponse(
            "<!DOCTYPE html><html><head><title>bench</title></head>"
            f"<body><ul>{items}</ul></body></html>"
        )

    def dashboard(request: Any) -> HttpResponse:
        """50 queries, no N+1, no duplicate."""
        return page(mixed(0) + mixed(1))

    def nplusone(request: Any) -> HttpResponse:
        """50 queries: 25 mixed, then 24 books whose authors are loaded one by one."""
        parts = mixed(0)
        books = list(Book.objects.filter(year__lt=2000).order_by("id")[:24])
        parts += [f"{book.title} by {book.author.name}" for book in books]
        return page(parts)

    _app = BenchApp(Author, Book, mixed, dashboard, nplusone)
    return _app


def setup_urls(app: BenchApp) -> None:
    from django.urls import include, path

    urlpatterns[:] = [
        path("dashboard/", app.dashboard, name="dashboard"),
        path("nplusone/", app.nplusone, name="nplusone"),
    ]
    if has_module("debug_toolbar"):
        urlpatterns.append(path("__debug__/", include("debug_toolbar.urls")))


def create_data(app: BenchApp) -> None:
    """Tables and rows: 20 authors, 400 books (dropped first on PostgreSQL)."""
    from django.db import connection

    with connection.cursor() as cursor:
        for model in (app.book, app.author):
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
    with connection.schema_editor() as editor:
        editor.create_model(app.author)
        editor.create_model(app.book)
    app.author.objects.bulk_create(app.author(pk=i, name=f"Author {i}") for i in range(1, 21))
    app.book.objects.bulk_create(
        app.book(
            pk=i,
            title=f"Book {i}",
            author_id=(i - 1) % 20 + 1,
            year=1990 + (i * 7) % 30,
            pages=100 + (i * 37) % 400,
        )
        for i in range(1, 401)
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def drop_data(app: BenchApp) -> None:
    from django.db import connection

    if connection.vendor != "sqlite":
        with connection.schema_editor() as editor:
            editor.delete_model(app.book)
            editor.delete_model(app.author)


def setup(db: str) -> BenchApp:
    configure(db)
    app = define_app()
    setup_urls(app)
    create_data(app)
    return app


# --------------------------------------------------------------------------------------------
# The floor: the cheapest thing that can sit at this seam.
# --------------------------------------------------------------------------------------------


class CountingWrapper:
    """Counts queries and times them: nothing else."""

    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        self.count += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.total += time.perf_counter() - started


class FloorMiddleware:
    """A ``CountingWrapper`` per request, and one response header."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        from django.db import connection

        counter = CountingWrapper()
        with connection.execute_wrapper(counter):
            response = self.get_response(request)
        response.headers["X-DB-Query-Count"] = str(counter.count)
        return response


# --------------------------------------------------------------------------------------------
# Variants: a handler, a path, and what to switch on and off around its batches.
# --------------------------------------------------------------------------------------------


@dataclass
class Variant:
    name: str
    handler: Any
    path: str
    baseline: str  # name of the variant this one is compared with
    enter: Callable[[], None] = noop
    exit: Callable[[], None] = noop
    note: str = ""
    environ: dict[str, Any] = field(default_factory=dict)
    batch: int = 0  # requests per timed batch, set by calibration
    samples: list[float] = field(default_factory=list)  # ns per request, one per round


def build_handler(middleware: list[str]) -> Any:
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    settings.MIDDLEWARE = middleware
    try:
        return WSGIHandler()
    finally:
        settings.MIDDLEWARE = []


def set_dbperf(**options: Any) -> Callable[[], None]:
    def apply() -> None:
        from django.conf import settings

        from django_dbperf.conf import get_config

        settings.DBPERF = options
        get_config.cache_clear()

    return apply


def set_debug(value: bool) -> Callable[[], None]:
    def apply() -> None:
        from django.conf import settings

        settings.DEBUG = value

    return apply


def remove_dbperf_wrapper() -> None:
    from django.db import connections

    from django_dbperf.capture.recorder import capture_wrapper as WRAPPER

    for connection in connections.all(initialized_only=True):
        while WRAPPER in connection.execute_wrappers:
            connection.execute_wrappers.remove(WRAPPER)


def restore_dbperf_wrapper() -> None:
    from django_dbperf.capture.recorder import install_on_open_connections

    install_on_open_connections()


def unwrap_toolbar_cursors() -> None:
    """Undo the SQL panel's per-connection cursor() patch, so other variants don't pay for it."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        for attribute in (
            "cursor",
            "chunked_cursor",
            "_djdt_cursor",
            "_djdt_chunked_cursor",
            "_djdt_logger",
        ):
            connection.__dict__.pop(attribute, None)


_MISSING = object()


class PatchSwitch:
    """Global monkey-patches (zeal's) that can be switched on and off between batches.

    ``apply`` patches once; the attributes it changed on ``owners`` are recorded and restored,
    and later switched back in for the batches of the variant that needs them.
    """

    def __init__(self, owners: list[Any], apply: Callable[[], None]) -> None:
        before = [dict(vars(owner)) for owner in owners]
        apply()
        self.changes: list[tuple[Any, str, Any, Any]] = []
        for owner, old in zip(owners, before, strict=True):
            for name, value in vars(owner).items():
                previous = old.get(name, _MISSING)
                if previous is not value:
                    self.changes.append((owner, name, previous, value))
        self.off()

    def _set(self, patched: bool) -> None:
        for owner, name, original, replacement in self.changes:
            value = replacement if patched else original
            if value is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, value)
        _clear_related_manager_classes()

    def on(self) -> None:
        self._set(True)

    def off(self) -> None:
        self._set(False)


def _clear_related_manager_classes() -> None:
    """Reverse-FK/M2M descriptors cache their manager class (built by a patchable factory)."""
    from django.apps import apps
    from django.db.models.fields.related_descriptors import ReverseManyToOneDescriptor

    for model in apps.get_models(include_auto_created=True):
        for attribute in vars(model).values():
            if isinstance(attribute, ReverseManyToOneDescriptor):
                attribute.__dict__.pop("related_manager_cls", None)


def zeal_switch() -> PatchSwitch:
    from django.contrib.contenttypes import fields as contenttypes_fields
    from django.db.models import Model, QuerySet
    from django.db.models import query as query_module
    from django.db.models.fields import related_descriptors
    from django.db.models.query_utils import DeferredAttribute
    from zeal.constants import initialize_app_registry
    from zeal.patch import patch

    def apply() -> None:
        initialize_app_registry()
        patch()

    owners = [
        related_descriptors,
        related_descriptors.ForwardManyToOneDescriptor,
        related_descriptors.ReverseOneToOneDescriptor,
        contenttypes_fields,
        getattr(contenttypes_fields, "GenericForeignKeyDescriptor", None)
        or contenttypes_fields.GenericForeignKey,
        DeferredAttribute,
        QuerySet,
        Model,
        query_module,
    ]
    return PatchSwitch(owners, apply)


def make_variants(names: set[str] | None) -> tuple[list[Variant], list[str]]:
    """The variants to run, and notes on those that could not be."""
    from django.test import RequestFactory

    dbperf_mw = "django_dbperf.middleware.QueryCountMiddleware"
    bare = build_handler([])
    notes: list[str] = []
    variants = [
        Variant(
            "bare",
            bare,
            "/dashboard/",
            "bare",
            note="no dbperf middleware; dbperf's idle wrapper on the connection",
        ),
        Variant(
            "bare, no dbperf wrapper",
            bare,
            "/dashboard/",
            "bare",
            enter=remove_dbperf_wrapper,
            exit=restore_dbperf_wrapper,
            note="as if django_dbperf were not installed",
        ),
        Variant(
            "bare, DEBUG=True",
            bare,
            "/dashboard/",
            "bare",
            enter=set_debug(True),
            exit=set_debug(False),
            note="Django's own debug cursor (connection.queries)",
        ),
        Variant(
            "floor: counting wrapper",
            build_handler([f"{__name__}.FloorMiddleware"]),
            "/dashboard/",
            "bare",
            note="execute_wrapper that counts and times, per request",
        ),
        Variant(
            "dbperf full (SAMPLE_RATE=1)",
            build_handler([dbperf_mw]),
            "/dashboard/",
            "bare",
            enter=set_dbperf(SAMPLE_RATE=1.0),
            exit=set_dbperf(SAMPLE_RATE=1.0),
            note="capture + detection + headers",
        ),
        Variant(
            "dbperf full, statistics off",
            build_handler([dbperf_mw]),
            "/dashboard/",
            "bare",
            enter=set_dbperf(SAMPLE_RATE=1.0, STATS={"ENABLED": False}),
            exit=set_dbperf(SAMPLE_RATE=1.0),
            note="as full, without recording into the statistics store's buffer",
        ),
        Variant(
            "dbperf unsampled (SAMPLE_RATE=0)",
            build_handler([dbperf_mw]),
            "/dashboard/",
            "bare",
            enter=set_dbperf(SAMPLE_RATE=0.0),
            exit=set_dbperf(SAMPLE_RATE=1.0),
        ),
    ]
    toolbar = zeal = doctor = None
    if has_module("debug_toolbar"):
        toolbar = build_handler(["debug_toolbar.middleware.DebugToolbarMiddleware"])
        variants.append(
            Variant(
                "debug-toolbar (SQL panel)",
                toolbar,
                "/dashboard/",
                "bare",
                exit=unwrap_toolbar_cursors,
                note="DEBUG=False; toolbar HTML injected",
            )
        )
    else:
        notes.append("django-debug-toolbar is not installed: pip install -e '.[bench]'")
    if has_module("zeal"):
        switch = zeal_switch()
        zeal = build_handler(["zeal.middleware.zeal_middleware"])
        variants.append(
            Variant(
                "zeal",
                zeal,
                "/dashboard/",
                "bare",
                enter=switch.on,
                exit=switch.off,
                note=f"ORM patches switched in for its batches ({len(switch.changes)})",
            )
        )
    else:
        notes.append("django-zeal is not installed: pip install -e '.[bench]'")
    if has_module("query_doctor"):
        doctor = build_handler(["query_doctor.middleware.QueryDoctorMiddleware"])
        variants.append(Variant("query-doctor", doctor, "/dashboard/", "bare"))
    else:
        notes.append("django-query-doctor is not installed: pip install -e '.[bench]'")

    n1 = "bare, N+1 view"
    variants += [
        Variant(n1, bare, "/nplusone/", n1, note="24 of the 50 queries are an N+1"),
        Variant(
            "dbperf full, N+1 view",
            build_handler([dbperf_mw]),
            "/nplusone/",
            n1,
            enter=set_dbperf(SAMPLE_RATE=1.0),
            exit=set_dbperf(SAMPLE_RATE=1.0),
            note="finding logged to a NullHandler",
        ),
    ]
    if zeal is not None:
        variants.append(
            Variant("zeal, N+1 view", zeal, "/nplusone/", n1, enter=switch.on, exit=switch.off)
        )
    if doctor is not None:
        variants.append(Variant("query-doctor, N+1 view", doctor, "/nplusone/", n1))

    if names:
        known = {variant.name for variant in variants}
        unknown = names - known
        if unknown:
            sys.exit(f"unknown variants: {sorted(unknown)}; known: {sorted(known)}")
        wanted = names | {variant.baseline for variant in variants if variant.name in names}
        variants = [variant for variant in variants if variant.name in wanted]
    factory = RequestFactory()
    for variant in variants:
        variant.environ = factory.get(variant.path).environ
    return variants, notes


# --------------------------------------------------------------------------------------------
# Running and timing.
# --------------------------------------------------------------------------------------------


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    pass


def request(variant: Variant) -> Any:
    response = variant.handler(dict(variant.environ), _start_response)
    response.close()  # request_finished, as a server would send it
    return response


def verify(variants: list[Variant]) -> None:
    """Each variant answers 200 with exactly 50 queries; the views find what they should."""
    from django.db import connection

    from django_dbperf import capture_queries

    zeal_alerts: list[object] = []
    if has_module("zeal"):
        from zeal.signals import nplusone_detected

        def on_alert(**kwargs: object) -> None:
            zeal_alerts.append(kwargs.get("exception"))

        nplusone_detected.connect(on_alert, weak=False, dispatch_uid="dbperf-bench")
    for variant in variants:
        zeal_alerts.clear()
        variant.enter()
        try:
            counter = CountingWrapper()
            with connection.execute_wrapper(counter):
                response = request(variant)
        finally:
            variant.exit()
        if variant.name.startswith("zeal") and bool(zeal_alerts) != (variant.path == "/nplusone/"):
            raise SystemExit(f"{variant.name}: zeal reported {zeal_alerts}")
        if response.status_code != 200:
            raise SystemExit(f"{variant.name}: status {response.status_code}")
        if counter.count != QUERIES_PER_REQUEST:
            raise SystemExit(f"{variant.name}: {counter.count} queries, not {QUERIES_PER_REQUEST}")
        if variant.name.startswith("debug-toolbar") and b"djDebug" not in response.content:
            raise SystemExit(f"{variant.name}: the toolbar was not injected")
        if variant.name.startswith("dbperf full"):
            count = response.headers.get("X-DB-Query-Count")
            if count != str(QUERIES_PER_REQUEST):
                raise SystemExit(f"{variant.name}: X-DB-Query-Count is {count}")
    app = define_app()
    for view, expected in ((app.dashboard, 0), (app.nplusone, 1)):
        with capture_queries() as captured:
            view(None)
        if len(captured.findings) != expected:
            found = "\n".join(str(finding) for finding in captured.findings)
            raise SystemExit(f"{view.__name__}: {len(captured.findings)} findings:\n{found}")
    if has_module("zeal"):
        nplusone_detected.disconnect(dispatch_uid="dbperf-bench")


def timed_batch(variant: Variant, count: int) -> float:
    """Nanoseconds per request over ``count`` requests (garbage collector off)."""
    handler, environ = variant.handler, variant.environ
    variant.enter()
    try:
        gc.collect()
        gc.disable()
        started = time.perf_counter_ns()
        for _ in range(count):
            handler(dict(environ), _start_response).close()
        elapsed = time.perf_counter_ns() - started
    finally:
        gc.enable()
        variant.exit()
    return elapsed / count


def calibrate(variants: list[Variant], warmup: int, batch_seconds: float) -> None:
    for variant in variants:
        timed_batch(variant, warmup)
        per_request = timed_batch(variant, warmup) / 1e9
        variant.batch = max(3, round(batch_seconds / per_request))


def run_rounds(variants: list[Variant], rounds: int, *, progress: bool = True) -> None:
    shuffler = random.Random(20260101)
    order = list(variants)
    for number in range(rounds):
        shuffler.shuffle(order)
        for variant in order:
            variant.samples.append(timed_batch(variant, variant.batch))
        if progress:
            print(f"\r  round {number + 1}/{rounds}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)


def seam_costs(rounds: int, statements: int) -> dict[str, float]:
    """Microseconds per statement over no wrapper, for cheap statements (``SELECT %s``).

    The request measurements cannot resolve a fraction of a microsecond per query (a request
    varies by a few percent between rounds); this can, so the floor used as the yardstick
    for the "x floor" column comes from here.
    """
    from contextlib import AbstractContextManager, nullcontext

    from django.db import connection

    from django_dbperf.capture import recording

    class NoWrapper:
        def __enter__(self) -> None:
            remove_dbperf_wrapper()

        def __exit__(self, *exc: object) -> None:
            restore_dbperf_wrapper()

    modes: dict[str, Callable[[], AbstractContextManager[Any]]] = {
        "no wrapper": NoWrapper,
        "idle dbperf wrapper": nullcontext,
        "floor": lambda: connection.execute_wrapper(CountingWrapper()),
        "dbperf recording()": recording,
    }
    samples: dict[str, list[float]] = {name: [] for name in modes}
    with connection.cursor() as cursor:
        for number in range(rounds + 2):  # the first two rounds are warm-up
            for name, mode in modes.items():
                gc.collect()
                gc.disable()
                with mode():
                    started = time.perf_counter_ns()
                    for value in range(statements):
                        cursor.execute("SELECT %s", [value])
                    elapsed = time.perf_counter_ns() - started
                gc.enable()
                if number >= 2:
                    samples[name].append(elapsed / statements / 1000)

    def difference(name: str, baseline: str) -> float:
        pairs = zip(samples[name], samples[baseline], strict=True)
        return statistics.median([value - base for value, base in pairs])

    # The dbperf wrapper stays installed in the last three modes, as on "bare" requests, so
    # the floor and recording() are measured over the idle wrapper.
    return {
        "statement, no wrapper": statistics.median(samples["no wrapper"]),
        "idle dbperf wrapper (over none)": difference("idle dbperf wrapper", "no wrapper"),
        "floor (over idle)": difference("floor", "idle dbperf wrapper"),
        "dbperf recording() (over idle)": difference("dbperf recording()", "idle dbperf wrapper"),
    }


# --------------------------------------------------------------------------------------------
# Results.
# --------------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    path: str
    batch: int
    median_us: float
    ratio: float  # median of per-round ratios to the baseline
    ratio_p25: float
    ratio_p75: float
    overhead_us_per_query: float  # median of per-round differences / 50
    vs_floor: float | None
    note: str


def summarise(variants: list[Variant], floor_overhead: float | None) -> list[Result]:
    by_name = {variant.name: variant for variant in variants}

    results = []
    for variant in variants:
        against = paired(variant.samples, by_name[variant.baseline].samples)
        overhead = against.diff / 1000 / QUERIES_PER_REQUEST
        vs_floor = None
        if floor_overhead and variant.name != variant.baseline:
            vs_floor = overhead / floor_overhead
        results.append(
            Result(
                name=variant.name,
                path=variant.path,
                batch=variant.batch,
                median_us=statistics.median(variant.samples) / 1000,
                ratio=against.ratio,
                ratio_p25=against.ratio_p25,
                ratio_p75=against.ratio_p75,
                overhead_us_per_query=overhead,
                vs_floor=vs_floor,
                note=variant.note,
            )
        )
    return results


def print_table(results: list[Result]) -> None:
    name_width = max(len(result.name) for result in results)
    header = (
        f"{'variant':<{name_width}}  {'req/batch':>9}  {'median us':>10}  {'ratio':>6}  "
        f"{'ratio IQR':>13}  {'us/query':>8}  {'x floor':>7}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        is_baseline = result.ratio == 1.0 and result.overhead_us_per_query == 0.0
        ratio = "base" if is_baseline else f"{result.ratio:.3f}"
        iqr = "" if is_baseline else f"{result.ratio_p25:.3f}-{result.ratio_p75:.3f}"
        overhead = "" if is_baseline else f"{result.overhead_us_per_query:+.2f}"
        vs_floor = f"{result.vs_floor:.2f}" if result.vs_floor is not None else ""
        print(
            f"{result.name:<{name_width}}  {result.batch:>9}  {result.median_us:>10.1f}  "
            f"{ratio:>6}  {iqr:>13}  {overhead:>8}  {vs_floor:>7}"
        )


def check_targets(results: list[Result], db: str) -> list[tuple[str, bool]]:
    by_name = {result.name: result for result in results}
    full = by_name.get("dbperf full (SAMPLE_RATE=1)")
    unsampled = by_name.get("dbperf unsampled (SAMPLE_RATE=0)")
    checks: list[tuple[str, bool]] = []
    if full is not None:
        checks.append(
            (
                f"full capture <= {TARGET_FULL_RATIO}x bare: {full.ratio:.3f}x",
                full.ratio <= TARGET_FULL_RATIO,
            )
        )
        if full.vs_floor is not None:
            checks.append(
                (
                    f"full capture overhead <= {TARGET_FULL_VS_FLOOR:g}x the seam floor's: "
                    f"{full.vs_floor:.2f}x ({full.overhead_us_per_query:.2f} us/query)",
                    full.vs_floor <= TARGET_FULL_VS_FLOOR,
                )
            )
    if unsampled is not None:
        checks.append(
            (
                f"unsampled <= {TARGET_UNSAMPLED_RATIO}x bare: {unsampled.ratio:.3f}x",
                unsampled.ratio <= TARGET_UNSAMPLED_RATIO,
            )
        )
    scope = ""
    if db != "sqlite":
        scope = " (the targets are set for in-memory SQLite; shown for reference)"
    print(f"\nTargets{scope}:")
    for text, met in checks:
        print(f"  [{'MET' if met else 'NOT MET'}] {text}")
    return checks


def describe_machine(db: str) -> dict[str, str]:
    from django.db import connection

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            server = f"PostgreSQL {cursor.fetchone()[0]} (loopback TCP)"
    else:
        import sqlite3

        server = f"SQLite {sqlite3.sqlite_version} in memory"
    packages = ", ".join(
        f"{name} {version}"
        for name in (
            "Django",
            "django-dbperf",
            "django-debug-toolbar",
            "django-zeal",
            "django-query-doctor",
        )
        if (version := version_of(name))
    )
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpu": f"{cpu}, {os.cpu_count()} logical CPUs",
        "database": server,
        "packages": packages,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds (30)")
    parser.add_argument(
        "--batch-ms", type=float, default=150.0, help="time per variant per round (150 ms)"
    )
    parser.add_argument("--warmup", type=int, default=30, help="warm-up requests per variant")
    parser.add_argument(
        "--variant",
        action="append",
        metavar="NAME",
        help="run only this variant (repeatable; its baseline is added)",
    )
    parser.add_argument("--seam-rounds", type=int, default=15, help="seam microbenchmark rounds")
    parser.add_argument(
        "--seam-statements", type=int, default=2000, help="statements per seam batch"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a target is not met (SQLite only)"
    )
    args = parser.parse_args(argv)

    app = setup(args.db)
    try:
        names = set(args.variant) if args.variant else None
        variants, notes = make_variants(names)
        machine = describe_machine(args.db)
        for key, value in machine.items():
            print(f"{key:>9}: {value}")
        for note in notes:
            print(f"     note: {note}")
        verify(variants)
        started = time.monotonic()
        seam = seam_costs(args.seam_rounds, args.seam_statements)
        calibrate(variants, args.warmup, args.batch_ms / 1000)
        print(
            f"\n{len(variants)} variants x {args.rounds} rounds, ~{args.batch_ms:g} ms per "
            f"batch, {QUERIES_PER_REQUEST} queries per request",
            file=sys.stderr,
        )
        run_rounds(variants, args.rounds)
        elapsed = time.monotonic() - started
    finally:
        drop_data(app)

    floor = seam["floor (over idle)"]
    print(
        f"\nSeam microbenchmark ({args.db}, {args.seam_rounds} rounds x {args.seam_statements} "
        "SELECT %s through connection.cursor(); median per-round differences):"
    )
    for name, value in seam.items():
        print(f"  {name:<34} {value:8.3f} us")
    results = summarise(variants, floor)
    print(
        f"\n{args.db}: {args.rounds} rounds in {elapsed:.0f}s. median us = median per-request "
        "time; ratio = median of per-round ratios to the baseline (bare, or bare on the same "
        f"view), IQR of those ratios; us/query = median per-round difference / "
        f"{QUERIES_PER_REQUEST}; x floor = us/query / the seam floor ({floor:.3f} us)\n"
    )
    print_table(results)
    print()
    for result in results:
        if result.note:
            print(f"  {result.name}: {result.note}")
    checks = check_targets(results, args.db)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "db": args.db,
                    "rounds": args.rounds,
                    "machine": machine,
                    "seam_us_per_statement": seam,
                    "results": [vars(result) for result in results],
                    "targets": [{"target": text, "met": met} for text, met in checks],
                },
                indent=2,
            )
        )
    if args.check and args.db == "sqlite" and not all(met for _, met in checks):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
