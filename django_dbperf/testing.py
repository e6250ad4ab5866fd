"""Test assertions: ``DbPerfTestMixin`` for Django test cases; checks shared with the pytest plugin.

Failure messages follow ``assertNumQueries``: what was expected, what happened, then the numbered
queries (with the line that ran each) and the findings with their fixes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import DEFAULT_DB_ALIAS, transaction

from django_dbperf.analysis import Finding
from django_dbperf.inspection import capture_queries

Using = str | Iterable[str] | None
MAX_LISTED_QUERIES = 50


def describe(captured: capture_queries, findings: Sequence[Finding] | None = None) -> str:
    """The numbered queries and the findings, for a failure message."""
    lines = ["Captured queries were:"]
    for number, query in enumerate(captured.queries[:MAX_LISTED_QUERIES], 1):
        where = f"  ({query.callsite})" if query.callsite else ""
        lines.append(f"{number}. {query.sql}{where}")
    if len(captured) > MAX_LISTED_QUERIES:
        lines.append(f"... and {len(captured) - MAX_LISTED_QUERIES} more")
    findings = captured.findings if findings is None else findings
    if findings:
        lines.append("Findings:")
        lines += [f"{number}. {finding}" for number, finding in enumerate(findings, 1)]
    return "\n".join(lines)


def max_queries_failure(captured: capture_queries, num: int) -> str | None:
    if len(captured) <= num:
        return None
    return f"{len(captured)} queries executed, at most {num} expected\n{describe(captured)}"


def nplusone_failure(captured: capture_queries) -> str | None:
    found = captured.n_plus_one
    if not found:
        return None
    return f"{len(found)} N+1 quer{'y' if len(found) == 1 else 'ies'} found\n" + describe(
        captured, found
    )


def duplicates_failure(captured: capture_queries) -> str | None:
    found = captured.duplicates
    if not found:
        return None
    return f"{len(found)} duplicated quer{'y' if len(found) == 1 else 'ies'} found\n" + describe(
        captured, found
    )


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
    return f"The number of queries grows with the data ({sizes})\nAt {size}:\n{describe(largest)}"


Check = Callable[[capture_queries], str | None]


@contextmanager
def checked_capture(
    check: Check, using: Using, fail: Callable[[str], Any]
) -> Iterator[capture_queries]:
    """Capture the block, then ``fail(message)`` if ``check`` finds something wrong."""
    with capture_queries(using) as captured:
        yield captured
    message = check(captured)
    if message:
        fail(message)


class DbPerfTestMixin:
    """Assertions about queries for ``django.test.TestCase`` (and friends).

    ``using=None`` captures every database alias.
    """

    def _fail(self, message: str) -> None:
        raise getattr(self, "failureException", AssertionError)(message)

    def _run_or_context(
        self,
        check: Check,
        using: Using,
        func: Callable[..., Any] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
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
        return self._run_or_context(
            lambda captured: max_queries_failure(captured, num), using, func, args, kwargs
        )

    def assertNoNPlusOne(
        self, func: Callable[..., Any] | None = None, *args: Any, using: Using = None,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        """No statement repeated per row (``DBPERF["NPLUSONE_THRESHOLD"]`` times or more)."""
        return self._run_or_context(nplusone_failure, using, func, args, kwargs)

    def assertNoDuplicateQueries(
        self, func: Callable[..., Any] | None = None, *args: Any, using: Using = None,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        """No query run twice with the same SQL and parameters."""
        return self._run_or_context(duplicates_failure, using, func, args, kwargs)

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
        if setup is None:
            raise ValueError("assertQueriesConstant needs setup=, a callable that creates n rows.")
        message = growth_failure(count_per_size(func, sizes, setup, using))
        if message:
            self._fail(message)
