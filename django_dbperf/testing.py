"""Test assertions: ``DbPerfTestMixin`` for Django test cases; checks shared with the pytest plugin.

Failure messages follow ``assertNumQueries``: what was expected and what happened, then the
findings with their fixes, then the queries grouped by statement shape
(``django_dbperf.analysis.summary``). While an assertion captures, the middleware leaves the
findings the assertion prints to it (``reporting.reported_by_assertion``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from django.db import DEFAULT_DB_ALIAS, transaction

from django_dbperf.analysis import DUPLICATE, N_PLUS_ONE, Finding
from django_dbperf.analysis.summary import growth_notes, summarise
from django_dbperf.inspection import capture_queries
from django_dbperf.reporting import reported_by_assertion

Using = str | Iterable[str] | None


def describe(
    captured: capture_queries,
    findings: Sequence[Finding] | None = None,
    notes: Mapping[str, str] | None = None,
) -> str:
    """The findings, then the queries grouped by shape, then the total: for a failure message."""
    return summarise(captured.queries, captured.findings if findings is None else findings, notes)


def _queries(count: int) -> str:
    return "query" if count == 1 else "queries"


def max_queries_failure(captured: capture_queries, num: int) -> str | None:
    if len(captured) <= num:
        return None
    return f"{len(captured)} queries executed, at most {num} expected\n{describe(captured)}"


def nplusone_failure(captured: capture_queries) -> str | None:
    found = captured.n_plus_one
    if not found:
        return None
    return f"{len(found)} N+1 {_queries(len(found))} found\n{describe(captured, found)}"


def duplicates_failure(captured: capture_queries) -> str | None:
    found = captured.duplicates
    if not found:
        return None
    return f"{len(found)} duplicated {_queries(len(found))} found\n{describe(captured, found)}"


@dataclass(frozen=True)
class Check:
    """A failure message (or ``None``) for a captured block, and the findings it prints."""

    failure: Callable[[capture_queries], str | None]
    reports: frozenset[str] | None  # kinds of finding the message lists; None: every kind


def max_queries_check(num: int) -> Check:
    return Check(lambda captured: max_queries_failure(captured, num), reports=None)


NO_NPLUSONE = Check(nplusone_failure, reports=frozenset({N_PLUS_ONE}))
NO_DUPLICATES = Check(duplicates_failure, reports=frozenset({DUPLICATE}))


def _reported_kinds(checks: Sequence[Check]) -> frozenset[str] | None:
    if any(check.reports is None for check in checks):
        return None
    return frozenset().union(*(check.reports or () for check in checks))


def _aliases(using: Using) -> list[str]:
    if using is None:
        return [DEFAULT_DB_ALIAS]
    return [using] if isinstance(using, str) else list(using)


def count_per_size(
    func: Callable[[], Any], sizes: Sequence[int], setup: Callable[[int], Any], using: Using
) -> list[tuple[int, capture_queries]]:
    """Run ``setup(n)`` then ``func()`` for each size, each in a rolled-back transaction."""
    if len(sizes) < 2:
        raise ValueError("assertQueriesConstant needs at least two sizes, e.g. sizes=(2, 10).")
    results = []
    # growth_failure() prints every finding of the largest size.
    with reported_by_assertion():
        for size in sizes:
            with _rolled_back(_aliases(using)):
                setup(size)
                with capture_queries(using) as captured:
                    func()
            results.append((size, captured))
    return results


@contextmanager
def _rolled_back(aliases: list[str]) -> Iterator[None]:
    if not aliases:
        yield
        return
    with transaction.atomic(using=aliases[0]), _rolled_back(aliases[1:]):
        yield
        transaction.set_rollback(True, using=aliases[0])


def growth_failure(results: Sequence[tuple[int, capture_queries]]) -> str | None:
    counts = [len(captured) for _, captured in results]
    if len(set(counts)) == 1:
        return None
    sizes = ", ".join(f"{size} rows: {len(captured)} queries" for size, captured in results)
    size, largest = results[-1]
    notes = growth_notes([(size, captured.queries) for size, captured in results])
    return (
        f"The number of queries grows with the data ({sizes})\n"
        f"At {size} rows:\n{describe(largest, notes=notes)}"
    )


class checked_capture:
    """Capture the block, then ``fail(message)`` for the first check that finds something wrong.

    Meanwhile the findings the checks print are not also logged by the middleware. A block that
    raises is not checked: its own exception is the more useful report.
    """

    def __init__(
        self, checks: Check | Sequence[Check], using: Using, fail: Callable[[str], Any]
    ) -> None:
        self.checks = [checks] if isinstance(checks, Check) else list(checks)
        self.using = using
        self.fail = fail
        self._stack = ExitStack()

    def __enter__(self) -> capture_queries:
        with ExitStack() as stack:
            stack.enter_context(reported_by_assertion(_reported_kinds(self.checks)))
            self.captured = stack.enter_context(capture_queries(self.using))
            self._stack = stack.pop_all()
        return self.captured

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True  # pytest shows the failure at the test's own line
        self._stack.__exit__(exc_type, exc, traceback)
        if exc_type is not None:
            return
        for check in self.checks:
            message = check.failure(self.captured)
            if message:
                self.fail(message)
                return


class DbPerfTestMixin:
    """Assertions about queries for ``django.test.TestCase`` (and friends).

    ``using=None`` captures every database alias.
    """

    def _fail(self, message: str) -> None:
        __tracebackhide__ = True
        raise getattr(self, "failureException", AssertionError)(message)

    def _run_or_context(
        self,
        check: Check,
        using: Using,
        func: Callable[..., Any] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        __tracebackhide__ = True
        context = checked_capture(check, using, self._fail)
        if func is None:
            return context
        with context:
            func(*args, **kwargs)
        return None

    def assertMaxQueries(
        self, num: int, func: Callable[..., Any] | None = None, *args: Any, using: Using = None,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        """At most ``num`` queries; a context manager without ``func``."""
        __tracebackhide__ = True
        return self._run_or_context(max_queries_check(num), using, func, args, kwargs)

    def assertNoNPlusOne(
        self, func: Callable[..., Any] | None = None, *args: Any, using: Using = None,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        """No statement repeated per row (``DBPERF["NPLUSONE_THRESHOLD"]`` times or more)."""
        __tracebackhide__ = True
        return self._run_or_context(NO_NPLUSONE, using, func, args, kwargs)

    def assertNoDuplicateQueries(
        self, func: Callable[..., Any] | None = None, *args: Any, using: Using = None,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        """No query run twice with the same SQL and parameters."""
        __tracebackhide__ = True
        return self._run_or_context(NO_DUPLICATES, using, func, args, kwargs)

    def assertQueriesConstant(
        self,
        func: Callable[[], Any],
        sizes: Sequence[int] = (2, 10),
        setup: Callable[[int], Any] | None = None,
        using: Using = None,
    ) -> None:
        """``func()`` runs as many queries after ``setup(n)`` for every n in ``sizes``.

        The surest test that an N+1 is gone. Each size runs in a rolled-back transaction, so
        ``setup(n)`` starts from the same data every time.
        """
        __tracebackhide__ = True
        if setup is None:
            raise ValueError("assertQueriesConstant needs setup=, a callable that creates n rows.")
        message = growth_failure(count_per_size(func, sizes, setup, using))
        if message:
            self._fail(message)
