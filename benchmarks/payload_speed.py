"""The cache payload format against pickle, on cache_hits.py's page: 20 books with their authors.

Run from the repository root::

    .venv/bin/python benchmarks/payload_speed.py
    .venv/bin/python benchmarks/payload_speed.py --rounds 40 --batch 500

The script configures Django itself: in-memory SQLite and a tiny in-file app with the models of
``cache_hits.py`` (``Author``; ``Book`` with a foreign key to it), so the page is the same 20
books with ``select_related("author")`` that a cached hit returns there.

Variants, interleaved: each round times a batch of every variant in a shuffled order, with the
garbage collector off. Each call is timed on its own and its result released outside the clock
(a page frees its result either way, and the cost is the same for both formats). Reported per
variant: the median over rounds of the mean time per call, and the median of the per-round
ratios to pickle (``pickle.dumps``/``pickle.loads`` with the highest protocol, what a
hand-written ``cache.set``/``cache.get`` of the list costs in django-redis).
"""

from __future__ import annotations

import argparse
import gc
import pickle
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import author_book_models, quantile, register_app_module

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # django_dbperf, run from anywhere

APP_LABEL = "dbperf_payloadbench"
PAGE_SIZE = 20


def configure() -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="dbperf-benchmark",
        USE_TZ=True,
        TIME_ZONE="UTC",
        INSTALLED_APPS=["django.contrib.contenttypes", register_app_module(APP_LABEL, HERE)],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        LOGGING_CONFIG=None,
    )
    django.setup()


def make_page() -> list[Any]:
    """Create the tables and rows; return the page as the ORM builds it."""
    from django.db import connection

    Author, Book = author_book_models(APP_LABEL)

    with connection.schema_editor() as editor:
        editor.create_model(Author)
        editor.create_model(Book)
    authors = Author.objects.bulk_create(
        Author(pk=k, name=f"Author {k}", email=f"author{k}@example.com") for k in range(1, 6)
    )
    Book.objects.bulk_create(
        Book(pk=i, title=f"Book {i}", author=authors[(i - 1) // 4], year=1990 + i, pages=100 + i)
        for i in range(1, PAGE_SIZE + 1)
    )
    return list(Book.objects.select_related("author").order_by("pk"))


def check_round_trip(page: list[Any], loads: Callable[[bytes], Any], blob: bytes) -> None:
    def described(books: list[Any]) -> list[tuple[Any, ...]]:
        cached = [book._state.fields_cache["author"] for book in books]  # no query
        return [
            (type(b), b.pk, b.title, b.year, b.pages, b.author_id, b._state.db, a.pk, a.name)
            for b, a in zip(books, cached, strict=True)
        ]

    assert described(loads(blob)) == described(page)


def timed(op: Callable[[], object], count: int) -> float:
    """Mean nanoseconds per call over ``count`` calls, each timed on its own."""
    clock = time.perf_counter_ns
    total = 0
    gc.collect()
    gc.disable()
    try:
        for _ in range(count):
            started = clock()
            result = op()
            total += clock() - started
            del result  # freed outside the clock
    finally:
        gc.enable()
    return total / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=25, help="interleaved rounds (25)")
    parser.add_argument("--batch", type=int, default=300, help="calls per variant per round")
    args = parser.parse_args(argv)

    configure()
    import django

    from django_dbperf.cache import payload

    page = make_page()
    pickled = pickle.dumps(page, protocol=pickle.HIGHEST_PROTOCOL)
    lean = payload.dumps(page)
    check_round_trip(page, pickle.loads, pickled)
    check_round_trip(page, payload.loads, lean)

    variants: dict[str, Callable[[], object]] = {
        "dumps: pickle": lambda: pickle.dumps(page, protocol=pickle.HIGHEST_PROTOCOL),
        "dumps: payload": lambda: payload.dumps(page),
        "loads: pickle": lambda: pickle.loads(pickled),
        "loads: payload": lambda: payload.loads(lean),
    }
    baselines = {"dumps: payload": "dumps: pickle", "loads: payload": "loads: pickle"}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for op in variants.values():
        timed(op, args.batch)  # warm up
    order = list(variants)
    shuffler = random.Random(20260101)
    for number in range(args.rounds):
        shuffler.shuffle(order)
        for name in order:
            samples[name].append(timed(variants[name], args.batch))
        print(f"\r  round {number + 1}/{args.rounds}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    print(
        f"Django {django.get_version()}, Python {platform.python_version()}, "
        f"{PAGE_SIZE} books with select_related('author'), {args.rounds} rounds x "
        f"{args.batch} calls"
    )
    print(f"{'variant':<16} {'us/call':>9} {'ratio':>7} {'(p25-p75)':>13}")
    for name, values in samples.items():
        line = f"{name:<16} {statistics.median(values) / 1000:9.1f}"
        if name in baselines:
            base = samples[baselines[name]]
            ratios = [value / other for value, other in zip(values, base, strict=True)]
            spread = f"({quantile(ratios, 0.25):.2f}-{quantile(ratios, 0.75):.2f})"
            line += f" {statistics.median(ratios):6.2f}x {spread:>13}"
        print(line)
    print(f"{'size: pickle':<16} {len(pickled):9,} bytes")
    print(f"{'size: payload':<16} {len(lean):9,} bytes ({len(lean) / len(pickled):.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
