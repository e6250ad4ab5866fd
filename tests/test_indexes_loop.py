"""The index advisor's whole loop on real PostgreSQL with hypopg, as a person runs it: requests
through the middleware -> dbperf_flush -> dbperf_indexes suggest --write -> makemigrations ->
migrate -> dbperf_indexes verify, in a throwaway project (tests/advisor_project.py) with a
200,000-row table and a database of its own.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.advisor_project import Project, fill, make_project
from tests.conftest import missing


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    url = os.environ.get("DBPERF_TEST_DATABASE_URL")
    if not url:
        pytest.skip("needs PostgreSQL: run under `python -m tests.servers`")
    import psycopg

    name = f"dbperf_loop_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as admin:
        if not admin.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg'"
        ).fetchone():
            missing("needs the hypopg extension (Debian: apt-get install postgresql-15-hypopg)")
        admin.execute(f"CREATE DATABASE {name}")
    base = url.rsplit("/", 1)[0]
    built = make_project(tmp_path_factory.mktemp("loop"), f"{base}/{name}")
    try:
        built.manage("makemigrations", "shop", "-v0")
        built.manage("migrate", "-v0")
        with psycopg.connect(built.database_url, autocommit=True) as connection:
            fill(connection.cursor())
            connection.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
        built.drive(rounds=2)
        yield built
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def suggest(project: Project, *args: str) -> dict:
    return json.loads(project.manage("dbperf_indexes", "suggest", "--format", "json", *args).stdout)


def test_the_loop_suggests_writes_migrates_and_verifies(project: Project) -> None:
    advice = suggest(project)
    assert advice["method"] == "hypopg"
    (suggestion,) = advice["suggestions"]
    # The filtered, sorted page: the customer's live orders, newest first, as one partial index.
    assert suggestion["model"] == "Order"
    assert suggestion["fields"] == ["customer", "-placed_at"]
    assert suggestion["condition"] == "(AND: ('deleted_at__isnull', True))"
    assert suggestion["verified"] is True
    (shape,) = suggestion["shapes"]
    assert shape["saving_pct"] >= 50
    assert shape["callsites"] == ["shop/views.py:13"]  # the line that evaluates the orders
    assert [view["view"] for view in suggestion["views"]] == ["recent"]
    # The statement that reads most columns of every row gets none, and says why.
    reasons = [item["reason"] for item in advice["skipped"] if "MAX(" in item["sql"]]
    assert reasons and all("no index saves 50%" in reason for reason in reasons)

    written = project.manage("dbperf_indexes", "suggest", "--write").stdout
    assert "1 added, 0 kept" in written, written
    module = (project.app / "dbperf_indexes.py").read_text()
    assert suggestion["name"] in module and '"fingerprint": "' + shape["fingerprint"] in module

    made = project.manage("makemigrations", "shop").stdout
    assert "builds 1 index concurrently" in made
    migration = sorted((project.app / "migrations").glob("0002_*.py"))[0].read_text()
    assert "AddIndexConcurrently" in migration and "atomic = False" in migration
    assert "django_dbperf" not in migration  # only Django's own operations
    project.manage("migrate", "shop")
    # Nothing left to do: makemigrations sees no change.
    assert "No changes detected" in project.manage("makemigrations", "shop", "--check",
                                                   "--dry-run", check=False).stdout  # fmt: skip

    verified = project.manage("dbperf_indexes", "verify", "--app", "shop")
    assert f"ok   shop.Order {suggestion['name']} (dbperf)" in verified.stdout
    assert "uses it" in verified.stdout

    # Suggesting again: the built index serves the shape, so nothing new.
    assert suggest(project)["suggestions"] == []


def test_verify_fails_when_a_declared_index_is_missing(project: Project) -> None:
    import psycopg

    module = project.app / "dbperf_indexes.py"
    if not module.exists():
        pytest.skip("runs after the loop test wrote the module")
    name = next(line.split("name='")[1].split("'")[0] for line in module.read_text().splitlines()
                if "name='" in line)  # fmt: skip
    with psycopg.connect(project.database_url, autocommit=True) as connection:
        connection.execute(f'DROP INDEX IF EXISTS "{name}"')
    try:
        result = project.manage("dbperf_indexes", "verify", "--app", "shop", check=False)
        assert result.returncode == 1
        assert f"FAIL shop.Order {name} (dbperf): does not exist" in result.stdout
    finally:
        project.manage("migrate", "shop", "0001", "-v0")
        project.manage("migrate", "shop", "-v0")
    assert project.manage("dbperf_indexes", "verify", "--app", "shop").returncode == 0


def test_unused_reports_the_unindexed_foreign_key_traced_to_its_field(project: Project) -> None:
    result = json.loads(
        project.manage("dbperf_indexes", "unused", "--app", "shop", "--format", "json").stdout
    )
    kinds = {(item["kind"], item["table"]) for item in result}
    assert ("unindexed_foreign_key", "shop_order") in kinds
    (foreign,) = [item for item in result if item["kind"] == "unindexed_foreign_key"]
    assert "Order.customer" in foreign["declaration"]["source"]
    assert Path(foreign["declaration"]["location"].split(":")[0]).name == "models.py"


def test_the_demo_runs_the_loop_on_a_scratch_copy_of_the_example_project(tmp_path: Path) -> None:
    """``make demo``'s last step, on SQLite (no server needed): the suggestion is written,
    migrated and verified in a copy; the example project itself is not changed."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("REDIS_URL", None)

    def manage(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=repo, env=env, capture_output=True,
            text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    manage("migrate", "-v0")
    manage("seed_demo", "--events", "400", "--reset")
    output = manage("demo_indexes")
    assert "dbperf_indexes suggest --app scheduler --write" in output
    assert "scheduler_joblog (level, created_at DESC, id DESC)" in output
    assert "AddIndex" in output or "Create index dp_joblog_level_" in output
    assert "0 failed" in output and "uses it" in output
    assert "The logs page's query (?level=error)" in output
    scheduler = repo / "example_project" / "scheduler"
    assert not (scheduler / "dbperf_indexes.py").exists()
    assert sorted(path.name for path in (scheduler / "migrations").glob("0*.py")) == [
        "0001_initial.py"
    ]
