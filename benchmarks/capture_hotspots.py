"""Where django_dbperf's per-query time goes: component costs, then a cProfile of the capture path.

Run from the repository root::

    .venv/bin/python benchmarks/capture_hotspots.py                # in-memory SQLite
    .venv/bin/python benchmarks/capture_hotspots.py --queries 20000 --top 40
    .venv/bin/python -m tests.servers -- .venv/bin/python benchmarks/capture_hotspots.py \\
        --db postgres

Part 1 (no profiler, so the numbers are real) has three sections:

1a. the benchmark app's 25-query mix from ``middleware_overhead.py``, run in request-sized
    units (50 queries) under several modes, interleaved (forwards, then backwards): cost per
    query of each mode over "no wrapper at all". A query of the mix takes ~190 us on the
    reference machine, so these differences carry +-1-2 us of noise; 1b and 1c are precise.
1b. each piece of the capture path timed on its own, at the moment a real ORM query runs
    (from an ``execute_wrapper`` in the position of django_dbperf's, so the call stack above
    is the real one): median nanoseconds per query.
1c. the per-request fixed costs: entering and leaving ``capture_queries()``, the analysis of
    the 50 captured queries of each view, the middleware's ``finish()``.

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
from harness import quantile

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
        ("idle wrapper", nullcontext, "installed, nothing captured"),
        ("floor", floor_wrapper, "idle + an execute_wrapper that counts and times"),
        ("recording()", recording_only, "the capture engine alone"),
        (
            "capture_queries() + findings",
            capture_with_findings,
            "engine + finding sources + analysis: the middleware minus headers/logging",
        ),
    ]


def measure_modes(rounds: int, calls: int) -> None:
    app = bench.define_app()
    modes = component_modes()
    samples: dict[str, list[float]] = {name: [] for name, _, _ in modes}
    for _ in range(3):  # warm-up
        for _name, mode, _ in modes:
            with mode():
                app.mixed(0)
                app.mixed(1)
    for number in range(rounds):
        # Forwards, then backwards: a drift during the round does not favour one mode.
        for name, mode, _ in modes if number % 2 == 0 else modes[::-1]:
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
        f"1a. cost per query over 'no wrapper' ({rounds} rounds x {calls * 2 * MIX} queries"
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
        iqr = f"{quantile(diffs, 0.25):+.2f}..{quantile(diffs, 0.75):+.2f}"
        print(f"{name:<{width}}  {statistics.median(diffs):>+8.2f}  {iqr:>13}  {what}")


def _probes() -> list[tuple[str, Callable[[str, Any, bool, Any], object]]]:
    """The pieces of the capture path, each callable as probe(sql, params, many, context)."""
    from django_dbperf.capture import recorder
    from django_dbperf.capture.callsite import Callsite

    # The functions the wrapper calls, as it sees them.
    inspect_stack, fingerprint = recorder.inspect_stack, recorder.fingerprint
    # probe() -> timed lambda -> inspect_stack: skip=2 starts the walk where the wrapper's does.
    probes: list[tuple[str, Callable[[str, Any, bool, Any], object]]] = [
        ("inspect_stack() (callsite walk)", lambda s, p, m, c: inspect_stack(skip=2)),
        ("inspect_stack() again (frames built)", lambda s, p, m, c: inspect_stack(skip=2)),
        ("Callsite(...) alone", lambda s, p, m, c: Callsite("views.py", 1, "view")),
        ("fingerprint(sql) (memoised)", lambda s, p, m, c: fingerprint(s)),
    ]
    active = getattr(recorder, "_active", None)
    ignoring = getattr(recorder, "_ignoring", None)
    if active is not None and ignoring is not None:
        probes.append(("2 ContextVar.get()", lambda s, p, m, c: (active.get(), ignoring.get())))
    ignored = getattr(recorder, "IGNORED_SQL", None)
    if ignored is not None:
        probes.append(("sql in IGNORED_SQL (hashes sql)", lambda s, p, m, c: s in ignored))
    lazy = getattr(recorder, "current_lazy_load", None)
    if lazy is not None:
        probes.append(("current_lazy_load()", lambda s, p, m, c: lazy()))
    probes.append(
        ("2 time.perf_counter()", lambda s, p, m, c: (time.perf_counter(), time.perf_counter()))
    )
    probes.append(("context['connection'].alias", lambda s, p, m, c: c["connection"].alias))
    record = recorder.QueryRecord
    try:
        record("SELECT 1", (), False, "default", 0.0, "SELECT ?", None, None, None)
    except TypeError:
        pass  # the signature changed: skip this probe
    else:
        probes.append(
            (
                "QueryRecord(...)",
                lambda s, p, m, c: record(s, p, m, "default", 0.0, s, None, None, None),
            )
        )
    return probes


def measure_pieces(repeats: int) -> None:
    """Median ns per query of each piece, timed inside a wrapper in dbperf's wrapper's place."""
    from django.db import connection

    app = bench.define_app()
    probes = _probes()
    timings: dict[str, list[int]] = {name: [] for name, _ in probes}
    clock = time.perf_counter_ns

    def probe(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        for name, piece in probes:
            started = clock()
            piece(sql, params, many, context)
            timings[name].append(clock() - started)
        return execute(sql, params, many, context)

    empty: list[int] = []
    for _ in range(2000):
        started = clock()
        empty.append(clock() - started)
    timer = statistics.median(empty)
    with no_dbperf_wrapper(), connection.execute_wrapper(probe):
        gc.disable()
        try:
            for number in range(repeats):
                app.mixed(number % 2)
                app.nplusone(None)
        finally:
            gc.enable()
    count = len(next(iter(timings.values())))
    print(
        f"\n1b. each piece of the capture path, timed inside an execute_wrapper during {count} "
        f"real ORM queries (median ns per query, timer overhead of {timer:.0f} ns removed)\n"
    )
    for name, values in timings.items():
        print(f"  {name:<40} {statistics.median(values) - timer:>7.0f} ns")


def _per_call_us(function: Callable[[], object], number: int = 300) -> float:
    function()
    started = time.perf_counter_ns()
    for _ in range(number):
        function()
    return (time.perf_counter_ns() - started) / number / 1000


def measure_request_costs() -> None:
    """The fixed costs of one captured request, beside its queries."""
    from django.http import HttpResponse
    from django.test import RequestFactory

    from django_dbperf import capture_queries
    from django_dbperf.analysis import analyse
    from django_dbperf.conf import get_config
    from django_dbperf.middleware import QueryCountMiddleware
    from django_dbperf.stats.buffer import Buffer

    app = bench.define_app()
    print("\n1c. per-request costs (us per request; 50 queries captured)\n")

    def empty_capture() -> None:
        with capture_queries():
            pass

    print(f"  {'capture_queries() enter + exit, empty':<48} {_per_call_us(empty_capture):7.1f}")
    middleware = QueryCountMiddleware(lambda request: HttpResponse("ok"))
    config = get_config()
    for view in (app.dashboard, app.nplusone):
        with capture_queries() as captured:
            view(None)
        records = captured.queries
        threshold = captured.threshold
        print(
            f"  {f'analyse(), /{view.__name__}/':<48} "
            f"{_per_call_us(lambda r=records, t=threshold: analyse(r, t)):7.1f}"
        )
        request = RequestFactory().get(f"/{view.__name__}/")

        def finished(c: Any = captured, r: Any = request) -> None:
            c.__dict__.pop("findings", None)  # as a fresh request: findings computed again
            middleware.finish(r, HttpResponse("ok"), c, config, 1.0, False)

        label = f"middleware finish() (incl. analysis), /{view.__name__}/"
        print(f"  {label:<48} {_per_call_us(finished):7.1f}")
        buffer = Buffer()  # the statistics store's buffer, as finish() fills the process's

        def recorded(
            q: Any = records, f: Any = captured.findings, b: Any = buffer, v: Any = view
        ) -> None:
            b.record(q, f, view=v.__name__, weight=1.0, max_shapes=5000)

        label = f"  of which statistics: record(), /{view.__name__}/"
        print(f"  {label:<48} {_per_call_us(recorded):7.1f}")


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
    parser.add_argument("--rounds", type=int, default=20, help="part 1a rounds")
    parser.add_argument("--calls", type=int, default=10, help="part 1a: 50-query units per round")
    parser.add_argument("--repeats", type=int, default=100, help="part 1b: runs of the views")
    parser.add_argument("--skip-components", action="store_true", help="profile only")
    args = parser.parse_args(argv)

    app = bench.setup(args.db)
    try:
        if not args.skip_components:
            print("Part 1: what the capture costs, without a profiler\n")
            measure_modes(args.rounds, args.calls)
            measure_pieces(args.repeats)
            measure_request_costs()
        profile(args.queries, args.top, args.view)
    finally:
        bench.drop_data(app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
