"""The admin pages of the statistics store at production size: time per page, queries per page.

Run from the repository root::

    .venv/bin/python -m tests.servers -- .venv/bin/python benchmarks/admin_pages.py
                                                           # throwaway PostgreSQL (the target)
    .venv/bin/python benchmarks/admin_pages.py --db sqlite # a temporary SQLite file, for reference

The script configures Django itself (the admin, auth, sessions, messages and django_dbperf;
``/admin/`` as the only URL), migrates, empties django_dbperf's tables and seeds them in bulk
(``COPY`` on PostgreSQL, with each table's indexes and constraints built after its load;
``executemany`` on SQLite) with rows generated from one seeded random generator, so both
databases get the same data:

* ``--shapes`` statement shapes (100,000) over four aliases, SQL text of 300-1,500 characters
  over 250 tables, log-normal calls and means;
* 1-3 (view, line) rows per shape over 500 views and 2,000 lines;
* hourly rows over ``--days`` days (30): every hour for the ``--dense-shapes`` busiest shapes
  by total time (2,000 x 720 = 1.44M rows), ``--sparse-hours`` (5) random hours for each of the
  others (all of them would be 72M rows);
* 5,000 findings and 5,000 pg_stat_statements rows, half of them with the queryid of a shape;

then runs ``VACUUM (ANALYZE)`` on those tables (what autovacuum does soon after such a load;
``--no-vacuum``: ``ANALYZE`` only) and waits until no autovacuum worker runs, so that none
competes with the timings. Each page is requested through Django's test ``Client`` as a
superuser: once to warm up, once under ``CaptureQueriesContext`` (its queries and their
database time), then ``--repeat`` (7) timed requests. The table gives the median and maximum
and PASS or FAIL against the target, 200 ms per page on PostgreSQL (the median is compared).
For a page that misses it, its slowest queries are shown with ``EXPLAIN (ANALYZE, BUFFERS)``.
Page 100 of the statement list is ``?p=100``: the admin's page numbers start at 1.

Options: ``--db postgres|sqlite``, ``--shapes``, ``--days``, ``--dense-shapes``,
``--sparse-hours``, ``--repeat``, ``--seed``, ``--no-vacuum``, ``--keep`` (leave the seeded rows
and the benchmark's superuser in the database), ``--check`` (exit 1 when a page misses the
target). The seeded rows replace whatever django_dbperf's tables held in that database, and are
deleted at the end. Seeding takes about 90 s on PostgreSQL on a 2-vCPU machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import itertools
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # django_dbperf and example_project, run from anywhere

DATABASE_ENV = "DBPERF_TEST_DATABASE_URL"
TARGET_MS = 200.0
ADMIN = "/admin/django_dbperf"
USERNAME = "dbperf-admin-bench"

# What the seeded data looks like.
ALIASES = (("default", 0.80), ("replica", 0.12), ("analytics", 0.05), ("legacy", 0.03))
APPS = (
    "shop", "billing", "accounts", "catalog", "orders", "shipping", "crm", "reports",
    "support", "inventory",
)  # fmt: skip
MODELS = (
    "order",
    "lineitem",
    "customer",
    "invoice",
    "payment",
    "product",
    "variant",
    "address",
    "shipment",
    "ticket",
    "comment",
    "member",
    "profile",
    "coupon",
    "refund",
    "stocklevel",
    "warehouse",
    "supplier",
    "pricebook",
    "taxrate",
    "event",
    "memo",
    "attachment",
    "subscription",
    "plan",
)  # fmt: skip  (no model name is a prefix of another: a search for a table finds only it)
TABLES = tuple(f"{app}_{model}" for app in APPS for model in MODELS)
COLUMNS = (
    "id", "created_at", "updated_at", "status", "customer_id", "owner_id", "tenant_id", "name",
    "slug", "reference", "description", "quantity", "amount", "currency", "due_date",
    "paid_at", "external_id", "is_active", "position", "metadata",
)  # fmt: skip
VIEWS = 500
CALLSITES = 2000  # 4 lines per view
FINDINGS = 5000
PG_STATEMENTS = 5000
SAMPLE_RATE = 0.1  # sampled_calls = calls x SAMPLE_RATE, as a sampled production store has
SEARCH_SHARE = 0.005  # the search term is a table name in about this share of the shapes
# Calls per hour of the day (UTC), relative: quiet nights, busy afternoons.
DIURNAL = tuple(0.35 + 0.65 * math.sin(math.pi * max(0, h - 5) / 19) ** 2 for h in range(24))

# Filled in by configure(); Django imports this module as ROOT_URLCONF.
urlpatterns: list[Any] = []


# --------------------------------------------------------------------------------------------
# Django set-up.
# --------------------------------------------------------------------------------------------


def database_settings(db: str, workdir: str) -> dict[str, Any]:
    from example_project.config import database_from_url

    if db == "sqlite":
        url = f"sqlite:///{Path(workdir) / 'admin_pages.sqlite3'}"
    else:
        url = os.environ.get(DATABASE_ENV, "")
        if not url:
            sys.exit(
                f"--db postgres (the default) needs {DATABASE_ENV}; run it as\n"
                "  .venv/bin/python -m tests.servers -- .venv/bin/python "
                "benchmarks/admin_pages.py\n"
                "or pass --db sqlite for a temporary SQLite file."
            )
    database = database_from_url(url)
    # Persistent: request_finished must not close (and reopen) the connection every request.
    database["CONN_MAX_AGE"] = None
    return database


def configure(db: str, workdir: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="dbperf-admin-benchmark",
        ALLOWED_HOSTS=["*"],
        USE_TZ=True,
        TIME_ZONE="UTC",
        ROOT_URLCONF=__name__,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django_dbperf",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        DATABASES={"default": database_settings(db, workdir)},
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        STATIC_URL="/static/",
        LOGGING_CONFIG=None,
        DBPERF={"SAMPLE_RATE": SAMPLE_RATE},
    )
    django.setup()
    from django.contrib import admin
    from django.urls import path

    urlpatterns.append(path("admin/", admin.site.urls))


# --------------------------------------------------------------------------------------------
# The data: generated in Python from one seed, written in bulk.
# --------------------------------------------------------------------------------------------


@dataclass
class Plan:
    shapes: int
    days: int
    dense_shapes: int
    sparse_hours: int
    seed: int


@dataclass
class Shape:
    id: int
    alias: str
    fingerprint_id: str
    sql: str
    tables: frozenset[str]
    is_select: bool
    calls: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    rows: float
    first_seen: dt.datetime
    last_seen: dt.datetime
    queryid: int | None

    @property
    def total_ms(self) -> float:
        return self.calls * self.mean_ms


@dataclass
class Seeded:
    """What was written, to print and to choose the pages' parameters from."""

    plan: Plan
    seconds: float = 0.0
    phases: list[tuple[str, int, float]] = field(default_factory=list)  # (what, rows, s)
    settled: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    busiest_shape: int = 0
    busiest_hours: int = 0
    view: str = ""
    view_shapes: int = 0
    search: str = ""
    search_shapes: int = 0
    notes: list[str] = field(default_factory=list)


def quote(name: str) -> str:
    return f'"{name}"'


def column(table: str, name: str) -> str:
    return f"{quote(table)}.{quote(name)}"


def select_statement(rng: random.Random, main: str, target: int) -> tuple[str, set[str]]:
    """A Django-like SELECT of about ``target`` characters: columns, joins, conditions."""
    tables = [main]
    columns = [column(main, "id")]
    joins: list[str] = []
    where = [f"{column(main, 'tenant_id')} = %s"]
    length = 60
    while length < target:
        choice = rng.random()
        if choice < 0.12 and len(tables) < 6:
            other = TABLES[int(len(TABLES) * rng.random() ** 2)]
            if other in tables:
                continue
            kind = "INNER JOIN" if rng.random() < 0.7 else "LEFT OUTER JOIN"
            fk = other.split("_", 1)[1] + "_id"
            on = f"{column(rng.choice(tables), fk)} = {column(other, 'id')}"
            text = f"{kind} {quote(other)} ON ({on})"
            joins.append(text)
            tables.append(other)
        elif choice < 0.25:
            col = column(rng.choice(tables), rng.choice(COLUMNS))
            text = rng.choice(
                (f"{col} = %s", f"{col} IN (%s, %s, %s)", f"{col} IS NULL", f"{col} >= %s")
            )
            where.append(text)
        else:
            text = column(rng.choice(tables), rng.choice(COLUMNS))
            columns.append(text)
        length += len(text) + 5
    sql = f"SELECT {', '.join(columns)} FROM {quote(main)}"
    if joins:
        sql += " " + " ".join(joins)
    sql += f" WHERE ({' AND '.join(where)})"
    if rng.random() < 0.6:
        sql += f" ORDER BY {column(main, 'created_at')} DESC"
    if rng.random() < 0.5:
        sql += " LIMIT 21"
    return sql, set(tables)


def write_statement(rng: random.Random, main: str, target: int) -> tuple[str, set[str]]:
    """An UPDATE, INSERT or DELETE of about ``target`` characters."""
    kind = rng.random()
    if kind < 0.5:
        sets = [f"{quote(name)} = %s" for name in rng.sample(COLUMNS[1:], rng.randint(2, 12))]
        keys = max(1, (target - 40 - sum(len(s) + 2 for s in sets)) // 4)
        sql = (
            f"UPDATE {quote(main)} SET {', '.join(sets)} WHERE {column(main, 'id')} "
            f"IN ({', '.join(['%s'] * keys)})"
        )
    elif kind < 0.8:
        names = list(COLUMNS[1:])
        rows = max(1, (target - 200) // (4 * len(names)))
        values = ", ".join([f"({', '.join(['%s'] * len(names))})"] * rows)
        sql = (
            f"INSERT INTO {quote(main)} ({', '.join(quote(n) for n in names)}) "
            f"VALUES {values} RETURNING {column(main, 'id')}"
        )
    else:
        keys = max(1, (target - 50) // 4)
        sql = (
            f"DELETE FROM {quote(main)} WHERE {column(main, 'id')} IN ({', '.join(['%s'] * keys)})"
        )
    return sql, {main}


def histogram_json(rng: random.Random, p50_ms: float, sampled: int) -> str:
    """A sparse histogram around ``p50_ms`` in django_dbperf's buckets, as stored (JSON)."""
    from django_dbperf.stats import histogram

    centre = histogram.bucket_of(max(p50_ms, histogram.FLOOR_MS))
    buckets: dict[int, int] = {}
    remaining = max(sampled, 1)
    for offset in range(-4, 14):
        if remaining <= 0:
            break
        weight = math.exp(-abs(offset) / 2.5) * rng.uniform(0.5, 1.0)
        count = max(1, round(sampled * weight / 4))
        count = min(count, remaining)
        buckets[min(histogram.BUCKETS - 1, max(0, centre + offset))] = count
        remaining -= count
    return json.dumps(histogram.to_json(buckets))


def weighted_alias(rng: random.Random) -> str:
    roll = rng.random()
    for alias, share in ALIASES:
        if roll < share:
            return alias
        roll -= share
    return ALIASES[0][0]


def generate_shapes(plan: Plan, rng: random.Random, now: dt.datetime) -> list[Shape]:
    shapes = []
    fingerprint_ids: set[tuple[str, str]] = set()
    span = dt.timedelta(days=plan.days)
    for number in range(1, plan.shapes + 1):
        alias = weighted_alias(rng)
        while True:
            fingerprint_id = f"{rng.getrandbits(48):012x}"
            if (alias, fingerprint_id) not in fingerprint_ids:
                fingerprint_ids.add((alias, fingerprint_id))
                break
        main = TABLES[int(len(TABLES) * rng.random() ** 2)]  # some tables far busier
        target = int(rng.triangular(300, 1500, 450))
        is_select = rng.random() < 0.85
        builder = select_statement if is_select else write_statement
        sql, tables = builder(rng, main, target)
        calls = float(max(1, round(math.exp(rng.gauss(6.0, 2.5)))))
        mean = math.exp(rng.gauss(0.0, 1.3))
        p50 = mean * rng.uniform(0.5, 0.9)
        p95 = mean * rng.uniform(1.5, 4.0)
        p99 = p95 * rng.uniform(1.2, 2.5)
        first_seen = now - span * rng.random()
        last_seen = max(first_seen, now - dt.timedelta(hours=rng.expovariate(1 / 12)))
        queryid = None
        if alias == "default" and rng.random() < 0.4:
            queryid = rng.getrandbits(63) - 2**62
        shapes.append(
            Shape(
                id=number,
                alias=alias,
                fingerprint_id=fingerprint_id,
                sql=sql,
                tables=frozenset(tables),
                is_select=is_select,
                calls=calls,
                mean_ms=mean,
                p50_ms=p50,
                p95_ms=p95,
                p99_ms=p99,
                max_ms=p99 * rng.uniform(1.0, 10.0),
                rows=calls * rng.uniform(0.0, 50.0) if is_select else calls,
                first_seen=first_seen,
                last_seen=last_seen,
                queryid=queryid,
            )
        )
    return shapes


def view_name(index: int) -> str:
    app = APPS[index % len(APPS)]
    model = MODELS[(index // len(APPS)) % len(MODELS)]
    action = ("list", "detail", "update", "export")[index // (len(APPS) * len(MODELS)) % 4]
    return f"{app}:{model}-{action}-{index}"


def callsite(index: int) -> tuple[str, str]:
    """(the project's line, its function) for line ``index``; 4 lines per view."""
    view = index // 4
    app = APPS[view % len(APPS)]
    module = ("views", "services", "selectors", "serializers")[index % 4]
    return f"{app}/{module}.py:{20 + index}", f"{module}_{view}"


FRAMEWORK_LINES = (
    "",
    "django/db/models/query.py:1994",
    "django/db/models/sql/compiler.py:1622",
    "rest_framework/generics.py:85",
    "django/db/models/fields/related_descriptors.py:719",
)


def skewed(rng: random.Random, size: int, power: float = 1.5) -> int:
    return min(size - 1, int(size * rng.random() ** power))


def site_rows(shapes: Sequence[Shape], rng: random.Random) -> Iterator[tuple[Any, ...]]:
    for shape in shapes:
        count = rng.choices((1, 2, 3), weights=(5, 3, 2))[0]
        keys: set[tuple[int, int]] = set()
        while len(keys) < count:
            view = skewed(rng, VIEWS)
            keys.add((view, view * 4 + rng.randrange(4)))
        weights = [rng.random() + 0.1 for _ in keys]
        for (view, line), weight in zip(sorted(keys), weights, strict=True):
            share = weight / sum(weights)
            calls = max(1.0, round(shape.calls * share))
            sampled = max(1, round(calls * SAMPLE_RATE))
            mean = shape.mean_ms * rng.uniform(0.8, 1.2)
            where, function = callsite(line)
            yield (
                shape.id, view_name(view), where, function, rng.choice(FRAMEWORK_LINES),
                calls, sampled, calls * mean, shape.max_ms * rng.uniform(0.5, 1.0),
                shape.rows * share, histogram_json(rng, shape.p50_ms, sampled), mean,
                shape.p50_ms, shape.p95_ms, shape.p99_ms, shape.first_seen, shape.last_seen,
            )  # fmt: skip


SITE_COLUMNS = (
    "shape_id", "view", "callsite", "function", "framework", "calls", "sampled_calls",
    "total_ms", "max_ms", "rows", "histogram", "mean_ms", "p50_ms", "p95_ms", "p99_ms",
    "first_seen", "last_seen",
)  # fmt: skip
HOUR_COLUMNS = (
    "shape_id", "hour", "calls", "sampled_calls", "total_ms", "max_ms", "rows", "histogram",
    "mean_ms", "p50_ms", "p95_ms", "p99_ms", "first_seen", "last_seen",
)  # fmt: skip
SHAPE_COLUMNS = (
    "id", "alias", "fingerprint_id", "fingerprint", "sql", "params", "is_select",
    "nplusone_findings", "duplicate_findings", "queryid", "queryid_note", "calls",
    "sampled_calls", "total_ms", "max_ms", "rows", "histogram", "mean_ms", "p50_ms", "p95_ms",
    "p99_ms", "first_seen", "last_seen",
)  # fmt: skip
VIEW_COLUMNS = ("view", "calls", "total_ms", "first_seen", "last_seen")
SEARCH_COLUMNS = ("shape_id", "text")


def search_rows(shapes: Sequence[Shape]) -> Iterator[tuple[Any, ...]]:
    """What flushes write for the admin's search: the shape id and the names in its SQL."""
    from django_dbperf.stats.search import search_text

    for shape in shapes:
        yield shape.id, f"{shape.fingerprint_id} {search_text(shape.sql)}"


def view_rows(now: dt.datetime, days: int) -> Iterator[tuple[Any, ...]]:
    """The views' totals, as flushes keep them, summed from the (view, line) rows."""
    from django.db.models import Sum

    from django_dbperf.stats.models import QueryShapeSite

    sums = QueryShapeSite.objects.values("view").annotate(calls=Sum("calls"), total=Sum("total_ms"))
    for row in sums:
        yield row["view"], row["calls"], row["total"], now - dt.timedelta(days=days), now


FINDING_COLUMNS = (
    "kind", "fingerprint_id", "fingerprint", "callsite", "subject", "view", "suggestion",
    "occurrences", "queries", "total_ms", "first_seen", "last_seen",
)  # fmt: skip
PG_STATEMENT_COLUMNS = (
    "userid", "dbid", "queryid", "toplevel", "query", "calls", "total_ms", "rows",
    "shared_blks_hit", "shared_blks_read", "read_calls", "read_total_ms", "read_rows",
    "read_shared_blks_hit", "read_shared_blks_read", "first_seen", "last_seen",
)  # fmt: skip


def fingerprint_of(sql: str) -> str:
    return sql.replace("%s", "?")


def shape_rows(shapes: Sequence[Shape], rng: random.Random) -> Iterator[tuple[Any, ...]]:
    for shape in shapes:
        sampled = max(1, round(shape.calls * SAMPLE_RATE))
        nplusone = round(math.exp(rng.gauss(2, 1.5))) if rng.random() < 0.05 else 0
        duplicates = round(math.exp(rng.gauss(2, 1.5))) if rng.random() < 0.05 else 0
        note = ""
        if shape.queryid is None:
            note = "not a PostgreSQL alias" if shape.alias != "default" else "EXPLAIN not yet run"
        yield (
            shape.id, shape.alias, shape.fingerprint_id, fingerprint_of(shape.sql), shape.sql,
            None, shape.is_select, nplusone, duplicates, shape.queryid,
            note, shape.calls, sampled, shape.total_ms, shape.max_ms, shape.rows,
            histogram_json(rng, shape.p50_ms, sampled), shape.mean_ms, shape.p50_ms,
            shape.p95_ms, shape.p99_ms, shape.first_seen, shape.last_seen,
        )  # fmt: skip


def hour_rows(
    shapes: Sequence[Shape],
    dense: set[int],
    hours: Sequence[dt.datetime],
    sparse_hours: int,
    rng: random.Random,
) -> Iterator[tuple[Any, ...]]:
    # Hourly histograms are small and alike: a pool instead of 2M json.dumps.
    pool = [
        histogram_json(rng, math.exp(rng.gauss(0, 1.3)), rng.randint(1, 400)) for _ in range(997)
    ]
    minute, last_minute = dt.timedelta(minutes=1), dt.timedelta(minutes=59)
    indices = range(len(hours))
    for shape in shapes:
        if shape.id in dense:
            chosen: Sequence[int] = indices
        else:
            chosen = sorted(rng.sample(indices, min(sparse_hours, len(hours))))
        per_hour = shape.calls / len(chosen)
        for index in chosen:
            hour = hours[index]
            calls = max(1.0, round(per_hour * DIURNAL[hour.hour] * rng.uniform(0.6, 1.4)))
            mean = shape.mean_ms * rng.uniform(0.7, 1.3)
            p95 = shape.p95_ms * rng.uniform(0.7, 1.5)
            yield (
                shape.id, hour, calls, max(1, round(calls * SAMPLE_RATE)), calls * mean,
                p95 * rng.uniform(1.5, 5.0), calls * 3.0, pool[rng.randrange(len(pool))], mean,
                mean * 0.7, p95, p95 * 1.4, hour + minute, hour + last_minute,
            )  # fmt: skip


def finding_rows(
    shapes: Sequence[Shape], rng: random.Random, now: dt.datetime, days: int
) -> Iterator[tuple[Any, ...]]:
    keys: set[tuple[str, str, str, str, str]] = set()
    while len(keys) < FINDINGS:
        shape = shapes[skewed(rng, len(shapes), 2.0)]  # rather the busy shapes
        kind = "n_plus_one" if rng.random() < 0.6 else "duplicate"
        table = rng.choice(sorted(shape.tables))
        app, model = table.split("_", 1)
        relation = rng.choice(MODELS)
        subject = f"{app}.{model.title()}.{relation}" if kind == "n_plus_one" else ""
        view = skewed(rng, VIEWS)
        where, _ = callsite(view * 4 + rng.randrange(4))
        key = (kind, shape.fingerprint_id, where, subject, view_name(view))
        if key in keys:
            continue
        keys.add(key)
        if kind == "n_plus_one":
            suggestion = (
                f"Add .select_related('{relation}') (or .prefetch_related('{relation}_set')) "
                f"to the queryset that loads {app}.{model.title()} before the loop at {where}."
            )
        else:
            suggestion = (
                f"The same statement runs several times per request at {where}: reuse the result."
            )
        occurrences = max(1, round(math.exp(rng.gauss(3, 1.8))))
        queries = occurrences * rng.randint(3, 60)
        first_seen = now - dt.timedelta(days=days) * rng.random()
        last_seen = max(first_seen, now - dt.timedelta(hours=rng.expovariate(1 / 24)))
        yield (
            kind, shape.fingerprint_id, fingerprint_of(shape.sql), where, subject,
            view_name(view), suggestion, occurrences, queries, queries * shape.mean_ms,
            first_seen, last_seen,
        )  # fmt: skip


def pg_statement_rows(
    shapes: Sequence[Shape], rng: random.Random, now: dt.datetime, days: int
) -> Iterator[tuple[Any, ...]]:
    linked = [shape for shape in shapes if shape.queryid is not None]
    matching = rng.sample(linked, min(len(linked), PG_STATEMENTS // 2))
    used = {shape.queryid for shape in linked}
    others: list[Shape] = []
    while len(others) + len(matching) < PG_STATEMENTS:
        others.append(shapes[rng.randrange(len(shapes))])
    for number, shape in enumerate(matching + others):
        queryid = shape.queryid
        if number >= len(matching):  # issued by code never sampled: a queryid no shape has
            while queryid is None or queryid in used:
                queryid = rng.getrandbits(63) - 2**62
            used.add(queryid)
        counter = itertools.count(1)
        query = "".join(
            f"${next(counter)}" if part == "%s" else part
            for part in shape.sql.replace("%s", "\0%s\0").split("\0")
        )
        calls = max(1, round(math.exp(rng.gauss(7, 2.5))))
        total = calls * math.exp(rng.gauss(0, 1.3))
        rows = calls * rng.randint(0, 40)
        hit = calls * rng.randint(3, 200)
        read = int(hit * rng.uniform(0.0, 0.05))
        first_seen = now - dt.timedelta(days=days) * rng.random()
        last_seen = max(first_seen, now - dt.timedelta(hours=rng.expovariate(1 / 6)))
        yield (
            10, 16384, queryid, True, query, calls, total, rows, hit, read,
            calls, total, rows, hit, read, first_seen, last_seen,
        )  # fmt: skip


def write_rows(model: Any, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
    """COPY on PostgreSQL, executemany in batches on SQLite; returns the rows written."""
    from django.db import connection

    table = quote(model._meta.db_table)
    names = ", ".join(quote(name) for name in columns)
    written = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    written += 1
            return written
        statement = f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"
        iterator = iter(rows)
        while batch := [sqlite_row(row) for row in itertools.islice(iterator, 20_000)]:
            cursor.executemany(statement, batch)
            written += len(batch)
    return written


def sqlite_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Datetimes as Django stores them in SQLite (naive UTC text), booleans as integers."""
    return tuple(
        value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")
        if isinstance(value, dt.datetime)
        else value
        for value in row
    )


def store_tables() -> list[str]:
    """The tables of django_dbperf's models (not the admin pages' unmanaged stand-ins)."""
    from django.apps import apps

    return [
        model._meta.db_table
        for model in apps.get_app_config("django_dbperf").get_models()
        if model._meta.managed and not model._meta.proxy
    ]


def empty_tables() -> None:
    from django.core.management.color import no_style
    from django.db import connection

    connection.ops.execute_sql_flush(
        connection.ops.sql_flush(
            no_style(), store_tables(), reset_sequences=True, allow_cascade=True
        )
    )


@contextmanager
def indexes_built_after(model: Any) -> Iterator[None]:
    """PostgreSQL: the table's indexes, unique and foreign-key constraints (not its primary
    key) dropped for a bulk load and built again after it, from their own definitions: one
    sort per index and one join per foreign key instead of a B-tree insert and a deferred
    trigger per row. Inside the seeding transaction, so nothing is lost if the load fails."""
    from django.db import connection

    if connection.vendor != "postgresql":
        yield
        return
    table = quote(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('u', 'f') ORDER BY conname",
            [model._meta.db_table],
        )
        constraints = cursor.fetchall()
        for name, _ in constraints:
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {quote(name)}")
        cursor.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = %s::regclass AND NOT x.indisprimary ORDER BY i.relname",
            [model._meta.db_table],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {quote(name)}")
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            cursor.execute(definition)
        for name, definition in constraints:
            cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {quote(name)} {definition}")


def settle(vacuum: bool, progress: Any) -> str:
    """Fresh planner statistics (and, with ``vacuum``, the visibility map autovacuum would
    set after such a load); then wait for autovacuum workers to finish, so that none runs
    during the timings. Returns what was done."""
    from django.db import connection

    tables = [quote(table) for table in store_tables()]
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.execute("ANALYZE")
            return "ANALYZE"
        command = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
        progress(command)
        cursor.execute(f"{command} {', '.join(tables)}")
        deadline = time.monotonic() + 300
        waited = 0.0
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
            )
            if not cursor.fetchone()[0]:
                break
            if not waited:
                progress("waiting for autovacuum workers to finish")
            time.sleep(1.0)
            waited += 1.0
    return command + (f", then {waited:.0f} s waiting for autovacuum" if waited else "")


def seed(plan: Plan, vacuum: bool, progress: Any) -> Seeded:
    from django.core.management.color import no_style
    from django.db import connection, transaction

    from django_dbperf.stats.models import (
        FindingStat,
        PgStatement,
        QueryShape,
        QueryShapeHour,
        QueryShapeSearch,
        QueryShapeSite,
        ViewStat,
    )

    seeded = Seeded(plan)
    started = time.perf_counter()
    rng = random.Random(plan.seed)
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    hours = [now - dt.timedelta(hours=back) for back in range(plan.days * 24 - 1, -1, -1)]

    def phase(label: str, model: Any, columns: Sequence[str], rows: Iterable[Any]) -> None:
        progress(f"writing {label}")
        began = time.perf_counter()
        with indexes_built_after(model):
            written = write_rows(model, columns, rows)
        seeded.phases.append((label, written, time.perf_counter() - began))

    progress("generating shapes")
    shapes = generate_shapes(plan, rng, now)
    seeded.phases.append(("shapes generated (Python)", len(shapes), time.perf_counter() - started))
    by_total = sorted(shapes, key=lambda shape: shape.total_ms, reverse=True)
    dense = {shape.id for shape in by_total[: plan.dense_shapes]}
    empty_tables()
    with transaction.atomic():
        phase("query shapes", QueryShape, SHAPE_COLUMNS, shape_rows(shapes, rng))
        with connection.cursor() as cursor:
            for statement in connection.ops.sequence_reset_sql(no_style(), [QueryShape]):
                cursor.execute(statement)
        phase("(view, line) rows", QueryShapeSite, SITE_COLUMNS, site_rows(shapes, rng))
        phase(
            "hourly rows",
            QueryShapeHour,
            HOUR_COLUMNS,
            hour_rows(shapes, dense, hours, plan.sparse_hours, rng),
        )
        phase("findings", FindingStat, FINDING_COLUMNS, finding_rows(shapes, rng, now, plan.days))
        phase("search texts", QueryShapeSearch, SEARCH_COLUMNS, search_rows(shapes))
        views = list(view_rows(now, plan.days))  # read before the copy: one connection
        phase("views", ViewStat, VIEW_COLUMNS, views)
        phase(
            "pg_stat_statements rows",
            PgStatement,
            PG_STATEMENT_COLUMNS,
            pg_statement_rows(shapes, rng, now, plan.days),
        )
        began = time.perf_counter()
    seeded.phases.append(("commit", 0, time.perf_counter() - began))
    began = time.perf_counter()
    seeded.settled = settle(vacuum, progress)
    seeded.phases.append((seeded.settled, 0, time.perf_counter() - began))
    seeded.seconds = time.perf_counter() - started

    # The pages' parameters: the busiest shape, the busiest view, a table name to search.
    busiest = by_total[0]
    seeded.busiest_shape = busiest.id
    seeded.busiest_hours = QueryShapeHour.objects.filter(shape_id=busiest.id).count()
    from django.db.models import Count, Sum

    top_view = (
        QueryShapeSite.objects.values("view")
        .annotate(time=Sum("total_ms"), shapes=Count("shape_id", distinct=True))
        .order_by("-time")
        .first()
    )
    assert top_view is not None
    seeded.view, seeded.view_shapes = top_view["view"], top_view["shapes"]
    usage = Counter(table for shape in shapes for table in shape.tables)
    wanted = SEARCH_SHARE * len(shapes)
    seeded.search = min(TABLES, key=lambda table: (abs(usage[table] - wanted), table))
    seeded.search_shapes = sum(seeded.search.upper() in shape.sql.upper() for shape in shapes)
    seeded.counts = row_counts()
    lengths = sorted(len(shape.sql) for shape in shapes)
    seeded.notes = [
        f"{len(shapes):,} shapes over aliases "
        + ", ".join(f"{alias} {share:.0%}" for alias, share in ALIASES)
        + f"; SQL text {lengths[0]:,}-{lengths[-1]:,} characters "
        f"(median {statistics.median(lengths):,.0f}) over {len(TABLES)} tables; "
        f"{sum(s.is_select for s in shapes) / len(shapes):.0%} SELECT; "
        f"{sum(s.queryid is not None for s in shapes):,} with a queryid",
        f"(view, line) rows: 1-3 per shape over {VIEWS} views and {CALLSITES:,} lines",
        f"hourly rows over {plan.days} days ({len(hours)} hours up to {now:%Y-%m-%d %H}:00 UTC): "
        f"every hour for the {len(dense):,} busiest shapes by total time "
        f"({len(dense) * len(hours):,} rows), {plan.sparse_hours} random hours for each of "
        f"the other {len(shapes) - len(dense):,} "
        f"({(len(shapes) - len(dense)) * min(plan.sparse_hours, len(hours)):,} rows)",
        f"{FINDINGS:,} findings (60% N+1, 40% duplicates); {PG_STATEMENTS:,} pg_stat_statements "
        f"rows, {min(PG_STATEMENTS // 2, sum(s.queryid is not None for s in shapes)):,} of them "
        "with the queryid of a shape; no pg_stat_statements hours, no store counters",
    ]
    return seeded


def row_counts() -> dict[str, int]:
    from django.db import connection

    counts = {}
    with connection.cursor() as cursor:
        for table in store_tables():
            cursor.execute(f"SELECT COUNT(*) FROM {quote(table)}")
            counts[table] = int(cursor.fetchone()[0])
    return counts


def table_sizes() -> dict[str, str]:
    """PostgreSQL: each table's size on disk, with its indexes and TOAST."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, pg_size_pretty(pg_table_size(oid)), "
            "pg_size_pretty(pg_indexes_size(oid)) FROM pg_class "
            "WHERE relkind = 'r' AND relname LIKE 'django_dbperf_%%'"
        )
        return {name: f"table {table}, indexes {indexes}" for name, table, indexes in cursor}


# --------------------------------------------------------------------------------------------
# The pages.
# --------------------------------------------------------------------------------------------


@dataclass
class Page:
    name: str
    path: str
    queries: list[tuple[float, str]] = field(default_factory=list)  # (ms, sql) of one request
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def db_ms(self) -> float:
        return sum(ms for ms, _ in self.queries)

    @property
    def passed(self) -> bool:
        return self.median < TARGET_MS


def pages(seeded: Seeded) -> list[Page]:
    from django_dbperf.admin import QueryShapeAdmin

    columns = list(QueryShapeAdmin.list_display)
    mean, p95 = columns.index("mean_column"), columns.index("p95_column")
    # Page 100 (the admin counts pages from 1), or the last page of a smaller store.
    last = max(1, math.ceil(seeded.plan.shapes / QueryShapeAdmin.list_per_page))
    number = min(100, last)
    shapes = f"{ADMIN}/queryshape/"
    return [
        Page("dashboard", f"{ADMIN}/dashboard/"),
        Page("shapes: default order (total)", shapes),
        Page(f"shapes: by mean (o={mean})", f"{shapes}?o={mean}"),
        Page(f"shapes: by p95 (o={p95})", f"{shapes}?o={p95}"),
        Page("shapes: one view", f"{shapes}?{urlencode({'view': seeded.view})}"),
        Page("shapes: search", f"{shapes}?{urlencode({'q': seeded.search})}"),
        Page(f"shapes: page {number} (p={number})", f"{shapes}?p={number}"),
        Page("shape detail (busiest)", f"{shapes}{seeded.busiest_shape}/"),
        Page("findings", f"{ADMIN}/findingstat/"),
        Page("pg_stat_statements", f"{ADMIN}/pgstatement/"),
        Page("database health", f"{ADMIN}/databasehealth/"),
        Page("cached querysets", f"{ADMIN}/cachereport/"),
    ]


def get(client: Any, path: str) -> float:
    """Milliseconds for one request (after a collection, so none is owed from before)."""
    gc.collect()
    started = time.perf_counter()
    response = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{path}: status {response.status_code}")
    return elapsed


def measure(page: Page, client: Any, repeat: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    get(client, page.path)  # warm-up: templates compiled, caches filled
    with CaptureQueriesContext(connection) as captured:
        get(client, page.path)
    page.queries = [(float(query["time"]) * 1000, query["sql"]) for query in captured]
    page.samples = [get(client, page.path) for _ in range(repeat)]


def print_table(results: list[Page]) -> None:
    width = max(len(page.name) for page in results)
    header = (
        f"{'page':<{width}}  {'queries':>7}  {'DB ms':>7}  {'median ms':>9}  {'max ms':>8}  "
        f"{'< ' + format(TARGET_MS, 'g') + ' ms':>8}"
    )
    print(header)
    print("-" * len(header))
    for page in results:
        print(
            f"{page.name:<{width}}  {len(page.queries):>7}  {page.db_ms:>7.0f}  "
            f"{page.median:>9.1f}  {max(page.samples):>8.1f}  "
            f"{'PASS' if page.passed else 'FAIL':>8}"
        )


def explain(sql: str) -> str:
    from django.db import connection

    prefix = (
        "EXPLAIN (ANALYZE, BUFFERS) "
        if connection.vendor == "postgresql"
        else "EXPLAIN QUERY PLAN "
    )
    with connection.cursor() as cursor:
        cursor.execute(prefix + sql)
        return "\n".join(" | ".join(str(value) for value in row) for row in cursor.fetchall())


def diagnose(page: Page, top: int = 3, floor_ms: float = 20.0) -> None:
    """The page's slowest queries (at least the slowest one) with their plans."""
    slow = sorted(page.queries, key=lambda query: query[0], reverse=True)
    chosen = [query for query in slow[:top] if query[0] >= floor_ms] or slow[:1]
    print(
        f"\n=== {page.name}: {page.median:.0f} ms median, {len(page.queries)} queries, "
        f"{page.db_ms:.0f} ms in the database ({page.path})"
    )
    for ms, sql in chosen:
        shown = sql if len(sql) <= 1500 else sql[:1500] + " ..."
        print(f"\n--- {ms:.1f} ms: {shown}")
        if sql.lstrip().upper().startswith("SELECT"):
            print(explain(sql))


# --------------------------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------------------------


def database_now() -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_TIMESTAMP")
        return cursor.fetchone()[0]


def autovacuum_since(since: Any) -> str:
    """PostgreSQL: the tables autovacuum worked on since ``since``, and workers running now."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return ""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_stat_user_tables "
            "WHERE GREATEST(last_autovacuum, last_autoanalyze) >= %s ORDER BY relname",
            [since],
        )
        tables = [name for (name,) in cursor.fetchall()]
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
        )
        running = cursor.fetchone()[0]
    parts = [", ".join(tables)] if tables else []
    if running:
        parts.append(f"{running} worker(s) still running")
    return "; ".join(parts)


def describe_database() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
            cursor.execute("SHOW shared_buffers")
            buffers = cursor.fetchone()[0]
            cursor.execute("SHOW work_mem")
            work_mem = cursor.fetchone()[0]
            return f"PostgreSQL {version} (shared_buffers {buffers}, work_mem {work_mem})"
    import sqlite3

    return f"SQLite {sqlite3.sqlite_version} (temporary file)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--shapes", type=int, default=100_000, help="statement shapes (100,000)")
    parser.add_argument("--days", type=int, default=30, help="days of hourly history (30)")
    parser.add_argument(
        "--dense-shapes", type=int, default=2000, help="busiest shapes with every hour (2,000)"
    )
    parser.add_argument(
        "--sparse-hours", type=int, default=5, help="random hours for each other shape (5)"
    )
    parser.add_argument("--repeat", type=int, default=7, help="timed requests per page (7)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--no-vacuum",
        action="store_true",
        help="PostgreSQL: only ANALYZE after seeding, not VACUUM (ANALYZE)",
    )
    parser.add_argument("--keep", action="store_true", help="leave the seeded rows in place")
    parser.add_argument("--check", action="store_true", help="exit 1 when a page misses the target")
    args = parser.parse_args(argv)
    if min(args.shapes, args.days, args.repeat) < 1 or args.dense_shapes < 0:
        parser.error("--shapes, --days and --repeat must be at least 1")

    def progress(message: str) -> None:
        print(f"  ... {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="dbperf-admin-") as workdir:
        configure(args.db, workdir)
        import django
        from django.contrib.auth.models import User
        from django.core.management import call_command
        from django.test import Client

        call_command("migrate", verbosity=0, interactive=False)
        print(
            f"Python {platform.python_version()}, Django {django.get_version()}, "
            f"{describe_database()}, {platform.machine()}, {os.cpu_count()} CPUs"
        )
        plan = Plan(args.shapes, args.days, args.dense_shapes, args.sparse_hours, args.seed)
        seeded = seed(plan, not args.no_vacuum, progress)
        print(f"\nSeeded in {seeded.seconds:.1f} s (seed {args.seed}):")
        for label, rows, seconds in seeded.phases:
            written = f"{rows:>10,} rows" if rows else " " * 15
            print(f"  {label:<40} {written}  {seconds:6.1f} s")
        print("What was seeded:")
        for note in seeded.notes:
            print(f"  - {note}")
        sizes = table_sizes()
        print("\nRows per table:")
        for table, count in seeded.counts.items():
            size = f"  ({sizes[table]})" if table in sizes else ""
            print(f"  {table:<32} {count:>10,}{size}")
        print(
            f"\nPages' parameters: busiest shape id {seeded.busiest_shape} "
            f"({seeded.busiest_hours} hourly rows); view {seeded.view!r} "
            f"({seeded.view_shapes:,} shapes); search {seeded.search!r} "
            f"({seeded.search_shapes:,} shapes)"
        )

        user, _ = User.objects.update_or_create(
            username=USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        client = Client()
        client.force_login(user)
        results = pages(seeded)
        since = database_now()
        try:
            for page in results:
                progress(f"timing {page.name}")
                measure(page, client, args.repeat)
            print(
                f"\n{args.db}: {args.repeat} timed requests per page after one warm-up and one "
                "captured request, logged in as a superuser through the test Client; queries "
                "and DB ms are of the captured request (the session and user look-ups "
                "included).\n"
            )
            print_table(results)
            failed = [page for page in results if not page.passed]
            scope = "" if args.db == "postgres" else " (the target is set for PostgreSQL)"
            print(
                f"\n{len(results) - len(failed)} of {len(results)} pages under "
                f"{TARGET_MS:g} ms{scope}."
            )
            disturbed = autovacuum_since(since)
            if disturbed:
                print(f"\nNote: autovacuum ran during the timings: {disturbed}")
            for page in failed:
                diagnose(page)
        finally:
            if not args.keep:
                empty_tables()
                user.delete()
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
