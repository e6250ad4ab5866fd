"""pytest plugin, registered through the ``pytest11`` entry point.

The ``dbperf`` fixture offers the checks of ``DbPerfTestMixin``; the marker
``@pytest.mark.dbperf(max_queries=N, nplusone="forbid", duplicates="forbid")`` applies them to
the whole test body (not to fixtures). Django is imported lazily, so the plugin never touches
settings before pytest-django configures them.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from django_dbperf.inspection import capture_queries
    from django_dbperf.testing import Check, Using

MARKER = "dbperf"
POLICIES = ("forbid", "allow")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(max_queries=None, nplusone='allow', duplicates='allow'): fail the test when "
        "its body runs more queries than max_queries, or N+1 / duplicate queries set to "
        "'forbid' (django_dbperf).",
    )


def _fail(message: str) -> None:
    pytest.fail(message, pytrace=False)


def _fail_marker(message: str) -> None:
    pytest.fail(f"[{MARKER} marker] {message}", pytrace=False)


class DbPerf:
    """The ``dbperf`` fixture: context managers that fail the test when their block misbehaves."""

    def _checked(self, check: Check, using: Using) -> Any:
        from django_dbperf.testing import checked_capture

        return checked_capture(check, using, _fail)

    def capture(self, using: Using = None) -> capture_queries:
        """Capture without asserting: read ``len()``, ``.queries`` and ``.findings`` after."""
        from django_dbperf.inspection import capture_queries

        return capture_queries(using)

    def max_queries(self, num: int, using: Using = None) -> Any:
        from django_dbperf.testing import max_queries_check

        return self._checked(max_queries_check(num), using)

    def no_nplusone(self, using: Using = None) -> Any:
        from django_dbperf.testing import NO_NPLUSONE

        return self._checked(NO_NPLUSONE, using)

    def no_duplicates(self, using: Using = None) -> Any:
        from django_dbperf.testing import NO_DUPLICATES

        return self._checked(NO_DUPLICATES, using)

    def queries_constant(
        self,
        func: Callable[[], Any],
        setup: Callable[[int], Any],
        sizes: Sequence[int] = (2, 10),
        using: Using = None,
    ) -> None:
        """Fail if ``func()`` runs more queries after ``setup(n)`` as n grows."""
        from django_dbperf.testing import count_per_size, growth_failure

        message = growth_failure(count_per_size(func, sizes, setup, using))
        if message:
            _fail(message)


@pytest.fixture
def dbperf() -> DbPerf:
    """Query assertions: ``with dbperf.max_queries(3): ...``, ``dbperf.no_nplusone()`` ..."""
    return DbPerf()


def _marker_checks(marker: pytest.Mark) -> list[Check]:
    from django_dbperf.testing import NO_DUPLICATES, NO_NPLUSONE, max_queries_check

    unknown = set(marker.kwargs) - {"max_queries", "nplusone", "duplicates", "using"}
    if marker.args or unknown:
        raise pytest.UsageError(
            f"@pytest.mark.{MARKER} takes keyword arguments max_queries, nplusone, duplicates "
            f"and using; got {list(marker.args) + sorted(unknown)}."
        )
    checks: list[Check] = []
    limit = marker.kwargs.get("max_queries")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise pytest.UsageError(f"max_queries must be a whole number >= 0, not {limit!r}.")
        checks.append(max_queries_check(limit))
    for name, check in (("nplusone", NO_NPLUSONE), ("duplicates", NO_DUPLICATES)):
        policy = marker.kwargs.get(name, "allow")
        if policy not in POLICIES:
            raise pytest.UsageError(f"{name}= must be 'forbid' or 'allow', not {policy!r}.")
        if policy == "forbid":
            checks.append(check)
    return checks


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return (yield)
    checks = _marker_checks(marker)
    from django_dbperf.testing import checked_capture

    with checked_capture(checks, marker.kwargs.get("using"), _fail_marker):
        result = yield
    return result
