"""The distribution as PyPI would get it: an sdist and a wheel that twine accepts, a wheel that
holds the templates, migrations and py.typed (and no tests), and that, installed alone in a
fresh virtual environment (Django from the index, no extra), runs the example project and names
the extra of each configured feature whose package is absent.

About a minute: two builds, a virtual environment and a Django install. It runs once, in the
SQLite pass; CI (``DBPERF_REQUIRE_SERVERS=1``) fails instead of skipping when ``build`` is
missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import django_dbperf
from django_dbperf.extras import EXTRAS
from tests.conftest import SERVER_PASS
from tests.test_extras import CORE_WITHOUT_EXTRAS

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "django_dbperf"
QUIET = ("--quiet", "--disable-pip-version-check", "--no-input")


def _needs_build() -> None:
    if SERVER_PASS:
        pytest.skip("the packaging test runs in the SQLite pass (it uses no server)")
    lacking = [name for name in ("build", "twine") if importlib.util.find_spec(name) is None]
    if lacking:
        reason = f"needs {' and '.join(lacking)} (the dev extra: pip install -e '.[dev]')"
        if os.environ.get("DBPERF_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{reason}; CI (DBPERF_REQUIRE_SERVERS=1) forbids skipping it")
        pytest.skip(reason)


def run(
    *command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def package_files() -> set[str]:
    """Every file of the package in the work tree, bytecode left out."""
    return {
        path.relative_to(REPO).as_posix()
        for path in (REPO / PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def example_project(into: Path) -> Path:
    """A copy of the example project, so that nothing is written into the work tree."""
    project = into / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.sqlite3")
    shutil.copytree(REPO / "example_project", project / "example_project", ignore=ignore)
    shutil.copy(REPO / "manage.py", project)
    # The features whose extras are absent, over the example's settings.
    (project / "absent_extras.py").write_text(
        textwrap.dedent(
            """
            from example_project.settings import *  # noqa: F403

            DEBUG_TOOLBAR_PANELS = ["django_dbperf.panels.DbPerfPanel"]
            MIDDLEWARE = [*MIDDLEWARE, "nplusone.ext.django.NPlusOneMiddleware"]  # noqa: F405
            """
        )
    )
    return project


def test_the_wheel_installs_alone_and_runs_the_example_project(tmp_path: Path) -> None:
    _needs_build()
    dist = tmp_path / "dist"
    # The sdist first, then the wheel built from it: a file missing from the sdist fails here.
    ok(run(sys.executable, "-m", "build", "--outdir", dist, REPO, cwd=REPO))
    version = django_dbperf.__version__
    wheel = dist / f"{PACKAGE}-{version}-py3-none-any.whl"
    sdist = dist / f"{PACKAGE}-{version}.tar.gz"
    assert sorted(dist.iterdir()) == [wheel, sdist]
    ok(run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist))

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = Parser().parsestr(
            archive.read(f"{PACKAGE}-{version}.dist-info/METADATA").decode()
        )
    tops = {name.split("/")[0] for name in names}
    assert tops == {PACKAGE, f"{PACKAGE}-{version}.dist-info"}  # no tests/, no example_project/
    assert package_files() <= names, sorted(package_files() - names)
    for expected in (
        f"{PACKAGE}/py.typed",
        f"{PACKAGE}/migrations/0001_initial.py",
        f"{PACKAGE}/templates/admin/{PACKAGE}/indexes.html",
    ):
        assert expected in names
    # Django is the one requirement outside the extras.
    requires = metadata.get_all("Requires-Dist") or []
    assert [r for r in requires if "extra ==" not in r] == ["django>=5.2"]
    assert set(EXTRAS) <= set(metadata.get_all("Provides-Extra") or [])
    assert metadata["Version"] == version
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"pyproject.toml", "LICENSE", "README.md", f"{PACKAGE}/py.typed"} <= members
    assert not any(re.match(r"(\.venv|example_project|dist)/", name) for name in members)

    # A fresh virtual environment (not --system-site-packages) with the wheel alone.
    venv = tmp_path / "venv"
    ok(run(sys.executable, "-m", "venv", venv))
    python = venv / "bin" / "python"
    ok(run(python, "-m", "pip", "install", *QUIET, wheel))
    absent = "import importlib.util as u, json, sys; print(json.dumps([m for m in sys.argv[1:] if u.find_spec(m)]))"  # noqa: E501
    modules = [extra.module for extra in EXTRAS.values()] + ["psycopg2", "redis"]
    assert json.loads(ok(run(python, "-c", absent, *modules))) == []

    project = example_project(tmp_path)
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "REDIS_URL", "VALKEY_URL", "DJANGO_", "PYTHON"))
    }
    environment.update(PYTHONPATH=str(project), PYTHONDONTWRITEBYTECODE="1")

    def manage(*arguments: str) -> subprocess.CompletedProcess[str]:
        return run(python, "manage.py", *arguments, cwd=project, env=environment)

    ok(manage("check", "--fail-level", "WARNING"))
    ok(manage("migrate", "--noinput", "--verbosity", "0"))
    # The pages, the admin and the advisor's message, as test_extras.py checks them with the
    # extras blocked; here they are really absent.
    pages = run(
        python, "-c", textwrap.dedent(CORE_WITHOUT_EXTRAS), cwd=project,
        env={**environment, "DJANGO_SETTINGS_MODULE": "example_project.settings"},
    )  # fmt: skip
    seen = json.loads(ok(pages).strip().splitlines()[-1])
    assert seen["status"] == 200
    assert seen["queries"] is not None and int(seen["queries"]) > 0
    assert set(seen["pages"].values()) == {200}, seen["pages"]
    assert seen["advice_names_extra"]  # the page names the extra instead of crashing
    assert seen["suggest"].endswith('pip install "django-dbperf[advisor]"')

    # Features whose package is really absent: the check names each extra.
    result = manage("check", "--settings", "absent_extras")
    assert result.returncode == 1
    assert result.stderr.count("(dbperf.E018)") == 2, result.stderr
    assert 'pip install "django-dbperf[toolbar]"' in result.stderr
    assert 'pip install "django-dbperf[nplusone]"' in result.stderr
    # A django-redis cache for the queryset cache stops start-up, naming the redis extra.
    environment["REDIS_URL"] = "redis://127.0.0.1:1"
    result = manage("check")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].endswith('pip install "django-dbperf[redis]"')
