"""Where django_dbperf's per-query time goes: component costs, then a cProfile of the capture path.

Run from the repository root::

    .venv/bin/python benchmarks/capture_hotspots.py                # in-memory SQLite
    .venv/bin/python benchmarks/capture_hotspots.py --queries 20000 --top 40
    .venv/bin/python -m tests.servers -- .venv/bin/python benchmarks/capture_hotspots.py \\
        --db postgres

Part 1 (no profiler, so the numbers are real) runs the benchmark app's 25-query mix from
``middleware_overhead.py`` under several modes, interleaved, and reports the cost per query
of each mode over "no wrapper at all". Modes that switch off one component of the capture
(the callsite walk, the fingerprint) replace that function in this process only, so the
difference is what that component costs with Django's real call stacks above it.

Part 2 profiles requests through ``QueryCountMiddleware`` (SAMPLE_RATE=1) until 10,000 queries
have run, and the same requests without it, and prints the functions that take the time:
first django_dbperf's own, then everything. cProfile inflates small functions, so read
part 2 for *where* and part 1 for *how much*.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import middleware_overhead as bench

MIX = 25  # queries per call of the app's mixed() view body


# --------------------------------------------------------------------------------------------
# Part 1: component costs, without a profiler.
# --------------------------------------------------------------------------------------------


@contextmanager
def no_dbperf_wrapper() -> Iterator[None]:
    bench.remove_dbperf_wrapper()
    try:
        yield
    finally:
        bench.restore_dbperf_wrapper()


@contextmanager
def floor_wrapper() -> Iterator[None]:
    from django.db import connection

    with connection.execute_wrapper(bench.CountingWrapper()):
        yield


@contextmanager
def replaced(module: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


@contextmanager
def recording_without(*names: str) -> Iterator[None]:
    """``recording()`` with some of the recorder's helpers replaced by trivial ones."""
    from django_dbperf.capture import recorder

    stubs: dict[str, Any] = {
        "inspect_stack": lambda skip=1: (None, None, None),
        "fingerprint": lambda sql: sql,
    }
    with (
        replaced(recorder, names[0], stubs[names[0]]) if names else nullcontext(),
        recorder.recording(),
    ):
        yield


@contextmanager
def recording_only() -> Iterator[None]:
    from django_dbperf.capture import recording

    with recording():
        yield


@contextmanager
def capture_with_findings() -> Iterator[None]:
    from django_dbperf import capture_queries

    with capture_queries() as captured:
        yield
    captured.findings  # noqa: B018  (the analysis runs on first access)


Mode = Callable[[], AbstractContextManager[None]]


def component_modes() -> list[tuple[str, Mode, str]]:
    return [
        ("no wrapper", no_dbperf_wrapper, "django_dbperf not installed"),
        ("idle wrapper", nullcontext, "installed, nothing captured: one ContextVar.get()"),
        ("floor", floor_wrapper, "an execute_wrapper that counts and times"),
        ("recording()", recording_only, "capture engine: timing, callsite, fingerprint, record"),
        (
            "recording(), no callsite",
            lambda: recording_without("inspect_stack"),
            "inspect_stack() replaced by a stub",
        ),
        (
            "recording(), no fingerprint",
            lambda: recording_without("fingerprint"),
            "fingerprint() replaced by a stub",
        ),
        (
            "capture_queries() + findings",
            capture_with_findings,
            "engine + finding sources + analysis, as one request of the middleware",
        ),
    ]


def measure_components(rounds: int, calls: int) -> None:
    app = bench.define_app()
    modes = component_modes()
    samples: dict[str, list[float]] = {name: [] for name, _, _ in modes}
    for _ in range(3):  # warm-up
        for _name, mode, _ in modes:
            with mode():
                app.mixed(0)
                app.mixed(1)
    for _ in range(rounds):
        for name, mode, _ in modes:
            gc.collect()
            gc.disable()
            started = time.perf_counter_ns()
            for call in range(calls):
                # One block per request-sized unit (50 queries), as the middleware would.
                with mode():
                    app.mixed(call % 2)
                    app.mixed(1 - call % 2)
            elapsed = time.perf_counter_ns() - started
            gc.enable()
            samples[name].append(elapsed / (calls * 2 * MIX))
    base = samples["no wrapper"]
    print(
        f"Part 1: cost per query over 'no wrapper' ({rounds} rounds x {calls * 2 * MIX} queries"
        f" per mode, medians of per-round differences; a query here takes "
        f"{statistics.median(base) / 1000:.1f} us)\n"
    )
    width = max(len(name) for name, _, _ in modes)
    print(f"{'mode':<{width}}  {'us/query':>8}  {'IQR':>13}  what")
    for name, _, what in modes:
        diffs = [(v - b) / 1000 for v, b in zip(samples[name], base, strict=True)]
        if name == "no wrapper":
            print(f"{name:<{width}}  {'base':>8}  {'':>13}  {what}")
            continue
        iqr = f"{bench.quantile(diffs, 0.25):+.2f}..{bench.quantile(diffs, 0.75):+.2f}"
        print(f"{name:<{width}}  {statistics.median(diffs):>+8.2f}  {iqr:>13}  {what}")
    record = statistics.median(samples["recording()"])
    for label, name in (
        ("callsite walk (inspect_stack)", "recording(), no callsite"),
        ("fingerprint()", "recording(), no fingerprint"),
    ):
        cost = statistics.median(
            [(r - v) / 1000 for r, v in zip(samples["recording()"], samples[name], strict=True)]
        )
        share = cost / ((record - statistics.median(base)) / 1000) * 100
        print(f"  => {label}: {cost:+.2f} us/query ({share:.0f}% of recording()'s cost)")


# --------------------------------------------------------------------------------------------
# Part 2: cProfile.
# --------------------------------------------------------------------------------------------


def profile_requests(variant: Any, requests: int) -> tuple[pstats.Stats, float]:
    for _ in range(20):
        bench.request(variant)
    profiler = cProfile.Profile()
    gc.collect()
    gc.disable()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(requests):
        variant.handler(dict(variant.environ), bench._start_response).close()
    profiler.disable()
    elapsed = time.perf_counter() - started
    gc.enable()
    return pstats.Stats(profiler), elapsed


def short(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def print_functions(stats: pstats.Stats, queries: int, top: int, only: str | None) -> None:
    rows = []
    for (filename, line, function), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        if only is not None and only not in filename:
            continue
        rows.append((tottime, cumtime, calls, f"{short(filename)}:{line}({function})"))
    rows.sort(reverse=True)
    print(f"{'calls':>8}  {'self us/q':>9}  {'incl us/q':>9}  function")
    for tottime, cumtime, calls, where in rows[:top]:
        own, total = tottime / queries * 1e6, cumtime / queries * 1e6
        print(f"{calls:>8}  {own:>9.2f}  {total:>9.2f}  {where}")


def profile(queries: int, top: int, view: str) -> None:
    names = {"bare", "dbperf full (SAMPLE_RATE=1)"}
    if view == "nplusone":
        names = {"bare, N+1 view", "dbperf full, N+1 view"}
    variants, _ = bench.make_variants(names)
    by_name = {variant.name: variant for variant in variants}
    bare_name, full_name = sorted(names)  # "bare..." sorts before "dbperf..."
    bare, full = by_name[bare_name], by_name[full_name]
    requests = max(1, queries // bench.QUERIES_PER_REQUEST)
    queries = requests * bench.QUERIES_PER_REQUEST
    full_stats, full_seconds = profile_requests(full, requests)
    _, bare_seconds = profile_requests(bare, requests)
    extra = (full_seconds - bare_seconds) / queries * 1e6
    print(
        f"\nPart 2: cProfile of {requests} requests to /{view}/ ({queries} queries) through "
        f"QueryCountMiddleware: {full_seconds:.2f}s; without it {bare_seconds:.2f}s; "
        f"difference {extra:+.1f} us/query under the profiler\n"
    )
    print("django_dbperf functions, by self time (us per query; incl = with callees):")
    print_functions(full_stats, queries, top, only="django_dbperf")
    print(f"\nAll functions, by self time, with QueryCountMiddleware (top {top}):")
    print_functions(full_stats, queries, top, only=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--queries", type=int, default=10_000, help="queries to profile")
    parser.add_argument("--top", type=int, default=25, help="rows per profile table")
    parser.add_argument("--view", choices=("dashboard", "nplusone"), default="dashboard")
    parser.add_argument("--rounds", type=int, default=15, help="part 1 rounds")
    parser.add_argument("--calls", type=int, default=10, help="part 1: 50-query units per round")
    parser.add_argument("--skip-components", action="store_true", help="profile only")
    args = parser.parse_args(argv)

    app = bench.setup(args.db)
    try:
        if not args.skip_components:
            measure_components(args.rounds, args.calls)
        profile(args.queries, args.top, args.view)
    finally:
        bench.drop_data(app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
