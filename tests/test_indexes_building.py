"""Concurrent index builds during ``migrate`` survive lock timeouts and INVALID leftovers, and
``makemigrations`` writes declared indexes as Django's ``AddIndexConcurrently`` where it applies.

Builds run on real PostgreSQL (``python -m tests.servers -- pytest``); the parsing, the
wrapper's pass-through and the SQLite side of ``makemigrations`` run in the SQLite pass too.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.postgres.operations import AddIndexConcurrently
from django.core.management import call_command
from django.db import DatabaseError, connection, models, transaction
from django.db.migrations.state import ProjectState
from django.db.models.signals import pre_migrate
from django.test import override_settings

from django_dbperf.checks import check_settings
from django_dbperf.conf import get_config
from django_dbperf.indexes.building import (
    IndexBuildError,
    Policy,
    execute_wrapper,
    install,
    parse,
    safe_builds,
)

REPO = Path(__file__).resolve().parent.parent
TABLE = "dbperf_build_probe"
INDEX = "dbperf_build_probe_value"
CREATE = f'CREATE INDEX CONCURRENTLY "{INDEX}" ON "{TABLE}" ("value")'
CREATE_UNIQUE = f'CREATE UNIQUE INDEX CONCURRENTLY "{INDEX}" ON "{TABLE}" ("value")'

# Short waits so a test takes seconds; many retries so a slow machine still gets through.
FAST = {"LOCK_TIMEOUT_MS": 300, "RETRY_BACKOFF_S": 0.2, "MAX_BACKOFF_S": 0.5, "BUILD_RETRIES": 30}

transactional = pytest.mark.django_db(transaction=True)


def run(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []


def index_state(name: str = INDEX) -> bool | None:
    """True: valid, False: INVALID, None: no such index."""
    rows = run(
        "SELECT x.indisvalid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid "
        "WHERE c.relname = %s",
        [name],
    )
    return rows[0][0] if rows else None


@pytest.fixture
def probe(postgres: None) -> Iterator[str]:
    """A scratch table of this file's own (DDL outside any transaction: CONCURRENTLY)."""
    run(f'DROP TABLE IF EXISTS "{TABLE}"')
    run(f'CREATE TABLE "{TABLE}" (id bigserial PRIMARY KEY, value integer NOT NULL)')
    run(f'INSERT INTO "{TABLE}" (value) SELECT g FROM generate_series(1, 100) g')
    yield TABLE
    run(f'DROP TABLE IF EXISTS "{TABLE}"')


@contextmanager
def writer_holding(hold_s: float | None = None) -> Iterator[threading.Event]:
    """Another connection (a thread's own) inserts into the table and keeps its transaction open
    for ``hold_s`` seconds, or until the yielded event is set."""
    inserted, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def hold() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f'INSERT INTO "{TABLE}" (value) VALUES (0)')
                inserted.set()
                release.wait(timeout=60)
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)
        finally:
            inserted.set()
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert inserted.wait(timeout=30)
    timer = threading.Timer(hold_s, release.set) if hold_s is not None else None
    if timer:
        timer.start()
    try:
        yield release
    finally:
        release.set()
        if timer:
            timer.cancel()
        thread.join(timeout=60)
        assert not failures, failures


def messages(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "django_dbperf.indexes")


# -- The statement, read and passed through (both passes) ------------------------------------


@pytest.mark.parametrize(
    ("sql", "name", "table"),
    [
        (CREATE, INDEX, f'"{TABLE}"'),
        (CREATE_UNIQUE, INDEX, f'"{TABLE}"'),
        ("create index concurrently My_Idx on public.t (a)", "my_idx", "public.t"),
        (
            'CREATE INDEX CONCURRENTLY "Mixed""Case" ON ONLY "s"."t" USING gin (a)',
            'Mixed"Case',
            '"s"."t"',
        ),
        ('  CREATE INDEX CONCURRENTLY IF NOT EXISTS "i" ON "t" (a)', "i", '"t"'),
    ],
)
def test_parse_reads_the_name_and_table(sql: str, name: str, table: str) -> None:
    build = parse(sql)
    assert build is not None
    assert (build.name, build.table) == (name, table)
    assert re.search(r"CONCURRENTLY\s+IF NOT EXISTS\s", build.idempotent_sql, re.IGNORECASE)
    assert build.idempotent_sql.count("IF NOT EXISTS") == 1


@pytest.mark.parametrize(
    "sql",
    [
        f'CREATE INDEX "{INDEX}" ON "{TABLE}" ("value")',  # not concurrent: Django's AddIndex
        f'CREATE INDEX CONCURRENTLY ON "{TABLE}" ("value")',  # unnamed: no name can clash
        'SELECT "value" FROM "dbperf_build_probe"',
        'DROP INDEX CONCURRENTLY IF EXISTS "i"',
    ],
)
def test_other_statements_pass_through_untouched(sql: str) -> None:
    calls: list[tuple[Any, ...]] = []

    def execute(*args: Any) -> str:
        calls.append(args)
        return "result"

    context = {"connection": connection, "cursor": None}
    assert parse(sql) is None
    assert execute_wrapper(execute, sql, ["p"], False, context) == "result"
    assert calls == [(sql, ["p"], False, context)]


def test_executemany_passes_through_untouched() -> None:
    calls: list[tuple[Any, ...]] = []
    execute_wrapper(lambda *args: calls.append(args), CREATE, [[1]], True, {})
    assert calls == [(CREATE, [[1]], True, {})]


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = Policy(lock_timeout_ms=100, retries=6, backoff_s=2.0, max_backoff_s=10.0)
    assert [policy.delay(retry) for retry in range(1, 6)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert policy.attempts == 7


def test_settings_have_documented_defaults() -> None:
    options = get_config()["INDEXES"]
    assert options["CONCURRENTLY"] == "auto"
    assert (options["LOCK_TIMEOUT_MS"], options["BUILD_RETRIES"]) == (5000, 5)
    assert (options["RETRY_BACKOFF_S"], options["MAX_BACKOFF_S"]) == (2.0, 60.0)


@pytest.mark.django_db
def test_e015_concurrently_true_needs_postgresql() -> None:
    with override_settings(DBPERF={"INDEXES": {"CONCURRENTLY": True}}):
        errors = check_settings()
    if connection.vendor == "postgresql":
        assert errors == []
        return
    assert [error.id for error in errors] == ["dbperf.E015"]
    assert """DBPERF["INDEXES"]["CONCURRENTLY"] is True, but the database 'default'""" in (
        errors[0].msg
    )
    assert '"auto"' in (errors[0].hint or "")


def test_e015_max_backoff_below_the_first_backoff() -> None:
    with override_settings(DBPERF={"INDEXES": {"RETRY_BACKOFF_S": 5, "MAX_BACKOFF_S": 1}}):
        (error,) = check_settings()
    assert error.id == "dbperf.E015"
    assert 'DBPERF["INDEXES"]["MAX_BACKOFF_S"] is 1' in error.msg


def test_concurrently_accepts_only_auto_true_false() -> None:
    with override_settings(DBPERF={"INDEXES": {"CONCURRENTLY": "yes"}}):
        (error,) = check_settings()
    assert error.id == "dbperf.E005"


@pytest.mark.django_db
def test_not_installed_off_postgresql() -> None:
    if connection.vendor == "postgresql":
        pytest.skip("the SQLite pass checks that nothing is installed off PostgreSQL")
    assert install("default") is False
    with safe_builds():
        assert execute_wrapper not in connection.execute_wrappers


@transactional
def test_migrate_installs_the_wrapper_and_removes_it() -> None:
    seen: list[bool] = []

    def look(using: str, **kwargs: object) -> None:
        seen.append(execute_wrapper in connection.execute_wrappers)

    # Connected after the app's receiver, so it runs after it.
    pre_migrate.connect(look, dispatch_uid="test_indexes_building.look")
    try:
        call_command("migrate", verbosity=0)
    finally:
        pre_migrate.disconnect(dispatch_uid="test_indexes_building.look")
    assert seen and set(seen) == {connection.vendor == "postgresql"}
    assert execute_wrapper not in connection.execute_wrappers


# -- Builds on PostgreSQL ----------------------------------------------------------------------


@transactional
def test_a_build_interrupted_by_a_lock_timeout_is_retried_and_ends_valid(
    probe: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="django_dbperf.indexes")
    with override_settings(DBPERF={"INDEXES": FAST}), writer_holding(hold_s=4.0), safe_builds():
        run(CREATE)
    assert index_state() is True
    log = messages(caplog)
    assert "retrying in" in log  # the first attempt gave up waiting for the writer
    assert "dropping the INVALID index" in log


@transactional
def test_an_invalid_leftover_of_the_same_name_is_dropped_and_rebuilt(
    probe: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="django_dbperf.indexes")
    run(f'INSERT INTO "{TABLE}" (value) VALUES (1)')  # a duplicate: the unique build fails
    with pytest.raises(DatabaseError):
        run(CREATE_UNIQUE)
    assert index_state() is False
    run(f'DELETE FROM "{TABLE}" WHERE id > 100')
    with pytest.raises(DatabaseError, match="already exists"):
        run(CREATE_UNIQUE)  # what Django's own operation does on a retry

    with safe_builds():
        run(CREATE_UNIQUE)
    assert index_state() is True
    assert "dropping the INVALID index" in messages(caplog)
    with pytest.raises(DatabaseError, match="duplicate key"), transaction.atomic():
        run(f'INSERT INTO "{TABLE}" (value) VALUES (1)')


@transactional
def test_applying_twice_keeps_the_valid_index(probe: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="django_dbperf.indexes")
    with safe_builds():
        run(CREATE)
        oid = run("SELECT %s::regclass::oid", [INDEX])
        run(CREATE)
    assert index_state() is True
    assert run("SELECT %s::regclass::oid", [INDEX]) == oid  # not rebuilt
    assert "already exists and is valid" in messages(caplog)


@transactional
def test_add_index_concurrently_operation_through_a_schema_editor(postgres: None) -> None:
    name = "dbperf_probe_pub_name"
    operation = AddIndexConcurrently("Publisher", models.Index(fields=["name"], name=name))
    before = ProjectState.from_apps(apps)
    after = before.clone()
    operation.state_forwards("testapp", after)
    run("INSERT INTO testapp_publisher (name) VALUES ('Same'), ('Same')")
    try:
        # A failed unique build of the same name, as an interrupted earlier attempt leaves.
        with pytest.raises(DatabaseError):
            run(f'CREATE UNIQUE INDEX CONCURRENTLY "{name}" ON testapp_publisher (name)')
        assert index_state(name) is False
        with safe_builds(), connection.schema_editor(atomic=False) as editor:
            operation.database_forwards("testapp", editor, before, after)
        assert index_state(name) is True
    finally:
        run(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')


@transactional
def test_retries_exhausted_name_the_index_and_restore_lock_timeout(probe: str) -> None:
    run("SET lock_timeout = '4321ms'")
    try:
        options = {**FAST, "LOCK_TIMEOUT_MS": 100, "BUILD_RETRIES": 1, "RETRY_BACKOFF_S": 0.05}
        with override_settings(DBPERF={"INDEXES": options}), writer_holding(), safe_builds():
            with pytest.raises(IndexBuildError) as failure:
                run(CREATE)
            assert run("SHOW lock_timeout") == [("4321ms",)]
        message = str(failure.value)
        assert f"Could not build the index {INDEX!r}" in message
        assert "2 tries" in message
        assert "pg_stat_activity" in message
        # Once the long transaction is gone, migrate again succeeds despite any leftover.
        with safe_builds():
            run(CREATE)
        assert index_state() is True
        assert run("SHOW lock_timeout") == [("4321ms",)]
    finally:
        run("RESET lock_timeout")


@transactional
def test_a_name_taken_by_another_relation_still_fails(probe: str) -> None:
    run('CREATE TABLE "dbperf_build_probe_taken" (id integer)')
    try:
        taken = f'CREATE INDEX CONCURRENTLY "dbperf_build_probe_taken" ON "{TABLE}" ("value")'
        with safe_builds(), pytest.raises(DatabaseError, match="already exists"):
            run(taken)  # not skipped as "already built": it is a table, not this index
    finally:
        run('DROP TABLE "dbperf_build_probe_taken"')


# -- makemigrations, the real command in a project of its own ----------------------------------

MODELS = """
from django.db import models


class Event(models.Model):
    name = models.CharField(max_length=50)
    owner = models.IntegerField(default=0)
{extra}
"""

DECLARED = """
from django.db import models

INDEXES = {"Event": [models.Index(fields=["owner", "name"], name="dp_event_owner_probe")]}
"""

SETTINGS = """
import json
import os

from example_project.config import database_from_url

SECRET_KEY = "dbperf-probe"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_dbperf",
    "dbperf_probeapp",
]
_url = os.environ.get("DBPERF_TEST_DATABASE_URL")
if _url:
    DATABASES = {"default": {**database_from_url(_url), "NAME": os.environ["PROBE_DATABASE"]}}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "probe.sqlite3"}}
DBPERF = json.loads(os.environ.get("PROBE_DBPERF", "{}"))
SILENCED_SYSTEM_CHECKS = json.loads(os.environ.get("PROBE_SILENCED", "[]"))
"""


@dataclass
class ProbeProject:
    root: Path
    database: str  # PostgreSQL: a database of its own; empty on SQLite
    dbperf: dict[str, Any]
    silenced: tuple[str, ...] = ()

    @property
    def app(self) -> Path:
        return self.root / "dbperf_probeapp"

    def write_models(self, extra: str = "") -> None:
        (self.app / "models.py").write_text(MODELS.format(extra=extra))

    def declare_index(self) -> None:
        (self.app / "dbperf_indexes.py").write_text(DECLARED)

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        paths = [str(self.root), str(REPO), os.environ.get("PYTHONPATH", "")]
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, paths)),
            "DJANGO_SETTINGS_MODULE": "probe_settings",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PROBE_DATABASE": self.database,
            "PROBE_DBPERF": json.dumps(self.dbperf),
            "PROBE_SILENCED": json.dumps(list(self.silenced)),
        }
        result = subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=self.root, env=environment, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"{args} exited {result.returncode}:\n{result.stdout}\n"
                                 f"{result.stderr}")  # fmt: skip
        return result

    def migration(self, prefix: str) -> str:
        (path,) = (self.app / "migrations").glob(f"{prefix}_*.py")
        return path.read_text()

    def migrations(self) -> list[str]:
        return sorted(path.stem for path in (self.app / "migrations").glob("0*.py"))


@pytest.fixture
def project_database(transactional_db: None) -> Iterator[str]:
    """On PostgreSQL, a fresh database for the subprocess (dropped after); else ""."""
    if connection.vendor != "postgresql":
        yield ""
        return
    name = f"dbperf_probe_{uuid.uuid4().hex[:12]}"
    run(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def make_project(tmp_path: Path, project_database: str) -> Any:
    def make(dbperf: dict[str, Any] | None = None, silenced: tuple[str, ...] = ()) -> ProbeProject:
        project = ProbeProject(tmp_path, project_database, dbperf or {}, silenced)
        (project.app / "migrations").mkdir(parents=True)
        (project.app / "__init__.py").write_text("")
        (project.app / "migrations" / "__init__.py").write_text("")
        (tmp_path / "probe_settings.py").write_text(textwrap.dedent(SETTINGS))
        project.write_models()
        project.manage("makemigrations", "dbperf_probeapp")  # 0001_initial, no declared index
        return project

    return make


def imported_modules(migration: str) -> set[str]:
    found = re.findall(r"^(?:from|import)\s+([\w.]+)", migration, re.MULTILINE)
    return set(found)


def only_django_imports(migration: str) -> bool:
    return all(name == "django" or name.startswith("django.") for name in
               imported_modules(migration))  # fmt: skip


@transactional
def test_makemigrations_writes_a_declared_index_concurrently_where_it_applies(
    make_project: Any,
) -> None:
    project = make_project()
    project.declare_index()
    result = project.manage("makemigrations", "dbperf_probeapp")
    migration = project.migration("0002")
    assert only_django_imports(migration)
    if connection.vendor != "postgresql":
        assert "migrations.AddIndex(" in migration  # "auto": plain AddIndex off PostgreSQL
        assert "atomic = False" not in migration
        assert "dbperf:" not in result.stdout
        return
    assert "django.contrib.postgres.operations.AddIndexConcurrently(" in migration
    assert "migrations.AddIndex(" not in migration
    assert "atomic = False" in migration
    assert re.search(r"dbperf: 0002_\w+ builds 1 index concurrently \(non-atomic\)", result.stdout)

    project.manage("migrate", "--verbosity=0")
    assert project_index_valid(project) is True
    # Applied twice (after a --fake rollback): the valid index is kept, migrate succeeds.
    project.manage("migrate", "dbperf_probeapp", "0001", "--fake", "--verbosity=0")
    project.manage("migrate", "dbperf_probeapp", "--verbosity=0")
    assert project_index_valid(project) is True


@transactional
def test_makemigrations_moves_declared_indexes_out_of_a_mixed_migration(
    make_project: Any,
) -> None:
    # CONCURRENTLY=True on SQLite is dbperf.E015; silenced here to see the split itself.
    project = make_project({"INDEXES": {"CONCURRENTLY": True}}, silenced=("dbperf.E015",))
    project.write_models(extra="    note = models.TextField(default='')")
    project.declare_index()
    result = project.manage("makemigrations", "dbperf_probeapp")
    # The first is named for what it still holds; the second builds the index.
    assert project.migrations()[1:] == ["0002_event_note", "0003_dbperf_indexes"]
    first, second = project.migration("0002"), project.migration("0003")
    assert "migrations.AddField(" in first
    assert "AddIndex" not in first
    assert "atomic = False" not in first
    assert "django.contrib.postgres.operations.AddIndexConcurrently(" in second
    assert "atomic = False" in second
    assert "('dbperf_probeapp', '0002_event_note')" in second
    assert only_django_imports(first) and only_django_imports(second)
    assert "dbperf: 0003_dbperf_indexes builds 1 index concurrently" in result.stdout
    if connection.vendor == "postgresql":
        project.manage("migrate", "--verbosity=0")
        assert project_index_valid(project) is True


@transactional
def test_makemigrations_update_keeps_the_builds_out_of_the_updated_migration(
    make_project: Any,
) -> None:
    project = make_project({"INDEXES": {"CONCURRENTLY": True}}, silenced=("dbperf.E015",))
    project.write_models(extra="    note = models.TextField(default='')")
    project.manage("makemigrations", "dbperf_probeapp")
    assert project.migrations()[1:] == ["0002_event_note"]
    project.declare_index()
    project.manage("makemigrations", "dbperf_probeapp", "--update")
    (updated, built) = project.migrations()[1:]
    assert built == "0003_dbperf_indexes"
    assert "migrations.AddField(" in project.migration("0002")
    assert "AddIndex" not in project.migration("0002")
    assert f"('dbperf_probeapp', '{updated}')" in project.migration("0003")
    assert "atomic = False" in project.migration("0003")


@transactional
def test_makemigrations_with_concurrently_false_writes_plain_add_index(
    make_project: Any,
) -> None:
    project = make_project({"INDEXES": {"CONCURRENTLY": False}})
    project.write_models(extra="    note = models.TextField(default='')")
    project.declare_index()
    project.manage("makemigrations", "dbperf_probeapp")
    assert len(project.migrations()) == 2
    migration = project.migration("0002")
    assert "migrations.AddIndex(" in migration
    assert "AddIndexConcurrently" not in migration
    assert "atomic = False" not in migration


@transactional
def test_makemigrations_refuses_concurrently_true_off_postgresql(make_project: Any) -> None:
    if connection.vendor == "postgresql":
        pytest.skip("the SQLite pass checks dbperf.E015 stopping makemigrations")
    project = make_project()
    project.dbperf = {"INDEXES": {"CONCURRENTLY": True}}
    result = project.manage("makemigrations", "dbperf_probeapp", check=False)
    assert result.returncode != 0
    assert "dbperf.E015" in result.stderr


def project_index_valid(project: ProbeProject) -> bool | None:
    import psycopg

    params = {**connection.get_connection_params(), "dbname": project.database}
    with psycopg.connect(**params) as other, other.cursor() as cursor:
        cursor.execute(
            "SELECT x.indisvalid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid "
            "WHERE c.relname = 'dp_event_owner_probe'"
        )
        row = cursor.fetchone()
    return bool(row[0]) if row else None
