"""The django-debug-toolbar panel, through the toolbar's own request flow: a page requested with
the toolbar shown, its stats fetched from the toolbar's store, its content rendered by the
toolbar's ``render_panel`` view (as the browser asks for it)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from debug_toolbar.settings import PANELS_DEFAULTS
from debug_toolbar.toolbar import DebugToolbar
from django.db import connections
from django.test import AsyncClient, Client, override_settings
from django.urls import reverse

from django_dbperf import stats
from django_dbperf.middleware import QUERY_COUNT_HEADER
from django_dbperf.stats.flusher import FLUSHER
from django_dbperf.stats.models import QueryShape
from tests import helpers, panel_urls
from tests.helpers import make_library

pytestmark = pytest.mark.django_db

TOOLBAR = "debug_toolbar.middleware.DebugToolbarMiddleware"
MIDDLEWARE = [
    TOOLBAR,
    "django.middleware.security.SecurityMiddleware",
    "django_dbperf.middleware.QueryCountMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
PANELS = [*PANELS_DEFAULTS, "django_dbperf.panels.DbPerfPanel"]
PANEL = "DbPerfPanel"
VIEWS = panel_urls.__file__


def hidden_toolbar(request: object) -> bool:
    return False


@pytest.fixture(autouse=True)
def toolbar() -> Iterator[None]:
    """The toolbar shown, our panel last in its list (the toolbar's defaults before it)."""
    from debug_toolbar.middleware import show_toolbar_func_or_path

    show_toolbar_func_or_path.cache_clear()  # the toolbar resolves its callback once
    with override_settings(
        MIDDLEWARE=MIDDLEWARE,
        DEBUG=True,
        ROOT_URLCONF="tests.panel_urls",
        DEBUG_TOOLBAR_PANELS=PANELS,
    ):
        yield
    show_toolbar_func_or_path.cache_clear()
    FLUSHER.buffer.take()  # what QueryCountMiddleware recorded: never written at exit


@pytest.fixture
def library() -> None:
    make_library(authors=5, books_per_author=2)


def request_id(response: Any) -> str:
    found = re.search(r'data-request-id="(\w+)"', response.content.decode())
    assert found is not None, "the toolbar was not inserted"
    return found[1]


def panel_stats(response: Any, panel_id: str = PANEL) -> dict[str, Any]:
    toolbar = DebugToolbar.fetch(request_id(response), panel_id=panel_id)
    assert toolbar is not None
    found: dict[str, Any] = toolbar.get_panel_by_id(panel_id).get_stats()
    return found


def rendered(client: Client, response: Any) -> str:
    """The panel's content as the toolbar's JavaScript fetches it."""
    url = reverse("djdt:render_panel")
    answer = client.get(url, {"request_id": request_id(response), "panel_id": PANEL})
    assert answer.status_code == 200
    content: str = answer.json()["content"]
    return content


# --- findings -------------------------------------------------------------------------------


def test_n_plus_one_with_relation_callsite_and_fix(client: Client, library: None) -> None:
    response = client.get("/panel/books/")
    data = panel_stats(response)
    (finding,) = data["n_plus_one"]
    line = helpers.line_of(VIEWS, "panel-n-plus-one")
    assert finding["relation"] == "testapp.Book.author"
    assert finding["count"] == 10
    assert finding["callsite"] == line
    fix = 'add .select_related("author") to the Book queryset'
    assert finding["suggestion"].startswith(fix)
    content = rendered(client, response)
    assert "testapp.Book.author" in content
    assert line in content
    assert "add .select_related(&quot;author&quot;) to the Book queryset" in content
    # The subtitle in the toolbar's side bar, and the same count as the middleware's header.
    toolbar_html = response.content.decode()
    assert "13 queries, 1 N+1" in toolbar_html
    assert response[QUERY_COUNT_HEADER] == str(data["queries"]) == "13"


def test_duplicates_with_their_sql(client: Client, library: None) -> None:
    response = client.get("/panel/books/")
    (duplicate,) = panel_stats(response)["duplicates"]
    assert duplicate["count"] == 2
    assert 'FROM "testapp_author"' in duplicate["sql"] and "COUNT(*)" in duplicate["sql"]
    assert helpers.line_of(VIEWS, "panel-duplicate").rsplit(":", 1)[0] in duplicate["where"]
    content = rendered(client, response)
    assert "Duplicate queries (1)" in content
    assert "FROM &quot;testapp_author&quot;" in content


def test_the_example_projects_naive_event_list(client: Client) -> None:
    from example_project.scheduler.seeding import seed_demo

    seed_demo(events=6)
    response = client.get("/events/")
    relations = {finding["relation"]: finding for finding in panel_stats(response)["n_plus_one"]}
    owner = relations["scheduler.Event.owner"]
    assert owner["suggestion"].startswith('add .select_related("owner") to the Event queryset')
    assert "scheduler/event_list.html" in owner["where"]
    assert "scheduler.Event.owner" in rendered(client, response)


def test_same_query_count_as_the_toolbars_sql_panel(client: Client, library: None) -> None:
    from example_project.scheduler.seeding import seed_demo

    seed_demo(events=3)
    for path in ["/panel/books/", "/panel/budgeted/", "/events/"]:
        response = client.get(path)
        ours = panel_stats(response)["queries"]
        sql_panel = panel_stats(response, "SQLPanel")["queries"]
        assert ours == len(sql_panel) == int(response[QUERY_COUNT_HEADER]), path


def test_stats_are_plain_json(client: Client, library: None) -> None:
    with override_settings(DBPERF={"SLOW_QUERY_MS": 0, "QUERY_BUDGET": 1}):
        data = panel_stats(client.get("/panel/books/"))
    # The toolbar's database store would keep exactly this: no objects, no fallbacks.
    assert json.loads(json.dumps(data)) == data


# --- budgets --------------------------------------------------------------------------------


def test_the_views_own_budget_exceeded(client: Client, library: None) -> None:
    with override_settings(DBPERF={"QUERY_BUDGET": 1}):
        response = client.get("/panel/budgeted/")
    view, global_budget = panel_stats(response)["budgets"]
    assert view == {
        "source": "@query_budget on budgeted",
        "max_queries": 2,
        "max_duplicates": 0,
        "problems": ["3 queries, budget 2", "1 duplicate queries, budget 0"],
        "exceeded": True,
        "applies": True,
    }
    # The global budget is exceeded too, but the view's own replaces it (as in the middleware).
    assert global_budget["source"] == 'DBPERF["QUERY_BUDGET"]'
    assert global_budget["exceeded"] and not global_budget["applies"]
    with override_settings(DBPERF={"QUERY_BUDGET": 1}):
        content = rendered(client, response)
    assert "exceeded: 3 queries, budget 2; 1 duplicate queries, budget 0" in content
    assert "@query_budget on budgeted" in content


def test_the_global_budget_within_and_none(client: Client, library: None) -> None:
    with override_settings(DBPERF={"QUERY_BUDGET": 50}):
        (row,) = panel_stats(client.get("/panel/books/"))["budgets"]
    assert row["max_queries"] == 50 and row["applies"] and not row["exceeded"]
    response = client.get("/panel/books/")
    assert panel_stats(response)["budgets"] == []
    assert "No budget" in rendered(client, response)


# --- cache ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # in a test's transaction, every read would bypass
def test_cache_hits_misses_bypasses_and_invalidations(cache_alias: str) -> None:
    make_library(authors=2, books_per_author=1)
    client = Client()
    response = client.get("/panel/cached/")
    cache = panel_stats(response)["cache"]
    subjects = {row["subject"]: row for row in cache["subjects"]}
    author = subjects["testapp.Author"]
    assert (author["miss"], author["hit"], author["invalidation"]) == (1, 1, 1)
    assert (subjects["tag:panel"]["miss"], subjects["tag:panel"]["hit"]) == (1, 1)
    assert subjects["sessions.Session"]["bypass"] == 1
    (bypass,) = cache["bypasses"]
    assert bypass["subject"] == "sessions.Session"
    assert 'DBPERF["CACHE"]["NOT_CACHED"] lists' in bypass["reason"]
    # The totals add up the models; the tag counts the same reads again.
    assert cache["totals"] == {
        "hit": 1, "miss": 1, "invalidation": 1, "bypass": 1, "rejected": 0,
    }  # fmt: skip
    content = rendered(client, response)
    assert "1 hit, 1 miss, 1 served uncached, 1 invalidation." in content
    assert "NOT_CACHED" in content and "tag:panel" in content


def test_cache_not_configured(client: Client, library: None) -> None:
    response = client.get("/panel/books/")
    assert panel_stats(response)["cache"]["configured"] is False
    assert "Queryset caching is not set up" in rendered(client, response)


def test_cache_observers_see_their_own_block_only(cache_alias: str) -> None:
    from django_dbperf.cache import invalidate_tags
    from django_dbperf.cache.observing import CacheEvent, observe_cache_events
    from django_dbperf.cache.store import STORE

    with observe_cache_events() as outer:
        with observe_cache_events() as inner:
            invalidate_tags("both")
            STORE.bypass("testapp.Book", "a reason")
        invalidate_tags("outer")
    invalidate_tags("nobody")
    assert inner == [
        CacheEvent("tag:both", "invalidation", None),
        CacheEvent("testapp.Book", "bypass", "a reason"),
    ]
    assert outer == [*inner, CacheEvent("tag:outer", "invalidation", None)]


# --- slow queries ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the statistics are written on a connection of their own
def test_slow_queries_link_to_their_admin_page_once_stored() -> None:
    make_library(authors=3, books_per_author=1)
    FLUSHER.buffer.take()
    client = Client()
    try:
        with override_settings(DBPERF={"SLOW_QUERY_MS": 0}):
            response = client.get("/panel/books/")
            slow = panel_stats(response)["slow"]
            assert slow["threshold_ms"] == 0
            books = next(row for row in slow["shapes"] if 'FROM "testapp_book"' in row["sql"])
            assert books["count"] == 1 and books["alias"] == "default"
            authors = next(row for row in slow["shapes"] if "LIMIT 21" in row["sql"])
            assert authors["count"] == 3
            before = rendered(client, response)
            assert "Not in the statistics store yet" in before
            assert "dbperf-shape-link" not in before
            # QueryCountMiddleware recorded the request; written now as the flusher would.
            assert stats.flush().written
            after = rendered(client, response)
    finally:
        FLUSHER.buffer.take()
    shape = QueryShape.objects.get(alias="default", fingerprint_id=books["fingerprint_id"])
    url = reverse("admin:django_dbperf_queryshape_change", args=[shape.pk])
    assert f'<a class="dbperf-shape-link" href="{url}">{shape.fingerprint_id}</a>' in (after)


def test_no_slow_queries(client: Client, library: None) -> None:
    # A threshold no query nears, even on a loaded machine.
    with override_settings(DBPERF={"SLOW_QUERY_MS": 60_000}):
        response = client.get("/panel/books/")
        assert panel_stats(response)["slow"]["shapes"] == []
        assert "No query took SLOW_QUERY_MS (60000 ms) or longer." in rendered(client, response)


# --- escaping -------------------------------------------------------------------------------


def test_sql_is_rendered_escaped(client: Client) -> None:
    with override_settings(DBPERF={"SLOW_QUERY_MS": 0}):
        response = client.get("/panel/script/")
        data = panel_stats(response)
        content = rendered(client, response)
    (duplicate,) = data["duplicates"]
    assert duplicate["sql"] == panel_urls.SCRIPT_SQL
    assert data["slow"]["shapes"][0]["sql"] == panel_urls.SCRIPT_SQL
    assert "<script>" not in content
    assert content.count("SELECT &#x27;&lt;script&gt;alert(1)&lt;/script&gt;&#x27;") == 2


# --- cost when off --------------------------------------------------------------------------

WITHOUT_OUR_MIDDLEWARE = [m for m in MIDDLEWARE if "QueryCountMiddleware" not in m]


def test_captures_only_while_the_toolbar_is_shown(client: Client) -> None:
    with override_settings(MIDDLEWARE=WITHOUT_OUR_MIDDLEWARE):
        shown = client.get("/panel/capturing/").content.decode()
        assert "capturing=True" in shown and "observing=True" in shown
        config = {"IS_RUNNING_TESTS": False, "SHOW_TOOLBAR_CALLBACK": f"{__name__}.hidden_toolbar"}
        with override_settings(DEBUG_TOOLBAR_CONFIG=config):
            from debug_toolbar.middleware import show_toolbar_func_or_path

            show_toolbar_func_or_path.cache_clear()
            hidden = client.get("/panel/capturing/").content.decode()
        show_toolbar_func_or_path.cache_clear()
    assert "capturing=False" in hidden and "observing=False" in hidden
    assert "djDebug" not in hidden


def test_captures_nothing_when_the_panel_is_switched_off(client: Client) -> None:
    # The toolbar's checkbox for the panel sets this cookie: shown, but the panel is off.
    client.cookies["djdtDbPerfPanel"] = "off"
    with override_settings(MIDDLEWARE=WITHOUT_OUR_MIDDLEWARE):
        response = client.get("/panel/capturing/")
    assert "capturing=False" in response.content.decode()
    assert "djDebug" in response.content.decode()
    assert panel_stats(response) == {}


# --- async ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_async_view_through_the_async_toolbar() -> None:
    make_library(authors=4, books_per_author=1)

    async def get() -> Any:
        from asgiref.sync import sync_to_async

        response = await AsyncClient().get("/panel/async/")
        await sync_to_async(connections.close_all)()
        return response

    response = asyncio.run(get())
    data = panel_stats(response)
    (finding,) = data["n_plus_one"]
    assert finding["model"] == "testapp.Author" and finding["count"] == 4
    assert data["queries"] == len(panel_stats(response, "SQLPanel")["queries"]) == 5


# --- without the toolbar --------------------------------------------------------------------


def test_importing_the_panel_without_the_toolbar_names_the_extra() -> None:
    code = "\n".join(
        [
            "import sys",
            "sys.modules['debug_toolbar'] = None  # as if not installed",
            "try:",
            "    import django_dbperf.panels",
            "except Exception as error:",
            "    print(type(error).__module__, type(error).__name__)",
            "    print(error)",
        ]
    )
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    kind, message = result.stdout.split("\n", 1)
    assert kind == "django_dbperf.extras MissingExtra"  # an ImproperlyConfigured
    assert 'pip install "django-dbperf[toolbar]"' in message
