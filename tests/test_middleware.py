"""QueryCountMiddleware: counts and headers, N+1 modes, budgets, sampling, slow queries, async."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections
from django.test import AsyncClient, Client, override_settings

from django_dbperf import capture_queries
from django_dbperf.exceptions import NPlusOneError, NPlusOneWarning, QueryBudgetExceeded
from django_dbperf.middleware import QUERY_COUNT_HEADER
from tests import helpers
from tests.helpers import make_library
from tests.testapp import views

pytestmark = pytest.mark.django_db

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django_dbperf.middleware.QueryCountMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]


@pytest.fixture(autouse=True)
def with_middleware() -> Iterator[None]:
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        yield


@pytest.fixture
def library() -> None:
    make_library(authors=5, books_per_author=2)


def dbperf_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "django_dbperf"]


def test_headers_report_count_and_time(client: Client, library: None) -> None:
    response = client.get("/testapp/clean/")
    assert response.status_code == 200
    assert response[QUERY_COUNT_HEADER] == "1"
    timing = response["Server-Timing"]
    assert timing.startswith("db;dur=") and timing.endswith('desc="1 queries"')
    assert float(timing.split("dur=")[1].split(";")[0]) >= 0


def test_existing_server_timing_is_kept(client: Client) -> None:
    response = client.get("/testapp/timed/")
    assert response["Server-Timing"].startswith("app;dur=1.0, db;dur=")


@override_settings(DBPERF={"HEADERS": False})
def test_headers_can_be_turned_off(client: Client, library: None) -> None:
    response = client.get("/testapp/clean/")
    assert QUERY_COUNT_HEADER not in response and "Server-Timing" not in response


def test_n_plus_one_is_logged_once_per_finding(
    client: Client, library: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="django_dbperf"):
        response = client.get("/testapp/n-plus-one/")
    assert response.status_code == 200
    assert response[QUERY_COUNT_HEADER] == "11"
    (record,) = dbperf_records(caplog)
    assert "N+1 on testapp.Book.author: 10 queries" in record.getMessage()
    assert "GET /testapp/n-plus-one/ (n_plus_one)" in record.getMessage()
    details = record.dbperf  # type: ignore[attr-defined]
    assert details["relation"] == "testapp.Book.author"
    assert details["callsite"].startswith("tests/testapp/views.py:")
    assert 'select_related("author")' in details["suggestion"]


def test_clean_view_logs_nothing(
    client: Client, library: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="django_dbperf"):
        client.get("/testapp/clean/")
    assert dbperf_records(caplog) == []


@override_settings(DBPERF={"ON_NPLUSONE": "warn"})
def test_warn_mode_issues_a_warning(client: Client, library: None) -> None:
    with pytest.warns(NPlusOneWarning, match=re.escape("N+1 on testapp.Book.author")):
        client.get("/testapp/n-plus-one/")


@override_settings(DBPERF={"ON_NPLUSONE": "raise"})
def test_raise_mode_fails_the_request_with_findings_and_fixes(
    client: Client, library: None
) -> None:
    with pytest.raises(NPlusOneError) as error:
        client.get("/testapp/n-plus-one/")
    message = str(error.value)
    assert "1 database problem(s) in GET /testapp/n-plus-one/" in message
    assert 'fix: add .select_related("author") to the Book queryset' in message
    assert error.value.findings[0].relation == "testapp.Book.author"


@override_settings(DBPERF={"ON_NPLUSONE": "raise"})
def test_duplicates_are_findings_too(client: Client, library: None) -> None:
    with pytest.raises(NPlusOneError, match="Duplicate query: the same SQL and parameters ran 2"):
        client.get("/testapp/duplicates/")


@override_settings(DBPERF={"QUERY_BUDGET": 5})
def test_global_budget_is_logged_with_top_statements(
    client: Client, library: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="django_dbperf"):
        client.get("/testapp/n-plus-one/")
    messages = [record.getMessage() for record in dbperf_records(caplog)]
    over = [message for message in messages if message.startswith("Over query budget")]
    assert len(over) == 1
    assert "11 queries, budget 5" in over[0]
    assert '10x SELECT "testapp_author"' in over[0]


@override_settings(DBPERF={"QUERY_BUDGET": 0, "ON_NPLUSONE": "raise"})
def test_global_budget_raises_in_raise_mode(client: Client, library: None) -> None:
    with pytest.raises(QueryBudgetExceeded, match="Over query budget in GET /testapp/clean/"):
        client.get("/testapp/clean/")


def test_view_budget_replaces_the_global_one(client: Client, library: None) -> None:
    with override_settings(DBPERF={"QUERY_BUDGET": 1, "ON_NPLUSONE": "raise"}):
        response = client.get("/testapp/generous/")
    assert response.status_code == 200


@override_settings(DBPERF={"ON_NPLUSONE": "raise"})
def test_view_budget_decorator_raises_when_exceeded(client: Client, library: None) -> None:
    with pytest.raises(
        QueryBudgetExceeded, match=r"tests.testapp.views.budgeted: 3 queries, budget 2"
    ):
        client.get("/testapp/budgeted/")


@override_settings(DBPERF={"SAMPLE_RATE": 0.0})
def test_unsampled_requests_are_not_captured(
    client: Client, library: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="django_dbperf"):
        response = client.get("/testapp/n-plus-one/")
    assert QUERY_COUNT_HEADER not in response
    assert dbperf_records(caplog) == []


@override_settings(DBPERF={"SAMPLE_RATE": 0.5})
def test_sample_rate_captures_a_share_of_requests(client: Client) -> None:
    captured = sum(QUERY_COUNT_HEADER in client.get("/testapp/clean/") for _ in range(200))
    # Binomial(200, 0.5): outside 60..140 has a probability far below one in a billion.
    assert 60 <= captured <= 140


@override_settings(DBPERF={"SAMPLE_RATE": 0.0})
def test_requests_inside_a_capture_are_always_captured(client: Client, library: None) -> None:
    """A test's assertion sees the request's findings tagged with it (ignore rules by path)."""
    with capture_queries() as captured:
        response = client.get("/testapp/n-plus-one/")
    assert QUERY_COUNT_HEADER in response
    assert captured.queries and all(q.request is not None for q in captured.queries)
    assert {q.request.path for q in captured.queries if q.request} == {"/testapp/n-plus-one/"}


@override_settings(DBPERF={"ENABLED": False})
def test_disabled_means_nothing_is_captured(client: Client, library: None) -> None:
    assert QUERY_COUNT_HEADER not in client.get("/testapp/n-plus-one/")


@override_settings(DBPERF={"SLOW_QUERY_MS": 0, "QUERY_BUDGET": 0})
def test_middleware_runs_no_query_of_its_own(
    client: Client, library: None, django_assert_num_queries: Any
) -> None:
    # Every query counts as slow and the budget is blown: still only the view's one query.
    with django_assert_num_queries(1):
        response = client.get("/testapp/clean/")
    assert response[QUERY_COUNT_HEADER] == "1"


@pytest.mark.django_db(transaction=True)
def test_async_view_is_captured(caplog: pytest.LogCaptureFixture) -> None:
    make_library(authors=5, books_per_author=2)

    async def get() -> object:
        response = await AsyncClient().get("/testapp/async/")
        from asgiref.sync import sync_to_async

        await sync_to_async(connections.close_all)()
        return response

    with caplog.at_level(logging.WARNING, logger="django_dbperf"):
        response = asyncio.run(get())
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert response[QUERY_COUNT_HEADER] == "11"  # type: ignore[index]
    (record,) = dbperf_records(caplog)
    # The async ORM's worker thread does not reach the view: the line comes from its coroutine.
    assert "N+1 query on testapp.Author: 10 queries" in record.getMessage()
    assert f"from {helpers.line_of(views.__file__, 'async-n-plus-one')}" in (record.getMessage())


def test_debug_toolbar_still_sees_every_query(library: None) -> None:
    from debug_toolbar.toolbar import DebugToolbar

    toolbar_first = ["debug_toolbar.middleware.DebugToolbarMiddleware", *MIDDLEWARE]
    with override_settings(MIDDLEWARE=toolbar_first, DEBUG=True):
        response = Client().get("/testapp/html/")
    assert response[QUERY_COUNT_HEADER] == "11"
    request_id = re.search(r'data-request-id="(\w+)"', response.content.decode())
    assert request_id is not None
    toolbar = DebugToolbar.fetch(request_id[1], panel_id="SQLPanel")
    assert toolbar is not None
    stats = toolbar.get_panel_by_id("SQLPanel").get_stats()
    assert len(stats["queries"]) == 11


def test_a_failing_report_never_fails_the_request(
    client: Client, library: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from django_dbperf import middleware

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("analysis bug")

    monkeypatch.setattr(middleware, "report_findings", broken)
    response = client.get("/testapp/n-plus-one/")
    assert response.status_code == 200
    assert "could not report on a request" in caplog.text
