"""``dbperf_cache stats|clear|warm`` against real Valkey/Redis: counters as the admin shows them,
invalidation by new versions, and warming the querysets registered as hot."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import QuerySet
from django.test import override_settings

from django_dbperf.cache import hot_queryset, warming
from django_dbperf.cache.store import STORE
from tests.conftest import missing
from tests.helpers import make_library, queries
from tests.servers import RedisServer, redis_binary
from tests.testapp.models import Author, Book

# Transactional: inside a test-case transaction every table the setup wrote would bypass.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_hot_querysets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warming, "_registry", {})


@pytest.fixture
def redis(redis_cache: str) -> Iterator[str]:
    """Queryset caching on the real Valkey/Redis server, with a library to read."""
    STORE.reset()
    make_library(authors=2, books_per_author=2)
    with override_settings(DBPERF={"CACHE": {"ALIAS": redis_cache}}):
        yield redis_cache


@pytest.fixture
def stopped_redis() -> Iterator[str]:
    """Queryset caching on a real Redis server that has since stopped (an outage)."""
    from django.conf import settings

    binary = redis_binary()
    if binary is None:
        missing("needs redis-server or valkey-server (Debian: apt-get install redis-server)")
        raise AssertionError  # unreachable: missing() skips or fails
    make_library(authors=2, books_per_author=1)
    with tempfile.TemporaryDirectory(prefix="dbperf-cache-command-") as workdir:
        server = RedisServer(binary, Path(workdir))
        server.start()
        server.stop()
        down = {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": server.url,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
        dbperf = {"CACHE": {"ALIAS": "down", "RETRY_AFTER": 0.3}}
        with override_settings(CACHES={**settings.CACHES, "down": down}, DBPERF=dbperf):
            STORE.reset()
            yield "down"
    STORE.reset()


def books(tags: tuple[str, ...] = ()) -> QuerySet[Book]:
    return Book.cache.plain().order_by("pk").cached(tags=tags)


def hot_authors() -> QuerySet[Author]:
    """Listed in the WARM setting by the tests."""
    return Author.cache.order_by("pk").cached()


def read_queries(queryset: QuerySet[Any]) -> int:
    """How many statements reading ``queryset`` ran: 0 when it came from the cache."""
    return queries(lambda: list(queryset))[1]


def run(*args: str) -> str:
    out = StringIO()
    call_command("dbperf_cache", *args, stdout=out)
    return out.getvalue()


def run_failing(*args: str) -> tuple[str, str]:
    """The output and the CommandError's message of a command that fails."""
    out = StringIO()
    with pytest.raises(CommandError) as error:
        call_command("dbperf_cache", *args, stdout=out)
    return out.getvalue(), str(error.value)


# --- bad input ------------------------------------------------------------------------------


@override_settings(DBPERF={})
def test_every_action_says_to_set_up_caching_when_it_is_not() -> None:
    for action in ("stats", "clear", "warm"):
        _, message = run_failing(action)
        assert 'Queryset caching is not set up: set DBPERF["CACHE"]' in message


def test_an_unknown_model_label_is_an_error(redis: str) -> None:
    _, message = run_failing("stats", "--model", "testapp.Bok")
    assert "Unknown model 'testapp.Bok' (--model)" in message
    _, message = run_failing("clear", "--model", "Book")
    assert "Unknown model 'Book' (--model)" in message


def test_clear_and_warm_refuse_while_caching_is_switched_off(redis: str) -> None:
    with override_settings(DBPERF={"CACHE": {"ALIAS": redis, "ENABLED": False}}):
        for action in ("clear", "warm"):
            _, message = run_failing(action)
            assert "Queryset caching is switched off" in message
            assert f"so '{action}' cannot reach the cache server" in message


def test_clear_and_warm_fail_when_the_cache_server_is_down(stopped_redis: str) -> None:
    _, message = run_failing("clear", "--model", "testapp.Author")
    assert "The cache server could not be reached" in message
    assert "run clear again once it answers" in message
    hot_queryset(hot_authors)
    out, message = run_failing("warm")
    assert "FAILED tests.test_command_cache.hot_authors (testapp.Author)" in out
    assert "the cache server failed, so the result was not cached" in out
    assert message.startswith("1 of 1 hot queryset failed to warm")


# --- stats ----------------------------------------------------------------------------------


def test_stats_counts_hits_and_misses_of_cached_reads(redis: str) -> None:
    assert read_queries(books()) == 1
    assert read_queries(books()) == 0
    text = run("stats")
    assert "testapp.Book" in text and "Hit ratio: 50.0% (1 of 2 reads)." in text
    data = json.loads(run("stats", "--format", "json"))
    assert data["subjects"]["testapp.Book"] == {
        "hit": 1, "miss": 1, "bypass": 0, "invalidation": 0, "rejected": 0,
    }  # fmt: skip
    assert data["hit_ratio"] == 0.5 and data["totals"]["hit"] == 1


def test_stats_filters_by_model_and_tag(redis: str) -> None:
    list(books(tags=("home",)))
    list(Author.cache.order_by("pk").cached())
    data = json.loads(run("stats", "--model", "testapp.author", "--format", "json"))
    assert list(data["subjects"]) == ["testapp.Author"]
    data = json.loads(run("stats", "--tag", "home", "--format", "json"))
    assert list(data["subjects"]) == ["tag:home"] and data["totals"]["miss"] == 1
    data = json.loads(run("stats", "--tag", "never-used", "--format", "json"))
    assert data["subjects"]["tag:never-used"]["hit"] == 0 and data["hit_ratio"] is None


# --- clear ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--model", "testapp.Book"], "Invalidated every cached queryset that reads testapp.Book."),
        (["--tag", "home"], "Invalidated every cached queryset tagged 'home'."),
        ([], "Invalidated every cached queryset."),
    ],
    ids=["model", "tag", "all"],
)
def test_clear_makes_the_next_read_a_miss(redis: str, args: list[str], said: str) -> None:
    list(books(tags=("home",)))
    assert read_queries(books(tags=("home",))) == 0
    assert run("clear", *args).strip() == said
    assert read_queries(books(tags=("home",))) == 1
    assert json.loads(run("stats", "--format", "json"))["subjects"]["testapp.Book"]["miss"] == 2


def test_clear_leaves_other_models_cached(redis: str) -> None:
    list(books())
    list(hot_authors())
    run("clear", "--model", "testapp.Book")
    assert read_queries(hot_authors()) == 0 and read_queries(books()) == 1


# --- warm -----------------------------------------------------------------------------------


def test_warm_with_nothing_registered_says_how_to_register(redis: str) -> None:
    text = run("warm")
    assert "No hot querysets are registered" in text
    assert "@hot_queryset" in text and 'DBPERF["CACHE"]["WARM"]' in text


def test_warm_evaluates_a_decorated_function_so_the_next_read_is_a_hit(redis: str) -> None:
    @hot_queryset
    def hot_books() -> QuerySet[Book]:
        return books()

    text = run("warm")
    assert f"Warmed {__name__}." in text and ".hot_books (testapp.Book): 4 rows in " in text
    assert "1 hot queryset in " in text and ": 1 warmed, 0 failed." in text
    assert read_queries(books()) == 0


def test_warm_evaluates_the_functions_of_the_setting(redis: str) -> None:
    path = f"{__name__}.hot_authors"
    with override_settings(DBPERF={"CACHE": {"ALIAS": redis, "WARM": [path]}}):
        data = json.loads(run("warm", "--format", "json"))
        assert read_queries(hot_authors()) == 0
    (result,) = data["results"]
    assert (result["name"], result["model"], result["rows"], result["error"]) == (
        path, "testapp.Author", 2, None,
    )  # fmt: skip


def test_warm_selects_by_declared_model_and_tag(redis: str) -> None:
    hot_queryset(model="testapp.Book", tags=["home"])(lambda: books())
    hot_queryset(model=Author)(hot_authors)
    hot_queryset(lambda: books(tags=("other",)))  # declares nothing

    text = run("warm", "--model", "testapp.author")
    assert "Warmed tests.test_command_cache.hot_authors (testapp.Author): 2 rows" in text
    assert "testapp.Book" not in text and "Not selected, as they declare no model" in text
    assert read_queries(hot_authors()) == 0 and read_queries(books()) == 1
    data = json.loads(run("warm", "--tag", "home", "--format", "json"))
    assert [result["model"] for result in data["results"]] == ["testapp.Book"]


def test_a_failing_function_is_reported_the_others_still_run_and_it_exits_non_zero(
    redis: str,
) -> None:
    @hot_queryset
    def broken() -> QuerySet[Book]:
        raise RuntimeError("the recommendations service is down")

    @hot_queryset
    def not_cached() -> QuerySet[Book]:
        return Book.objects.all()

    hot_queryset(hot_authors)
    path = "tests.nowhere.hot"
    with override_settings(DBPERF={"CACHE": {"ALIAS": redis, "WARM": [path]}}):
        out, message = run_failing("warm")
    assert ".broken (model unknown) after " in out
    assert "RuntimeError: the recommendations service is down" in out
    assert "a testapp.Book queryset that is not cached" in out and "end it with .cached()" in out
    assert "which cannot be imported" in out and f"FAILED {path}" in out
    assert "Warmed tests.test_command_cache.hot_authors (testapp.Author): 2 rows" in out
    assert message.startswith("3 of 4 hot querysets failed to warm: ")
    assert read_queries(hot_authors()) == 0


def test_the_decorator_refuses_a_function_that_needs_arguments() -> None:
    with pytest.raises(TypeError, match=r"top_books\(\) takes arguments"):

        @hot_queryset
        def top_books(limit: int) -> QuerySet[Book]:
            return books()[:limit]
