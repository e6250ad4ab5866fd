"""The index advisor on the suite's own database: hypopg evidence, the write-cost rule, the
fallbacks without hypopg (pg_stats) and on SQLite (its query plan), the module writer and the
command's answers to bad input. The whole loop through makemigrations is in
test_indexes_loop.py.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, models

from django_dbperf.explain import explain
from django_dbperf.indexes import modules
from django_dbperf.indexes.advisor import HYPOPG, PG_STATS, SQLITE, advise
from django_dbperf.indexes.declarations import DeclarationError, read_module
from django_dbperf.indexes.workload import WorkloadQuery
from tests.testapp.models import Author, Book

ROWS = 30_000


def fill_books(rows: int = ROWS) -> None:
    author = Author.objects.create(name="Prolific")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "INSERT INTO testapp_book (title, summary, published, pages, author_id) "
                "SELECT 'Book ' || g, '', DATE '2000-01-01' + (g %% 9000), g %% 50, %s "
                "FROM generate_series(1, %s) g",
                [author.pk, rows],
            )
            # Vacuumed too: autovacuum would otherwise change the costs midway.
            cursor.execute("VACUUM ANALYZE testapp_book")
        else:
            Book.objects.bulk_create(
                Book(title=f"Book {n}", pages=n % 50, author=author) for n in range(rows)
            )


def workload_query(queryset: Any, key: str, total_ms: float = 5000.0) -> WorkloadQuery:
    sql, _ = queryset.query.sql_with_params()
    return WorkloadQuery(key, sql, None, total_ms, 100.0, (("books", total_ms),), ("app.py:1",))


def by_pages() -> Any:
    return Book.objects.filter(pages=42).order_by("-published")[:10]


def reads_everything() -> Any:
    """Most columns of every row: no index (not even a covering one) helps."""
    return Book.objects.filter(pages__gte=0).values("id", "title", "summary", "published")


@pytest.mark.django_db(transaction=True)
def test_hypopg_evidence_suggests_the_composite_and_nothing_for_a_full_read(hypopg: None) -> None:
    fill_books()
    queries = [workload_query(by_pages(), "aaaaaaaaaaaa"), workload_query(reads_everything(), "b")]
    advice = advise(queries=queries, app_labels=["testapp"])
    assert advice.method == HYPOPG
    (suggestion,) = advice.suggestions
    _, _, options = suggestion.index.deconstruct()
    assert options["fields"] == ["pages", "-published"]
    assert suggestion.verified and suggestion.saved_ms and suggestion.saved_ms > 2500
    (shape,) = suggestion.shapes
    assert shape.key == "aaaaaaaaaaaa" and shape.cost_after < shape.cost_before / 2
    assert suggestion.views() == [("books", pytest.approx(suggestion.saved_ms))]
    skipped = {item.key: item.reason for item in advice.skipped}
    assert "no index saves 50%" in skipped["b"]


@pytest.mark.django_db(transaction=True)
def test_an_index_that_costs_more_in_writes_than_it_saves_is_not_suggested(hypopg: None) -> None:
    fill_books()
    read = workload_query(by_pages(), "read", total_ms=100.0)
    writes = WorkloadQuery(
        "write", 'INSERT INTO "testapp_book" ("title") VALUES (%s)', None, 50_000.0, 1e6
    )
    assert advise(queries=[read], app_labels=["testapp"]).suggestions
    assert advise(queries=[read, writes], app_labels=["testapp"]).suggestions == []


@pytest.mark.django_db(transaction=True)
def test_one_index_serving_two_shapes_is_chosen_over_two(hypopg: None) -> None:
    fill_books()
    first = workload_query(by_pages(), "one")
    second = workload_query(Book.objects.filter(pages=7).order_by("-published")[:50], "two")
    advice = advise(queries=[first, second], app_labels=["testapp"])
    (suggestion,) = advice.suggestions
    assert {shape.key for shape in suggestion.shapes} == {"one", "two"}


@pytest.mark.django_db(transaction=True)
def test_without_hypopg_the_pg_stats_heuristic_is_labelled_unverified(postgres: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DROP EXTENSION IF EXISTS hypopg")
    fill_books()
    advice = advise(queries=[workload_query(by_pages(), "h")], app_labels=["testapp"])
    assert advice.method == PG_STATS
    assert any("CREATE EXTENSION hypopg" in note or "hypopg" in note for note in advice.notes)
    (suggestion,) = advice.suggestions
    assert not suggestion.verified and suggestion.saved_ms is None
    assert "pg_stats" in suggestion.reason


@pytest.mark.django_db
def test_sqlite_full_scans_become_unverified_suggestions() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite path")
    fill_books(2_000)
    advice = advise(queries=[workload_query(by_pages(), "s")], min_rows=100)
    assert advice.method == SQLITE
    (suggestion,) = advice.suggestions
    assert suggestion.model_name == "Book" and not suggestion.verified
    assert "EXPLAIN QUERY PLAN" in suggestion.reason


def sqlite_workload() -> list[WorkloadQuery]:
    """4,000 books by 40 authors, and shapes like the example project's pages: filters and
    sorts, a prefetch (an IN list sorted by another column: SQLite keeps the foreign key's index
    and sorts, whatever index is added), a sort of the whole table, a full read."""
    authors = Author.objects.bulk_create(Author(name=f"Author {n}") for n in range(40))
    Book.objects.bulk_create(
        Book(title=f"Book {n}", pages=n % 50, author=authors[n % 40]) for n in range(4_000)
    )
    ids = [author.pk for author in authors[:3]]
    shapes = [
        Book.objects.filter(author_id__in=ids).order_by("title"),
        Book.objects.filter(author_id=ids[0]).order_by("-published")[:5],
        Book.objects.filter(author_id__in=ids, pages=3).order_by("title"),
        Book.objects.order_by("-published", "-id")[:20],
        by_pages(),
        reads_everything(),
    ]
    return [workload_query(queryset, f"s{n}") for n, queryset in enumerate(shapes)]


@pytest.mark.django_db
def test_every_sqlite_suggestion_is_used_by_its_statements_once_built() -> None:
    """The property `verify` checks after migrate, for whatever the heuristic suggests: with
    the suggested indexes built for real (in a rolled-back transaction), each is in the plan of
    every statement it was suggested for. Without the trial build the heuristic proposed
    (author_id, title) for the prefetch, which SQLite never uses (``make demo``'s verify failed
    on such indexes)."""
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite path")
    advice = advise(queries=sqlite_workload(), min_rows=100)
    assert advice.method == SQLITE and len(advice.suggestions) >= 3
    quote = connection.ops.quote_name
    # All of them at once, as migrate builds them: overlapping indexes compete for a plan.
    built = [item.candidate.sql(quote, item.index.name) for item in advice.suggestions]
    for suggestion in advice.suggestions:
        for shape in suggestion.shapes:
            plan = explain(shape.sql, None, sqlite_setup=built)
            assert suggestion.index.name in plan.text, (suggestion.index, shape.sql, plan.text)
    assert "s0" not in {shape.key for item in advice.suggestions for shape in item.shapes}


@pytest.mark.django_db
def test_verify_fails_only_on_a_plan_that_does_not_use_the_index(tmp_path: Path) -> None:
    """A statement the database cannot plan, or whose text was shortened in the module, is
    reported as not checked; only a plan without the index fails the gate."""
    from django_dbperf.indexes.verification import NOT_USED, OK, _check_shape

    unplannable = _check_shape("dp_x", {"fingerprint": "a", "sql": "SELECT (1"}, "default")
    assert unplannable.used is None and unplannable.verdict == "not checked"
    shortened = _check_shape(
        "dp_x", {"fingerprint": "b", "sql": "SELECT 1", "shortened": True}, "default"
    )
    assert shortened.used is None and "shortened" in shortened.detail
    plain = _check_shape("dp_x", {"fingerprint": "c", "sql": "SELECT 1"}, "default")
    assert plain.used is False and plain.verdict == "does not use it"
    assert (OK, NOT_USED) == ("ok", "not used")


@pytest.mark.django_db
def test_statements_it_cannot_use_are_listed_with_the_reason() -> None:
    queries = [
        WorkloadQuery("bad", "SELEC nonsense FROM", None, 10.0, 1.0),
        WorkloadQuery("nomodel", "SELECT * FROM some_table_no_model WHERE a = %s", None, 9.0, 1.0),
    ]
    advice = advise(queries=queries)
    reasons = {item.key: item.reason for item in advice.skipped}
    assert reasons["bad"].startswith("cannot be parsed")
    assert "does not exist" in reasons["nomodel"]
    assert advice.suggestions == []


@pytest.mark.django_db
def test_an_empty_store_says_what_to_do() -> None:
    from django_dbperf.stats.models import PgStatement, QueryShape

    QueryShape.objects.all().delete()  # what other tests left (rolled back after this one)
    PgStatement.objects.all().delete()
    advice = advise()
    assert advice.suggestions == [] and "statistics store is empty" in advice.notes[0]


# --- the module writer ------------------------------------------------------------------------


def fake_app(tmp_path: Path, label: str = "shopfake") -> Any:
    return types.SimpleNamespace(label=label, name=label, path=str(tmp_path))


def suggestion_like(name: str, fields: list[str], key: str) -> Any:
    shape = types.SimpleNamespace(key=key, sql=f"SELECT {key}", saving_pct=90.0,
                                  cost_before=100.0, cost_after=10.0)  # fmt: skip
    return types.SimpleNamespace(
        model_name="Order", index=models.Index(fields=fields, name=name), shapes=[shape]
    )


def test_writing_merges_keeps_edits_and_honours_rejected(tmp_path: Path) -> None:
    app = fake_app(tmp_path)
    first = modules.write(app, [suggestion_like("dp_a", ["status"], "k1")])
    assert first.added == ("dp_a",)
    text = first.path.read_text()
    again = modules.write(app, [suggestion_like("dp_a", ["status"], "k1")])
    assert again.added == () and again.path.read_text() == text  # deterministic, idempotent
    # A person rejects dp_a and adds their own: both survive the next write.
    edited = text.replace("REJECTED = []", "REJECTED = ['dp_b']")
    first.path.write_text(edited)
    result = modules.write(
        app,
        [suggestion_like("dp_b", ["total"], "k2"), suggestion_like("dp_c", ["-placed"], "k3")],
    )
    assert result.added == ("dp_c",)
    contents = read_module(app)
    assert contents is not None
    assert [index.name for index in contents.indexes["Order"]] == ["dp_a", "dp_c"]
    assert contents.rejected == ("dp_b",)
    assert contents.shapes["dp_c"][0]["fingerprint"] == "k3"
    # The same definition under another name is not written twice.
    assert modules.write(app, [suggestion_like("dp_z", ["status"], "k4")]).added == ()
    assert {r["fingerprint"] for r in read_module(app).shapes["dp_a"]} == {"k1", "k4"}  # type: ignore[union-attr]


def test_a_failed_write_leaves_the_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = fake_app(tmp_path)
    path = modules.write(app, [suggestion_like("dp_a", ["status"], "k1")]).path
    before = path.read_text()

    def disk_full(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    from django_dbperf import files

    monkeypatch.setattr(files.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        modules.write(app, [suggestion_like("dp_b", ["total"], "k2")])
    assert path.read_text() == before
    assert [item.name for item in tmp_path.iterdir()] == ["dbperf_indexes.py"]


def test_a_module_that_is_not_what_write_writes_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dbperf_indexes.py").write_text("INDEXES = {'Order': ['not an index']}\n")
    with pytest.raises(DeclarationError, match=r"must be a list of models.Index"):
        read_module(fake_app(tmp_path))
    (tmp_path / "dbperf_indexes.py").write_text(
        "from django.db import models\nINDEXES = {'Order': [models.Index(fields=['a'])]}\n"
    )
    with pytest.raises(DeclarationError, match=r"has no name"):
        read_module(fake_app(tmp_path))


# --- the command's answers to bad input -------------------------------------------------------


@pytest.mark.django_db
def test_bad_arguments_are_command_errors_that_say_what_to_do() -> None:
    with pytest.raises(CommandError, match=r"Unknown app label 'nope' \(--app\)"):
        call_command("dbperf_indexes", "suggest", "--app", "nope")
    with pytest.raises(CommandError, match=r"Unknown database 'elsewhere'"):
        call_command("dbperf_indexes", "verify", "--database", "elsewhere")
    with pytest.raises(CommandError, match=r"--min-saving is a percent"):
        call_command("dbperf_indexes", "suggest", "--min-saving", "150")
    with pytest.raises(CommandError, match=r"--min-scans must be 0 or more"):
        call_command("dbperf_indexes", "unused", "--min-scans", "-1")


@pytest.mark.django_db
def test_unused_on_sqlite_says_it_needs_postgresql() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite path")
    with pytest.raises(CommandError, match=r"PostgreSQL"):
        call_command("dbperf_indexes", "unused")


@pytest.mark.django_db
def test_verify_passes_on_the_suite_database() -> None:
    call_command("dbperf_indexes", "verify", "--app", "django_dbperf")


# --- what the ORM knew: constants behind placeholders -----------------------------------------


def fill_items() -> None:
    """50,000 items; one in a hundred flagged and blue."""
    from tests.testapp.models import DiffOwner

    owner = DiffOwner.objects.create(name="owner")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO testapp_diffitem (name, body, number, big_number, price, ratio, flag, "
            "blob, uid, color, level, owner_id) SELECT 'item', '', g, 0, 0, 0, g %% 100 = 0, "
            "'', gen_random_uuid(), CASE WHEN g %% 100 = 0 THEN 'blue' ELSE 'red' END, 1, %s "
            "FROM generate_series(1, 50000) g",
            [owner.pk],
        )
        cursor.execute("VACUUM ANALYZE testapp_diffitem")


def capture_flagged(calls: int) -> list[Any]:
    """The same statement ``calls`` times; PostgreSQL gets ``WHERE flag`` (Django writes the
    boolean inline there), SQLite ``flag = %s`` with True every time."""
    from django_dbperf import capture_queries
    from tests.testapp.models import DiffItem

    with capture_queries() as captured:
        for _ in range(calls):
            list(DiffItem.objects.filter(flag=True).order_by("-number")[:20])
    return list(captured.queries)


@pytest.mark.django_db
def test_captured_statements_know_which_values_never_changed() -> None:
    from django_dbperf import capture_queries
    from django_dbperf.indexes.workload import from_captured
    from tests.testapp.models import DiffItem

    with capture_queries() as captured:
        for number in range(4):
            list(DiffItem.objects.filter(color="red", number__gte=number))
    (steady,) = [item for item in from_captured(captured.queries) if "diffitem" in item.sql]
    assert steady.constants == ((1, "red"),) and steady.calls == 4.0
    assert steady.params == ("red", 0)


@pytest.mark.django_db(transaction=True)
def test_a_flag_always_true_becomes_a_partial_index(hypopg: None) -> None:
    from django_dbperf.indexes.workload import from_captured

    fill_items()
    advice = advise(queries=from_captured(capture_flagged(3)), app_labels=["testapp"])
    (suggestion,) = advice.suggestions
    _, _, options = suggestion.index.deconstruct()
    assert options["fields"] == ["-number"]
    assert options["condition"] == models.Q(flag=True)
    assert suggestion.verified


@pytest.mark.django_db(transaction=True)
def test_a_status_the_orm_always_sent_becomes_a_partial_index(hypopg: None) -> None:
    """``color = %s`` with 'blue' in every call: the statement shows a placeholder, the
    capture saw the value, and the plan is costed with it."""
    from django_dbperf import capture_queries
    from django_dbperf.indexes.workload import from_captured
    from tests.testapp.models import DiffItem

    fill_items()
    with capture_queries() as captured:
        for _ in range(3):
            list(DiffItem.objects.filter(color="blue").order_by("-number")[:20])
    advice = advise(queries=from_captured(captured.queries), app_labels=["testapp"])
    (suggestion,) = advice.suggestions
    _, _, options = suggestion.index.deconstruct()
    assert options["fields"] == ["-number"]
    assert options["condition"] == models.Q(color="blue")


@pytest.mark.django_db(transaction=True)
def test_without_hypopg_a_range_on_a_column_stored_in_order_is_suggested(postgres: None) -> None:
    from tests.testapp.models import DiffItem

    with connection.cursor() as cursor:
        cursor.execute("DROP EXTENSION IF EXISTS hypopg")
    fill_items()  # number = 1..50,000 in insertion order: correlation 1
    query = workload_query(DiffItem.objects.filter(number__gte=49_000).values("id"), "r")
    advice = advise(queries=[query], app_labels=["testapp"])
    (suggestion,) = advice.suggestions
    assert suggestion.candidate.describe() == "testapp_diffitem (number)"
    assert "correlation 1.00" in suggestion.reason and not suggestion.verified
