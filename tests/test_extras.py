"""The extras: each feature whose extra is missing says which to install, and the core (start-up,
checks, migrate, the admin, the middleware) runs with none of them.

A missing package is simulated with None in ``sys.modules``: ``import`` fails as for a package
that is not installed, and ``find_spec`` finds nothing. tests/test_packaging.py installs the
wheel alone in a fresh virtual environment, where they are really absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from django_dbperf import extras

REPO = Path(__file__).resolve().parent.parent
# Every module an extra brings, with what those pull in (redis-py, hiredis, psycopg2 too).
BLOCKED = (
    "psycopg",
    "psycopg_pool",
    "psycopg2",
    "django_redis",
    "redis",
    "hiredis",
    "pglast",
    "debug_toolbar",
    "nplusone",
)
BLOCK = f"import sys\nfor name in {BLOCKED!r}:\n    sys.modules[name] = None\n"


def run_python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a new interpreter of this environment, from the repository's root."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "VALKEY_URL", "DJANGO_SETTINGS_MODULE"}
    }
    environment.update(PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1", **env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_install_command_names_the_distribution_and_the_extra() -> None:
    assert extras.install_command("advisor") == 'pip install "django-dbperf[advisor]"'


def test_every_extra_is_declared_and_the_core_needs_django_only() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == ["Django>=5.2"]
    declared = project["optional-dependencies"]
    assert set(extras.EXTRAS) <= set(declared)
    # psycopg asks libraries not to choose its binary build for the application.
    assert declared["postgres"] == ["psycopg[pool]>=3.2"]
    assert not any(
        "binary" in requirement for name in extras.EXTRAS for requirement in declared[name]
    )


def test_missing_names_the_extra_only_when_its_module_is_absent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert extras.available("advisor")
    assert extras.missing("advisor", "The index advisor") is None
    monkeypatch.setitem(sys.modules, "pglast", None)
    assert not extras.available("advisor")
    assert extras.missing("advisor", "The index advisor") == (
        "The index advisor needs pglast (module 'pglast'), which is not installed. Install it "
        "with django-dbperf's 'advisor' extra: pip install \"django-dbperf[advisor]\""
    )
    with pytest.raises(extras.MissingExtra, match=r"django-dbperf\[advisor\]"):
        extras.require("advisor", "The index advisor")


def test_suggest_without_pglast_is_a_command_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pglast", None)
    with pytest.raises(CommandError) as raised:
        call_command("dbperf_indexes", "suggest")
    assert str(raised.value).startswith(
        "The index advisor (dbperf_indexes suggest) needs pglast (module 'pglast'), which is "
        "not installed."
    )
    assert str(raised.value).endswith('pip install "django-dbperf[advisor]"')


@pytest.mark.django_db
def test_index_advice_page_without_pglast_says_which_extra_to_install(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pglast", None)
    url = "/admin/django_dbperf/indexadvice/"
    for response in (admin_client.get(url), admin_client.post(url)):
        html = response.content.decode()
        assert response.status_code == 200
        assert "The index advisor needs pglast" in html
        assert "django-dbperf[advisor]" in html
        assert "Run the advisor" not in html  # no form that could only fail


def test_startup_stops_on_a_django_redis_cache_without_django_redis(tmp_path: Path) -> None:
    # Django's own cache checks build every cache, and would stop `check` on the missing
    # backend without naming the extra: ready() says it first.
    result = run_python(
        BLOCK + "import django\ndjango.setup()\n",
        tmp_path,
        DJANGO_SETTINGS_MODULE="example_project.settings",
        REDIS_URL="redis://127.0.0.1:1",
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        'django_dbperf.extras.MissingExtra: The cache DBPERF["CACHE"]["ALIAS"] names, '
        "'default' (BACKEND 'django_redis.cache.RedisCache'), needs django-redis (module "
        "'django_redis'), which is not installed. Install it with django-dbperf's 'redis' "
        'extra: pip install "django-dbperf[redis]"'
    )


CORE_WITHOUT_EXTRAS = """
    import json

    import django
    from django.core.management import call_command
    from django.core.management.base import CommandError

    django.setup()
    call_command("check", fail_level="WARNING")
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    page = client.get("/")
    client.force_login(User.objects.create_superuser("admin", "a@example.com", "pw"))
    admin = "/admin/django_dbperf/"
    pages = {
        path: client.get(admin + path + "/").status_code
        for path in ("dashboard", "databasehealth", "cachereport", "indexadvice", "queryshape")
    }
    advice = client.post(admin + "indexadvice/").content.decode()
    try:
        call_command("dbperf_indexes", "suggest")
        suggest = "ran"
    except CommandError as error:
        suggest = str(error)
    print(json.dumps({
        "status": page.status_code,
        "queries": page.headers.get("X-DB-Query-Count"),
        "pages": pages,
        "advice_names_extra": "django-dbperf[advisor]" in advice,
        "suggest": suggest,
    }))
"""


def test_the_core_runs_with_every_extra_absent(tmp_path: Path) -> None:
    result = run_python(
        BLOCK + textwrap.dedent(CORE_WITHOUT_EXTRAS),
        tmp_path,
        DJANGO_SETTINGS_MODULE="example_project.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["status"] == 200
    assert seen["queries"] is not None and int(seen["queries"]) > 0
    assert set(seen["pages"].values()) == {200}, seen["pages"]
    assert seen["advice_names_extra"]
    assert seen["suggest"].endswith('pip install "django-dbperf[advisor]"')


def test_startup_the_admin_and_the_checks_never_import_pglast(tmp_path: Path) -> None:
    # With pglast installed: only running the advisor may import it.
    result = run_python(
        """
        import sys

        import django
        from django.core.management import call_command
        from django.urls import get_resolver

        django.setup()
        get_resolver().url_patterns  # the admin's URLs and views
        call_command("check")
        import django_dbperf.admin.pages
        import django_dbperf.management.commands.dbperf_indexes
        loaded = ("pglast", "django_dbperf.indexes.parsing")
        print(sorted(name for name in loaded if name in sys.modules))
        """,
        tmp_path,
        DJANGO_SETTINGS_MODULE="tests.settings",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
