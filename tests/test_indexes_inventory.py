"""django_dbperf.indexes.inventory: indexes Django made in the test database, traced to models.

Tracing runs on both passes (on SQLite too); the problems need PostgreSQL. Scratch models live
in an isolated app registry (``isolate_apps``), their tables made by Django's schema editor with
the indexes a migration would make; their names start with ``inv_``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.db import IntegrityError, connection, models
from django.test.utils import isolate_apps

from django_dbperf.indexes import declarations
from django_dbperf.indexes.inventory import (
    NOT_DECLARED,
    Declaration,
    IndexProblem,
    InventoryUnavailable,
    index_problems,
    trace_index,
)
from example_project.scheduler.models import EventServer
from tests.helpers import drop_tables_starting_with, execute
from tests.testapp.models import Book

PREFIX = "inv_"
EVERY_INDEX = 10**12  # min_scans: every index counts as unused, whatever the suite scanned


def index_named(table: str, columns: list[str], **flags: Any) -> str:
    """The name the database gave the one index on ``columns`` with these get_constraints flags."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    (name,) = [
        name
        for name, found in constraints.items()
        if found["columns"] == columns
        and (found["index"] or found["unique"] or found["primary_key"])
        and all(found.get(key) == value for key, value in flags.items())
    ]
    return name


def line_at(location: str | None) -> str:
    """The source line a ``path:line`` location points at."""
    assert location is not None
    path, line = location.rsplit(":", 1)
    return Path(path).read_text().splitlines()[int(line) - 1]


def problems_for(problems: list[IndexProblem], table: str) -> list[IndexProblem]:
    return [problem for problem in problems if problem.table == table]


def make_scratch_models(is_managed: bool = True) -> list[type[models.Model]]:
    """Two models outside the installed apps: no migration or flush ever sees them."""
    with isolate_apps("tests.testapp"):

        class InvParent(models.Model):  # noqa: DJ008  (never shown)
            class Meta:
                app_label = "testapp"
                db_table = "inv_parent"
                managed = is_managed

        class InvChild(models.Model):  # noqa: DJ008
            parent = models.ForeignKey(
                InvParent, on_delete=models.CASCADE, db_index=False, related_name="+"
            )
            other = models.ForeignKey(
                InvParent, on_delete=models.SET_NULL, null=True, db_index=False, related_name="+"
            )
            loose = models.ForeignKey(
                InvParent,
                on_delete=models.DO_NOTHING,
                null=True,
                db_index=False,
                db_constraint=False,
                related_name="+",
            )
            owner = models.ForeignKey(  # indexed, as foreign keys are by default
                InvParent, on_delete=models.CASCADE, null=True, related_name="+"
            )
            code = models.CharField(max_length=20)
            rank = models.IntegerField(default=0)

            class Meta:
                app_label = "testapp"
                db_table = "inv_child"
                managed = is_managed
                indexes = [
                    models.Index(fields=["rank"], name="inv_child_rank"),
                    models.Index(fields=["rank", "code"], name="inv_child_rank_code"),
                ]
                constraints = [models.UniqueConstraint(fields=["code"], name="inv_child_code_uniq")]

    return [InvParent, InvChild]


@pytest.fixture
def scratch() -> list[type[models.Model]]:
    return make_scratch_models()


def create_tables(scratch: list[type[models.Model]]) -> None:
    with connection.schema_editor() as editor:
        for model in scratch:
            editor.create_model(model)


@pytest.fixture
def dropped_afterwards(postgres: None) -> Iterator[None]:
    """A transaction=True test's inv_ tables, dropped afterwards (the flush ignores them)."""
    yield
    drop_tables_starting_with(PREFIX)


@pytest.fixture
def dbperf_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dbperf_indexes.py for tests.testapp declaring an index on Book, loaded as at startup.

    The app's directory is pointed at ``tmp_path`` for the load; the model's Meta and the
    loaded declarations are restored afterwards."""
    path = tmp_path / "dbperf_indexes.py"
    path.write_text(
        "from django.db import models\n"
        "\n"
        "INDEXES = {\n"
        '    "Book": [models.Index(fields=["pages"], name="dp_book_pages")],\n'
        "}\n"
    )
    monkeypatch.setattr(apps.get_app_config("testapp"), "path", str(tmp_path))
    meta = Book._meta
    monkeypatch.setattr(meta, "indexes", meta.indexes)
    monkeypatch.setitem(meta.original_attrs, "indexes", meta.original_attrs.get("indexes", []))
    monkeypatch.setattr(declarations, "_declared", {})
    monkeypatch.setattr(declarations, "_errors", [])
    declarations.load()
    assert declarations.errors() == []
    return path


# --- Tracing (both passes)


def test_foreign_key_index_traces_to_the_field(db: None) -> None:
    name = index_named("testapp_book", ["author_id"], unique=False)

    declaration = trace_index("testapp_book", name, ["author_id"])

    assert declaration.model == "testapp.Book"
    assert declaration.source == (
        "ForeignKey Book.author (Django indexes a foreign key unless db_index=False)"
    )
    assert declaration.location is not None
    assert declaration.location.startswith("tests/testapp/models.py:")
    assert line_at(declaration.location).strip().startswith("author = models.ForeignKey(")


def test_db_index_field_traces_to_the_abstract_parent_that_declares_it(db: None) -> None:
    name = index_named("django_session", ["expire_date"], unique=False)

    declaration = trace_index("django_session", name, ["expire_date"])

    assert declaration.model == "sessions.Session"
    assert declaration.source == "DateTimeField Session.expire_date (db_index=True)"
    # Session inherits the field from AbstractBaseSession: the line is in that class.
    assert "expire_date = models.DateTimeField(" in line_at(declaration.location)
    assert "base_session.py:" in str(declaration.location)


def test_unique_field_and_primary_key(db: None) -> None:
    unique = index_named("testapp_tag", ["name"], unique=True, primary_key=False)
    primary = index_named("testapp_tag", ["id"], primary_key=True)

    assert trace_index("testapp_tag", unique, ["name"]).source == (
        "CharField Tag.name (unique=True)"
    )
    pk = trace_index("testapp_tag", primary, ["id"])
    assert pk.model == "testapp.Tag"
    assert pk.source == "primary key Tag.id"
    # No `id = ...` line (an automatic primary key): the class statement.
    assert line_at(pk.location).startswith("class Tag(models.Model):")


def test_unique_together_and_meta_constraints(db: None) -> None:
    columns = ["content_type_id", "codename"]
    name = index_named("auth_permission", columns, unique=True)
    together = trace_index("auth_permission", name, columns)
    assert together.model == "auth.Permission"
    assert together.source == "Meta.unique_together ('content_type', 'codename')"
    assert "unique_together" in line_at(together.location)

    table = EventServer._meta.db_table
    constraint = trace_index(table, "scheduler_unique_event_server", ["event_id", "server_id"])
    assert constraint.model == "scheduler.EventServer"
    assert constraint.source == (
        "Meta.constraints entry 'scheduler_unique_event_server' (UniqueConstraint)"
    )
    assert '"scheduler_unique_event_server"' in line_at(constraint.location)


def test_many_to_many_table_traces_to_the_field(db: None) -> None:
    table = "testapp_book_tags"
    key = index_named(table, ["book_id"], unique=False)
    pair = index_named(table, ["book_id", "tag_id"], unique=True)

    by_key = trace_index(table, key, ["book_id"])
    by_pair = trace_index(table, pair, ["book_id", "tag_id"])

    assert by_key.model == by_pair.model == "testapp.Book"
    assert by_key.source == (
        "ManyToManyField Book.tags (Django's table testapp_book_tags: the index of its foreign "
        "key book_id)"
    )
    assert by_pair.source == (
        "ManyToManyField Book.tags (Django's table testapp_book_tags: its unique pair "
        "(book_id, tag_id))"
    )
    assert line_at(by_key.location).strip().startswith("tags = models.ManyToManyField(")


def test_meta_indexes_entry_by_name(db: None, scratch: list[type[models.Model]]) -> None:
    # The table does not exist: a named entry is found by its name alone.
    declaration = trace_index("inv_child", "inv_child_rank", ["rank"], models=scratch)

    assert declaration.model == "testapp.InvChild"
    assert declaration.source == "Meta.indexes entry 'inv_child_rank'"
    assert 'name="inv_child_rank"' in line_at(declaration.location)
    assert declaration.location is not None
    assert declaration.location.startswith("tests/test_indexes_inventory.py:")


def test_dbperf_indexes_entry_names_its_module(db: None, dbperf_module: Path) -> None:
    declaration = trace_index("testapp_book", "dp_book_pages", ["pages"])

    assert declaration == Declaration(
        "testapp.Book",
        "dbperf_indexes.py entry 'dp_book_pages' (tests.testapp.dbperf_indexes)",
        f"{dbperf_module}:4",
    )
    assert "dp_book_pages" in line_at(declaration.location)
    # load() added it to the model's Meta.indexes, as at startup.
    assert [index.name for index in Book._meta.indexes] == ["dp_book_pages"]


def test_index_no_model_declares(db: None) -> None:
    execute("CREATE INDEX inv_book_title ON testapp_book (title)")

    on_a_model = trace_index("testapp_book", "inv_book_title", ["title"])
    nowhere = trace_index("inv_no_such_table", "inv_no_such_index", ["a"])

    assert on_a_model.model == "testapp.Book"
    assert on_a_model.source == (
        "not declared by any model (created outside migrations? drop it or declare it)"
    )
    assert line_at(on_a_model.location).startswith("class Book(models.Model):")
    assert nowhere == Declaration(None, NOT_DECLARED, None)


def test_only_the_given_models_are_looked_in(db: None, scratch: list[type[models.Model]]) -> None:
    name = index_named("testapp_book", ["author_id"], unique=False)

    assert trace_index("testapp_book", name, ["author_id"], models=scratch).source == (NOT_DECLARED)


# --- Refusals


def test_unknown_kinds_are_refused(db: None) -> None:
    with pytest.raises(ValueError, match=r"Unknown index problem kind\(s\) \['unsued'\]"):
        index_problems(kinds={"unused", "unsued"})


def test_sqlite_is_refused_with_what_to_do(db: None) -> None:
    if connection.vendor == "postgresql":
        pytest.skip("checks the SQLite pass: the default database here is PostgreSQL")
    with pytest.raises(InventoryUnavailable) as raised:
        index_problems()
    assert str(raised.value) == (
        "The index inventory needs PostgreSQL; the database 'default' is sqlite. "
        "Pass using= the alias of a PostgreSQL database."
    )


# --- PostgreSQL


def test_pattern_ops_twin_traces_to_the_field(postgres: None) -> None:
    (name,) = [
        name
        for (name,) in execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'testapp_tag' AND indexdef LIKE %s",
            ["%varchar_pattern_ops%"],
        )
    ]

    declaration = trace_index("testapp_tag", name, ["name"])

    assert declaration.model == "testapp.Tag"
    assert declaration.source == (
        "CharField Tag.name (unique=True: the extra index Django adds on PostgreSQL for LIKE "
        "queries)"
    )
    session_like = index_named("django_session", ["session_key"], unique=False)
    assert trace_index("django_session", session_like, ["session_key"]).source.startswith(
        "CharField Session.session_key (primary_key=True: the extra index"
    )


def test_unused_indexes_traced_with_advice(postgres: None, dbperf_module: Path) -> None:
    execute("CREATE INDEX dp_book_pages ON testapp_book (pages)")
    execute("CREATE INDEX inv_book_title ON testapp_book (title)")
    (stats_reset,) = execute(
        "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()"
    )[0]

    found = {
        problem.index: problem
        for problem in problems_for(
            index_problems(kinds={"unused"}, min_scans=EVERY_INDEX), "testapp_book"
        )
    }

    author_index = index_named("testapp_book", ["author_id"], unique=False)
    primary = index_named("testapp_book", ["id"], primary_key=True)
    assert primary not in found  # backs the primary key constraint
    author = found[author_index]
    assert author.kind == "unused"
    assert author.definition is not None and author.definition.endswith("(author_id)")
    assert author.size_bytes is not None and author.size_bytes > 0
    assert author.scans is not None and author.scans >= 0
    since = (
        "the server's statistics began (they were never reset)"
        if stats_reset is None
        else "the statistics were reset at "
    )
    assert author.reason.startswith(f"{author_index} was scanned {author.scans} time(s) since")
    assert since in author.reason
    assert author.reason.endswith("yet every write to testapp_book updates it.")
    assert author.advice == (
        "add db_index=False to Book.author and run makemigrations (deletes of Author rows then "
        "read this table to find the rows pointing at them: keep it if they happen). Scans are "
        "counted per server: check replicas first."
    )
    assert author.declaration.source.startswith("ForeignKey Book.author")

    declared = found["dp_book_pages"]
    assert declared.declaration.source == (
        "dbperf_indexes.py entry 'dp_book_pages' (tests.testapp.dbperf_indexes)"
    )
    assert declared.advice.startswith(
        "remove models.Index 'dp_book_pages' from tests.testapp.dbperf_indexes.INDEXES['Book'] "
        "(and list it in REJECTED so it is not suggested again), then run makemigrations"
    )
    assert found["inv_book_title"].declaration.source == NOT_DECLARED
    assert found["inv_book_title"].advice.startswith(
        "no model declares it: DROP INDEX CONCURRENTLY inv_book_title"
    )

    # Unique indexes are never unused: dropping one loses a rule.
    tag_unique = index_named("testapp_tag", ["name"], unique=True, primary_key=False)
    everything = index_problems(kinds={"unused"}, min_scans=EVERY_INDEX)
    assert tag_unique not in [problem.index for problem in everything]
    assert {problem.kind for problem in everything} == {"unused"}


@pytest.mark.django_db(transaction=True)
def test_unused_means_scanned_at_most_min_scans_times(
    dropped_afterwards: None, scratch: list[type[models.Model]]
) -> None:
    create_tables(scratch)
    execute("DROP INDEX inv_child_rank_code")  # inv_child_rank is then the one index on rank
    execute("SET enable_seqscan = off")
    try:
        for _ in range(3):
            execute("SELECT count(*) FROM inv_child WHERE rank = 1")
    finally:
        execute("RESET enable_seqscan")
    execute("SELECT pg_stat_force_next_flush()")

    def unused(min_scans: int) -> list[IndexProblem]:
        problems = index_problems(kinds={"unused"}, min_scans=min_scans, models=scratch)
        return [problem for problem in problems if problem.index == "inv_child_rank"]

    # This session's counters reach the statistics once it is idle: wait for them.
    for _ in range(300):
        if not unused(2):
            break
        execute("SELECT pg_sleep(0.1)")

    assert unused(2) == []
    (rank,) = unused(3)
    assert rank.index == "inv_child_rank"
    assert rank.scans == 3
    assert rank.reason.startswith("inv_child_rank was scanned 3 time(s) since ")


def test_redundant_indexes_traced_to_what_to_remove(
    postgres: None, scratch: list[type[models.Model]]
) -> None:
    create_tables(scratch)

    problems = index_problems(kinds={"redundant"}, models=[*scratch, Book, EventServer])

    (rank,) = problems_for(problems, "inv_child")
    assert rank.kind == "redundant"
    assert rank.index == "inv_child_rank"
    assert rank.definition == "CREATE INDEX inv_child_rank ON public.inv_child USING btree (rank)"
    assert rank.scans == 0
    assert rank.reason == (
        "inv_child_rank_code serves every query inv_child_rank serves: CREATE INDEX "
        "inv_child_rank_code ON public.inv_child USING btree (rank, code)."
    )
    assert rank.advice == (
        "remove models.Index 'inv_child_rank' from InvChild.Meta.indexes and run makemigrations"
    )
    assert rank.declaration.source == "Meta.indexes entry 'inv_child_rank'"

    # Django's own: the foreign key's index is a prefix of the unique constraint's.
    (event,) = problems_for(problems, EventServer._meta.db_table)
    assert event.declaration.source == (
        "ForeignKey EventServer.event (Django indexes a foreign key unless db_index=False)"
    )
    assert event.advice.startswith("add db_index=False to EventServer.event and run makemigrations")
    assert "scheduler_unique_event_server" in event.reason
    (tags,) = problems_for(problems, "testapp_book_tags")
    assert tags.declaration.model == "testapp.Book"
    assert tags.declaration.source.startswith("ManyToManyField Book.tags")
    assert tags.advice.startswith("it comes with the many-to-many field Book.tags")


def test_redundant_twins_of_one_declaration_say_which_to_keep(postgres: None) -> None:
    execute("CREATE INDEX zz_inv_book_author ON testapp_book (author_id)")

    (twin,) = [
        problem
        for problem in index_problems(kinds={"redundant"})
        if problem.index == "zz_inv_book_author"
    ]

    assert twin.declaration.source.startswith("ForeignKey Book.author")
    assert twin.advice.startswith("both zz_inv_book_author and ")
    assert twin.advice.endswith(
        "keep the one its migration created and DROP INDEX CONCURRENTLY the other"
    )


@pytest.mark.django_db(transaction=True)
def test_invalid_index_traced_to_its_constraint(
    dropped_afterwards: None, scratch: list[type[models.Model]]
) -> None:
    create_tables(scratch)
    # A unique constraint built concurrently (as a partial one would be) over duplicates.
    execute("ALTER TABLE inv_child DROP CONSTRAINT inv_child_code_uniq")
    execute("INSERT INTO inv_parent (id) VALUES (1)")
    execute("INSERT INTO inv_child (parent_id, code, rank) VALUES (1, 'a', 0), (1, 'a', 0)")
    with pytest.raises(IntegrityError):
        execute("CREATE UNIQUE INDEX CONCURRENTLY inv_child_code_uniq ON inv_child (code)")
    with pytest.raises(IntegrityError):
        execute("CREATE UNIQUE INDEX CONCURRENTLY inv_stray ON inv_child (code)")

    problems = problems_for(index_problems(kinds={"invalid"}, models=scratch), "inv_child")

    declared, stray = problems
    assert declared.kind == "invalid"
    assert declared.index == "inv_child_code_uniq"
    assert declared.definition == (
        "CREATE UNIQUE INDEX inv_child_code_uniq ON public.inv_child USING btree (code)"
    )
    assert declared.reason.startswith("inv_child_code_uniq is INVALID")
    assert declared.advice == (
        "DROP INDEX CONCURRENTLY public.inv_child_code_uniq, then run migrate again (a failed "
        "AddIndexConcurrently is not recorded as applied), or rebuild it in place with REINDEX "
        "INDEX CONCURRENTLY public.inv_child_code_uniq; it is UNIQUE: remove the duplicate rows "
        "first or the build fails again"
    )
    assert declared.declaration.source == (
        "Meta.constraints entry 'inv_child_code_uniq' (UniqueConstraint)"
    )
    assert stray.index == "inv_stray"
    assert stray.advice == "DROP INDEX CONCURRENTLY public.inv_stray (no model declares it)"


def test_unindexed_foreign_keys_on_large_tables(
    postgres: None, scratch: list[type[models.Model]]
) -> None:
    create_tables(scratch)
    # other leads an index; a partial index on parent_id serves only some of its lookups.
    execute("CREATE INDEX inv_child_other_rank ON inv_child (other_id, rank)")
    execute("CREATE INDEX inv_child_parent_some ON inv_child (parent_id) WHERE rank > 100")
    execute("INSERT INTO inv_parent (id) SELECT generate_series(1, 10)")
    execute(
        "INSERT INTO inv_child (parent_id, other_id, loose_id, code, rank) "
        "SELECT 1 + mod(g, 10), 1, 1, g::text, g FROM generate_series(1, 200) AS g"
    )
    # owner declares its index, but the database lost it.
    execute(f"DROP INDEX {index_named('inv_child', ['owner_id'])}")
    execute("ANALYZE inv_parent, inv_child")

    lost, problem = index_problems(kinds={"unindexed_foreign_key"}, min_rows=200, models=scratch)

    # loose: DO_NOTHING without a database constraint, nothing looks its rows up.
    assert [problem] == [
        IndexProblem(
            kind="unindexed_foreign_key",
            table="inv_child",
            index=None,
            definition=None,
            size_bytes=None,
            scans=None,
            reason=(
                "Deleting InvParent rows looks up InvChild rows by parent_id (on_delete=CASCADE "
                "and the foreign key check), and no index leads with parent_id: each such "
                "delete reads all ~200 rows of inv_child."
            ),
            advice=(
                "set db_index=True on InvChild.parent (or add models.Index(fields=['parent'], "
                "name=...) to InvChild.Meta.indexes) and run makemigrations; on a large table, "
                "build it with AddIndexConcurrently"
            ),
            declaration=problem.declaration,
        )
    ]
    declaration = problem.declaration
    assert declaration.model == "testapp.InvChild"
    assert declaration.source == "ForeignKey InvChild.parent (db_index=False)"
    assert line_at(declaration.location).strip() == "parent = models.ForeignKey("
    assert lost.declaration.source == "ForeignKey InvChild.owner (db_index=True, but no such index)"
    assert lost.advice == (
        "InvChild.owner declares an index but the database has none: run migrate, or find the "
        "migration or the person that dropped it"
    )
    assert index_problems(kinds={"unindexed_foreign_key"}, min_rows=201, models=scratch) == []
    # Django never creates an unmanaged model's indexes: the advice says where to.
    unmanaged = make_scratch_models(is_managed=False)
    _, unmanaged_problem = index_problems(
        kinds={"unindexed_foreign_key"}, min_rows=200, models=unmanaged
    )
    assert unmanaged_problem.advice == (
        "testapp.InvChild has managed=False: CREATE INDEX CONCURRENTLY ON inv_child (parent_id) "
        "where the table is maintained"
    )
