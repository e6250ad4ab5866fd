"""``capture_queries()``: capture and analysis composed, for users, tests and the middleware."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack
from functools import cached_property
from types import TracebackType
from typing import Any, Protocol

from django_dbperf.analysis import DUPLICATE, N_PLUS_ONE, Finding, analyse
from django_dbperf.analysis.ignore import drop_ignored, without_ignored
from django_dbperf.capture import QueryRecord, Recorder, recording
from django_dbperf.conf import get_config


class FindingSource(Protocol):
    """Something beside the SQL capture that reports findings (e.g. the nplusone integration).

    Entered and exited with each capture; ``findings()`` is read after the exit.
    """

    def findings(self) -> list[Finding]: ...


# Factories of finding sources that every capture enters; integrations register here in ready().
FINDING_SOURCES: list[Callable[[], AbstractContextManager[FindingSource]]] = []


def _aliases(using: str | Iterable[str] | None) -> frozenset[str] | None:
    if using is None:
        return None
    return frozenset([using] if isinstance(using, str) else using)


class capture_queries:
    """Capture every query run inside the block, and say what is wrong with them.

    Shaped like Django's ``CaptureQueriesContext``: ``len()``, iteration and ``.queries``
    (``QueryRecord`` objects with ``sql``, ``params``, ``duration``, ``alias``, ``callsite``,
    ``fingerprint``), plus ``.findings``, ``.total_ms`` and ``.captured_queries`` (Django's
    ``{"sql", "time"}`` dicts). ``using=None`` captures every database alias. Nested captures
    each see their own queries; an outer capture also sees the inner one's.
    """

    def __init__(
        self, using: str | Iterable[str] | None = None, *, threshold: int | None = None
    ) -> None:
        self.using = _aliases(using)
        self._threshold = threshold
        self._recorder: Recorder | None = None
        self._sources: list[FindingSource] = []
        self._stack = ExitStack()

    def __enter__(self) -> capture_queries:
        self._recorder = self._stack.enter_context(recording(self.using))
        self._sources = [self._stack.enter_context(factory()) for factory in FINDING_SOURCES]
        self.__dict__.pop("findings", None)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.close()
        self.__dict__.pop("findings", None)  # read inside the block, it saw only part of it

    @property
    def queries(self) -> list[QueryRecord]:
        return self._recorder.records if self._recorder else []

    def __len__(self) -> int:
        return len(self.queries)

    def __iter__(self) -> Iterator[QueryRecord]:
        return iter(self.queries)

    def __getitem__(self, index: int) -> QueryRecord:
        return self.queries[index]

    @property
    def total_ms(self) -> float:
        return sum(query.duration for query in self.queries) * 1000

    @property
    def captured_queries(self) -> list[dict[str, Any]]:
        return [{"sql": q.sql, "time": f"{q.duration:.3f}"} for q in self.queries]

    @property
    def threshold(self) -> int:
        return self._threshold or int(get_config()["NPLUSONE_THRESHOLD"])

    @cached_property
    def findings(self) -> list[Finding]:
        """N+1 and duplicate findings, most expensive first. Computed once, on first use.

        Queries run inside ``ignore_queries()`` are left out, and findings that a
        ``DBPERF["IGNORE"]`` rule matches are dropped; counts and ``queries`` keep them all.
        """
        found = analyse(without_ignored(self.queries), self.threshold)
        found += [finding for source in self._sources for finding in source.findings()]
        found = drop_ignored(found, self.queries)
        return sorted(found, key=lambda finding: (-finding.count, -finding.total_ms))

    @property
    def n_plus_one(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.kind == N_PLUS_ONE]

    @property
    def duplicates(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.kind == DUPLICATE]
