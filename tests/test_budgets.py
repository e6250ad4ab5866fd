"""query_budget as a context manager and on plain and async functions, without the middleware."""

from __future__ import annotations

import asyncio
import logging

import pytest
from django.test import override_settings

from django_dbperf import query_budget
from django_dbperf.exceptions import QueryBudgetExceeded
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.django_db


def over_budget_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Over query")]


def test_within_budget_is_silent(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="django_dbperf"), query_budget(max_queries=2):
        Author.objects.count()
        Book.objects.count()
    assert over_budget_logs(caplog) == []


def test_over_budget_block_is_logged_with_its_top_statements(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logged = caplog.at_level(logging.WARNING, logger="django_dbperf")
    with logged, query_budget(max_queries=2) as captured:
        for _ in range(3):
            Author.objects.count()
    assert len(captured) == 3
    (message,) = over_budget_logs(caplog)
    assert "Over query budget in a query_budget block: 3 queries, budget 2." in message
    assert '3x SELECT COUNT(*) AS "__count" FROM "testapp_author"' in message


@override_settings(DBPERF={"ON_NPLUSONE": "raise"})
def test_duplicates_budget_raises_in_raise_mode() -> None:
    raises = pytest.raises(QueryBudgetExceeded, match="2 duplicate queries, budget 1")
    with raises, query_budget(max_duplicates=1):
        Author.objects.filter(name="x").count()
        Author.objects.filter(name="x").count()
        Author.objects.filter(name="x").count()


@override_settings(DBPERF={"ON_NPLUSONE": "raise"})
def test_decorated_function_names_itself() -> None:
    @query_budget(max_queries=0)
    def count_authors() -> int:
        return Author.objects.count()

    with pytest.raises(QueryBudgetExceeded, match=r"in tests\.test_budgets\..*count_authors: 1"):
        count_authors()


@override_settings(DBPERF={"ON_NPLUSONE": "raise"})
@pytest.mark.django_db(transaction=True)
def test_decorated_coroutine_is_checked() -> None:
    @query_budget(max_queries=0)
    async def count_authors() -> int:
        return await Author.objects.acount()

    async def run() -> None:
        from asgiref.sync import sync_to_async
        from django.db import connections

        try:
            await count_authors()
        finally:
            await sync_to_async(connections.close_all)()

    with pytest.raises(QueryBudgetExceeded, match="1 queries, budget 0"):
        asyncio.run(run())


def test_an_exception_inside_the_block_is_not_hidden() -> None:
    with pytest.raises(ZeroDivisionError), query_budget(max_queries=0):
        Author.objects.count()
        1 / 0  # noqa: B018


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs max_queries, max_duplicates or both"),
        ({"max_queries": -1}, r"max_queries=\.\.\.\) must be a whole number >= 0, not -1"),
        ({"max_duplicates": "3"}, "not '3'"),
        ({"max_queries": True}, "not True"),
    ],
)
def test_bad_limits_are_clear_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        query_budget(**kwargs)  # type: ignore[arg-type]
