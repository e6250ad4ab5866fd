"""``dbperf_explain``: the plan of a statement from the statistics store, with the admin's
safety rules (stored SELECTs only, ANALYZE only when allowed and with every value stored)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings

from django_dbperf import capture_queries, stats
from django_dbperf.stats.flusher import FLUSHER
from django_dbperf.stats.models import QueryShape
from tests.helpers import make_library
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.django_db(transaction=True)

ANALYZE_ALLOWED = {"STATS": {"EXPLAIN_ANALYZE": True}}


@pytest.fixture(autouse=True)
def empty_buffer() -> Iterator[None]:
    FLUSHER.buffer.take()
    yield
    FLUSHER.buffer.take()


def record(run: Callable[[], Any], *, store_params: bool = False) -> QueryShape:
    """The statistics store's shape of the one statement ``run`` issues, recorded and flushed."""
    with capture_queries() as captured:
        run()
    with override_settings(DBPERF={"STATS": {"STORE_PARAMS": store_params}}):
        stats.record_request(captured.queries, [], view="test", sample_rate=1.0)
    assert stats.flush().written
    (query,) = captured.queries
    return QueryShape.objects.get(sql=query.sql)


def books_titled() -> QueryShape:
    make_library(authors=2, books_per_author=2)
    return record(lambda: list(Book.objects.filter(title="Book 1.1")), store_params=True)


def explain(*args: str) -> str:
    out = StringIO()
    call_command("dbperf_explain", *args, stdout=out)
    return out.getvalue()


def test_prints_the_plan_of_a_stored_select() -> None:
    shape = books_titled()
    text = explain(shape.fingerprint_id)
    if connection.vendor == "postgresql":
        assert "Seq Scan on testapp_book" in text and "cost=" in text
    else:
        assert "QUERY PLAN" in text and "SCAN testapp_book" in text
    assert text.startswith(f"EXPLAIN of {shape.fingerprint_id} on 'default'")
    assert 'FROM "testapp_book"' in text


def test_json_has_the_statement_and_the_plan_as_text_and_tree() -> None:
    shape = books_titled()
    data = json.loads(explain(shape.fingerprint_id, "--format", "json"))
    assert (data["fingerprint_id"], data["sql"], data["alias"]) == (
        shape.fingerprint_id,
        shape.sql,
        "default",
    )
    assert data["analyzed"] is False and data["generic"] is False  # the stored values are used
    assert data["method"] in ("values", "EXPLAIN QUERY PLAN")
    assert "testapp_book" in data["plan"]
    tree = data["tree"]
    labels = [tree["label"], *(child["label"] for child in tree["children"])]
    assert any("testapp_book" in label for label in labels)


def test_refuses_a_stored_statement_that_is_not_a_select() -> None:
    make_library(authors=1, books_per_author=2)
    shape = record(lambda: Book.objects.update(pages=5))
    Book.objects.update(pages=9)
    with pytest.raises(CommandError, match="EXPLAIN runs only for SELECT statements"):
        explain(shape.fingerprint_id)
    assert set(Book.objects.values_list("pages", flat=True)) == {9}  # the UPDATE never ran


def test_a_tampered_select_that_writes_is_refused_and_changes_nothing() -> None:
    shape = books_titled()
    QueryShape.objects.filter(pk=shape.pk).update(sql="DELETE FROM testapp_book")
    with pytest.raises(CommandError, match="EXPLAIN refused: Only a SELECT"):
        explain(shape.fingerprint_id)
    assert Book.objects.count() == 4


def test_an_unknown_id_says_where_ids_are_listed() -> None:
    books_titled()
    with pytest.raises(CommandError) as error:
        explain("0123456789ab")
    assert "No statement '0123456789ab' in the statistics store" in str(error.value)
    assert "dbperf_report" in str(error.value) and "slow queries page" in str(error.value)


def test_an_id_recorded_on_several_databases_needs_database() -> None:
    shape = books_titled()
    QueryShape.objects.filter(pk=shape.pk).update(alias="other")
    copy = QueryShape.objects.get(pk=shape.pk)
    copy.pk, copy.alias = None, "default"
    copy.save()
    with pytest.raises(CommandError) as error:
        explain(shape.fingerprint_id)
    assert "recorded on several databases (default, other)" in str(error.value)
    assert "--database default" in str(error.value)
    assert "testapp_book" in explain(shape.fingerprint_id, "--database", "default")


def test_an_unknown_database_lists_the_known_ones() -> None:
    shape = books_titled()
    with pytest.raises(CommandError, match="Unknown database 'replica': use one of default, other"):
        explain(shape.fingerprint_id, "--database", "replica")


def test_an_id_not_stored_for_the_given_database() -> None:
    shape = books_titled()
    with pytest.raises(CommandError, match=f"No statement '{shape.fingerprint_id}' .* on 'other'"):
        explain(shape.fingerprint_id, "--database", "other")


def test_analyze_is_refused_until_the_setting_allows_it() -> None:
    shape = books_titled()
    with pytest.raises(CommandError) as error:
        explain(shape.fingerprint_id, "--analyze")
    assert 'DBPERF["STATS"]["EXPLAIN_ANALYZE"] = True' in str(error.value)


@override_settings(DBPERF=ANALYZE_ALLOWED)
def test_analyze_is_refused_without_stored_values() -> None:
    make_library(authors=1, books_per_author=1)
    shape = record(lambda: list(Book.objects.filter(title="Book 0.0")), store_params=False)
    with pytest.raises(CommandError) as error:
        explain(shape.fingerprint_id, "--analyze")
    assert 'DBPERF["STATS"]["STORE_PARAMS"] = True' in str(error.value)


@override_settings(DBPERF=ANALYZE_ALLOWED)
def test_analyze_is_refused_when_a_value_was_stored_masked() -> None:
    make_library(authors=1, books_per_author=1)
    shape = record(lambda: list(Author.objects.filter(email="a0@example.com")), store_params=True)
    assert shape.params == ["<redacted>"]
    with pytest.raises(CommandError) as error:
        explain(shape.fingerprint_id, "--analyze")
    assert "1 of 1 were stored masked" in str(error.value)
    assert "REDACT_COLUMNS" in str(error.value)
    # Without ANALYZE the plan is shown, made without the masked value.
    assert "testapp_author" in explain(shape.fingerprint_id)


@override_settings(DBPERF=ANALYZE_ALLOWED)
def test_analyze_on_sqlite_says_it_has_none() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's refusal; the PostgreSQL pass runs ANALYZE")
    shape = books_titled()
    with pytest.raises(CommandError, match="SQLite has no EXPLAIN ANALYZE"):
        explain(shape.fingerprint_id, "--analyze")


@override_settings(DBPERF=ANALYZE_ALLOWED)
def test_analyze_runs_the_stored_select_with_its_values(postgres: None) -> None:
    shape = books_titled()
    text = explain(shape.fingerprint_id, "--analyze")
    assert text.startswith(f"EXPLAIN ANALYZE of {shape.fingerprint_id}")
    assert "actual time=" in text and "Execution Time" in text
    data = json.loads(explain(shape.fingerprint_id, "--analyze", "--format", "json"))
    assert data["analyzed"] is True and data["tree"]["actual_ms"] is not None
