"""Every system check id is triggered here at least once, with the message a user would read."""

from __future__ import annotations

from pathlib import Path

import django
import pytest
from django.core.checks import CheckMessage
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_dbperf.checks import (
    CHECKS,
    MIDDLEWARE_PATH,
    check_eager_managers,
    check_index_declarations,
    check_middleware_order,
    check_settings,
)
from django_dbperf.conf import CACHE_OPTIONS
from django_dbperf.managers import EagerManager
from tests.testapp.models import Book


def ids(messages: list[CheckMessage]) -> list[str]:
    return [message.id or "" for message in messages]


def only(messages: list[CheckMessage]) -> CheckMessage:
    assert len(messages) == 1, messages
    return messages[0]


@override_settings(DBPERF={})
def test_empty_setting_is_valid() -> None:
    assert check_settings() == []


@override_settings(DBPERF="SAMPLE_RATE=1")
def test_e001_setting_not_a_dict() -> None:
    error = only(check_settings())
    assert error.id == "dbperf.E001"
    assert "DBPERF must be a dict, not 'SAMPLE_RATE=1' (str)" in error.msg


@override_settings(DBPERF={"CACHE": ["redis"]})
def test_e001_nested_option_not_a_dict() -> None:
    error = only(check_settings())
    assert error.id == "dbperf.E001"
    assert "DBPERF['CACHE'] must be dict" in error.msg


@override_settings(DBPERF={"SAMPLE_RATIO": 0.5})
def test_e002_unknown_key_suggests_the_close_one() -> None:
    error = only(check_settings())
    assert error.id == "dbperf.E002"
    assert "unknown key 'SAMPLE_RATIO'" in error.msg
    assert "Did you mean 'SAMPLE_RATE'?" in (error.hint or "")


@override_settings(DBPERF={"CACHE": {"ALIAS": "default", "TIMEOUT": 3}}, DEBUG=True)
def test_e002_unknown_nested_key_names_its_path() -> None:
    error = only(check_settings())
    assert error.id == "dbperf.E002"
    assert "DBPERF['CACHE'] has an unknown key 'TIMEOUT'" in error.msg
    # Every CACHE option, sorted: "ALIAS, ALSO_WRITES, DEPENDS_ON, ENABLED, ..."
    assert f"Known keys: {', '.join(sorted(CACHE_OPTIONS))}." in (error.hint or "")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("SAMPLE_RATE", "0.5", "DBPERF['SAMPLE_RATE'] must be int or float, not '0.5' (str)"),
        ("HEADERS", "yes", "DBPERF['HEADERS'] must be bool, not 'yes' (str)"),
        ("NPLUSONE_THRESHOLD", 2.5, "must be int, not 2.5 (float)"),
        ("NPLUSONE_THRESHOLD", True, "must be int, not True (bool)"),
        ("QUERY_BUDGET", "50", "DBPERF['QUERY_BUDGET'] must be int or None"),
        ("ENABLED", None, "DBPERF['ENABLED'] must be bool, not None"),
    ],
)
def test_e003_wrong_type(key: str, value: object, expected: str) -> None:
    with override_settings(DBPERF={key: value}):
        error = only(check_settings())
    assert error.id == "dbperf.E003"
    assert expected in error.msg


@override_settings(DBPERF={"CACHE": {"TTL": {"*": "300"}}}, DEBUG=True)
def test_e003_wrong_type_inside_ttl() -> None:
    error = only(check_settings())
    assert error.id == "dbperf.E003"
    assert "DBPERF['CACHE']['TTL']['*'] must be int" in error.msg


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("SAMPLE_RATE", 1.5, "DBPERF['SAMPLE_RATE'] is 1.5; it must be between 0.0 and 1.0"),
        ("SAMPLE_RATE", -0.1, "between 0.0 and 1.0"),
        ("SLOW_QUERY_MS", -5, "DBPERF['SLOW_QUERY_MS'] is -5; it must be at least 0.0"),
        ("NPLUSONE_THRESHOLD", 1, "it must be at least 2"),
        ("QUERY_BUDGET", -1, "DBPERF['QUERY_BUDGET'] is -1; it must be at least 0"),
    ],
)
def test_e004_out_of_range(key: str, value: object, expected: str) -> None:
    with override_settings(DBPERF={key: value}):
        error = only(check_settings())
    assert error.id == "dbperf.E004"
    assert expected in error.msg


@override_settings(DBPERF={"CACHE": {"TTL": {"testapp.Book": 0}}}, DEBUG=True)
def test_e004_ttl_must_be_positive() -> None:
    assert ids(check_settings()) == ["dbperf.E004"]


@override_settings(DBPERF={"ON_NPLUSONE": "explode"})
def test_e005_not_an_allowed_value() -> None:
    error = only(check_settings())
    assert error.id == "dbperf.E005"
    assert "'explode'; allowed values: 'log', 'warn', 'raise'" in error.msg


@override_settings(DBPERF={"CACHE": {"ALIAS": "valkey"}})
def test_e006_cache_alias_missing_from_caches() -> None:
    error = only(check_settings())
    assert error.id == "dbperf.E006"
    assert "'valkey', but CACHES has no such alias" in error.msg
    assert "default" in (error.hint or "")


@override_settings(DBPERF={"CACHE": {"ALIAS": "default"}}, DEBUG=True)
def test_e006_not_raised_for_an_existing_alias() -> None:
    assert check_settings() == []


@override_settings(
    DBPERF={"CACHE": {"TTL": {"testapp.Book": 60, "testapp.Nope": 60, "nodot": 5, "*": 30}}},
    DEBUG=True,
)
def test_e007_ttl_keys_must_be_installed_models() -> None:
    errors = check_settings()
    assert ids(errors) == ["dbperf.E007", "dbperf.E007"]
    assert "'testapp.Nope', which is not an installed model" in errors[0].msg
    assert "'nodot'" in errors[1].msg


@override_settings(
    DBPERF={
        "CACHE": {
            "DEPENDS_ON": {"testapp.SaleSummary": ["testapp.Sale", "testapp.Gone"], "*": []},
            "ALSO_WRITES": {"testapp.Nope": ["testapp.SaleTotal"], "testapp.Sale": ["nodot"]},
        }
    },
    DEBUG=True,
)
def test_e007_dependencies_name_installed_models() -> None:
    errors = check_settings()
    assert ids(errors) == ["dbperf.E007"] * 4
    messages = [error.msg for error in errors]
    assert messages == [
        """DBPERF["CACHE"]["DEPENDS_ON"] has the key '*', which is not an installed model.""",
        """DBPERF["CACHE"]["DEPENDS_ON"]['testapp.SaleSummary'] has the item 'testapp.Gone', """
        "which is not an installed model.",
        """DBPERF["CACHE"]["ALSO_WRITES"] has the key 'testapp.Nope', which is not an installed """
        "model.",
        """DBPERF["CACHE"]["ALSO_WRITES"]['testapp.Sale'] has the item 'nodot', which is not an """
        "installed model.",
    ]
    assert '"*"' not in (errors[0].hint or "")


@override_settings(
    DBPERF={"CACHE": {"DEPENDS_ON": {"testapp.SaleSummary": "testapp.Sale"}}}, DEBUG=True
)
def test_e003_dependencies_are_lists_of_labels() -> None:
    error = only(check_settings())
    assert error.id == "dbperf.E003"
    assert "DBPERF['CACHE']['DEPENDS_ON']['testapp.SaleSummary'] must be list or tuple" in error.msg


@override_settings(
    DBPERF={
        "CACHE": {
            "DEPENDS_ON": {"testapp.SaleSummary": ["testapp.Sale"], "testapp.Place": []},
            "ALSO_WRITES": {"testapp.Sale": ("testapp.SaleTotal",)},
        }
    },
    DEBUG=True,
)
def test_valid_dependencies_pass() -> None:
    assert check_settings() == []


def test_several_errors_are_reported_together() -> None:
    with override_settings(DBPERF={"SAMPLE_RATE": 2, "ON_NPLUSONE": "x", "TYPO": 1}):
        assert sorted(ids(check_settings())) == ["dbperf.E002", "dbperf.E004", "dbperf.E005"]


SECURITY = "django.middleware.security.SecurityMiddleware"
SESSION = "django.contrib.sessions.middleware.SessionMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"


def test_w001_middleware_after_session_middleware() -> None:
    with override_settings(MIDDLEWARE=[SECURITY, SESSION, AUTH, MIDDLEWARE_PATH]):
        warning = only(check_middleware_order())
    assert warning.id == "dbperf.W001"
    assert f"comes after {SESSION}" in warning.msg


@pytest.mark.parametrize(
    "middleware",
    [[SECURITY, MIDDLEWARE_PATH, SESSION, AUTH], [SECURITY, SESSION, AUTH]],
    ids=["well placed", "not installed"],
)
def test_w001_not_raised(middleware: list[str]) -> None:
    with override_settings(MIDDLEWARE=middleware):
        assert check_middleware_order() == []


@override_settings(DBPERF={"SAMPLE_RATE": "all"})
@pytest.mark.django_db(databases="__all__")  # JSONFields ask each database about support
def test_manage_py_check_fails_on_bad_settings() -> None:
    with pytest.raises(SystemCheckError) as err:
        call_command("check")
    assert "dbperf.E003" in str(err.value)
    assert "SAMPLE_RATE" in str(err.value)


@pytest.mark.django_db(databases="__all__")
@override_settings(DBPERF={"SAMPLE_RATE": "all"}, SILENCED_SYSTEM_CHECKS=["dbperf.E003"])
def test_checks_can_be_silenced_by_id() -> None:
    call_command("check")


def test_every_check_id_is_tested() -> None:
    # This file names every id in CHECKS; a new check without a test fails here.
    with open(__file__) as source:
        text = source.read().replace("test_every_check_id_is_tested", "")
    untested = [check_id for check_id in CHECKS if check_id.split(".")[1].lower() not in text]
    assert untested == []


def test_w002_nplusone_middleware_without_the_compat_fix() -> None:
    # Local imports keep this an appended test. nplusone is deliberately not imported here (its
    # import patches the ORM for the whole process), and INSTALLED_APPS is not overridden: that
    # re-runs ready(), which applies the fix.
    import sys

    import django
    from django.conf import settings
    from django.db.models.query import RelatedPopulator

    from django_dbperf.checks import check_nplusone_compat

    pytest.importorskip("nplusone", reason="needs the nplusone extra")
    fixed = RelatedPopulator.__init__
    patch = sys.modules.get("nplusone.ext.django.patch")
    if patch is not None:  # imported by an earlier test: put back nplusone's unfixed wrapper
        setattr(RelatedPopulator, "__init__", patch.related_populator_init)  # noqa: B010
    try:
        middleware = [*settings.MIDDLEWARE, "nplusone.ext.django.NPlusOneMiddleware"]
        with override_settings(MIDDLEWARE=middleware):
            messages = check_nplusone_compat()
    finally:
        setattr(RelatedPopulator, "__init__", fixed)  # noqa: B010
    if django.VERSION < (6, 1):
        assert messages == []  # nplusone 1.0 reads Django 5.2's populator fine
        return
    warning = only(messages)
    assert warning.id == "dbperf.W002"
    assert "every select_related() query" in warning.msg
    assert "'nplusone.ext.django' to INSTALLED_APPS" in (warning.hint or "")


# --- eager managers and fetch modes (dbperf.E008, dbperf.E009, dbperf.W003) -----------------

needs_fetch_modes = pytest.mark.skipif(django.VERSION < (6, 1), reason="Django 6.1 fetch modes")


@needs_fetch_modes
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("FETCH_SOMETIMES", "'FETCH_SOMETIMES', which cannot be imported"),
        ("django_dbperf.conf.OPTIONS", "'django_dbperf.conf.OPTIONS', which is dict, not a"),
    ],
)
def test_e008_default_fetch_mode_must_be_a_fetch_mode(value: str, expected: str) -> None:
    with override_settings(DBPERF={"DEFAULT_FETCH_MODE": value}):
        error = only(check_eager_managers())
    assert error.id == "dbperf.E008"
    assert f"DBPERF['DEFAULT_FETCH_MODE'] is {expected}" in error.msg
    assert "FETCH_ONE, FETCH_PEERS, FETCH_RAISE" in (error.hint or "")


@needs_fetch_modes
@pytest.mark.parametrize(
    "value", ["FETCH_PEERS", "FETCH_RAISE", "django_dbperf.capture.fetch_mode.FETCH_RECORD"]
)
def test_e008_not_raised_for_real_fetch_modes(value: str) -> None:
    with override_settings(DBPERF={"DEFAULT_FETCH_MODE": value}):
        assert check_eager_managers() == []


def with_manager(monkeypatch: pytest.MonkeyPatch, manager: EagerManager) -> None:
    manager.name = "bad"
    manager.model = Book
    monkeypatch.setattr(Book._meta, "managers", [*Book._meta.managers, manager])


def profile_errors() -> list[CheckMessage]:
    # On Django 5.2 the test app's Book.peers (a fetch mode) also adds dbperf.W003.
    return [message for message in check_eager_managers() if message.id == "dbperf.E009"]


def test_e009_profile_path_is_not_a_relation(monkeypatch: pytest.MonkeyPatch) -> None:
    with_manager(monkeypatch, EagerManager(profiles={"list": ["author", "sever__tags"]}))
    error = only(profile_errors())
    assert error.id == "dbperf.E009"
    assert "testapp.Book.bad profile 'list': Cannot include 'sever__tags'" in error.msg
    assert "Relations of Book: author, notes, publisher, reviews, tags" in error.msg


def test_e009_default_names_an_undeclared_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    with_manager(monkeypatch, EagerManager(profiles={"list": ["author"]}, default="detail"))
    error = only(profile_errors())
    assert error.id == "dbperf.E009"
    assert "testapp.Book.bad has default='detail', but its profiles are: list" in error.msg


def test_e009_not_raised_for_the_test_apps_managers() -> None:
    assert profile_errors() == []


@pytest.mark.skipif(django.VERSION >= (6, 1), reason="Django 5.2 behaviour")
def test_w003_fetch_modes_are_ignored_before_django_6_1() -> None:
    with override_settings(DBPERF={"DEFAULT_FETCH_MODE": "FETCH_PEERS"}):
        messages = check_eager_managers()
    # The setting and Book.peers (fetch_mode="FETCH_PEERS") are both reported.
    assert [m.id for m in messages] == ["dbperf.W003", "dbperf.W003"]
    assert "fetch modes need Django 6.1; it is ignored" in messages[0].msg


@needs_fetch_modes
def test_w003_not_raised_on_django_6_1() -> None:
    with override_settings(DBPERF={"DEFAULT_FETCH_MODE": "FETCH_PEERS"}):
        assert check_eager_managers() == []


@override_settings(DBPERF={"CACHE": {"ALIAS": "default"}}, DEBUG=False)
def test_e010_unshared_cache_outside_debug() -> None:
    error = only(check_settings())
    assert error.id == "dbperf.E010"
    assert "'default', a LocMemCache: each process has its own" in error.msg
    assert "Valkey or Redis" in (error.hint or "")


@override_settings(DBPERF={"CACHE": {"ALIAS": "default"}}, DEBUG=True)
def test_e010_allowed_while_debug_is_on() -> None:
    assert check_settings() == []


@override_settings(
    DBPERF={"CACHE": {"NOT_CACHED": ["sessions.Session", "testapp.Nope"]}}, DEBUG=True
)
def test_e007_not_cached_names_installed_models() -> None:
    error = only(check_settings())
    assert error.id == "dbperf.E007"
    assert error.msg == (
        """DBPERF["CACHE"]["NOT_CACHED"] has the item 'testapp.Nope', which is not an """
        "installed model."
    )


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("tests.nowhere.hook", "cannot be imported"),
        ("tests.test_checks.NOT_A_HOOK", "is str, not a callable"),
    ],
)
def test_e011_namespace_hook_must_be_an_importable_callable(path: str, problem: str) -> None:
    with override_settings(DBPERF={"CACHE": {"NAMESPACE": path}}, DEBUG=True):
        error = only(check_settings())
    assert error.id == "dbperf.E011"
    assert f"is {path!r}, which {problem}" in error.msg
    assert "(connection) -> str" in (error.hint or "")


@override_settings(DBPERF={"CACHE": {"NAMESPACE": "tests.test_checks.schema"}}, DEBUG=True)
def test_e011_not_raised_for_a_callable() -> None:
    assert check_settings() == []


NOT_A_HOOK = "schema"


def schema(connection: object) -> str:
    return "tenant"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("tests.nowhere.hot", "cannot be imported"),
        ("tests.test_checks.NOT_A_HOOK", "is str, not a callable"),
        ("tests.test_checks.schema", "takes arguments, but warming calls it with none"),
        (3, "is int, not a dotted path"),
    ],
)
def test_e017_warm_entries_must_be_importable_callables_without_arguments(
    entry: object, problem: str
) -> None:
    warm = ["tests.test_checks.hot", entry]
    with override_settings(DBPERF={"CACHE": {"WARM": warm}}, DEBUG=True):
        error = only(check_settings())
    assert error.id == "dbperf.E017"
    assert error.msg.startswith(f'DBPERF["CACHE"]["WARM"][1] is {entry!r}, which {problem}')
    assert "a function without arguments" in (error.hint or "")


def hot() -> list[str]:
    return []


# Every malformed DBPERF["IGNORE"] rule is tested in test_ignore.py; this names the id here.
@override_settings(DBPERF={"IGNORE": [{"model": "auth.User"}, {"path_regex": "/api/(v1"}]})
def test_e012_malformed_ignore_rule_names_its_key() -> None:
    error = only(check_settings())
    assert error.id == "dbperf.E012"
    assert error.msg.startswith('DBPERF["IGNORE"][1]["path_regex"] is \'/api/(v1\'')


@override_settings(
    DBPERF={"PROJECT_ROOTS": ["myproject", 3, "/no/such/directory"], "HIDE_IN_CALLSITES": [""]}
)
def test_e013_project_roots_and_hidden_modules_name_the_entry() -> None:
    errors = check_settings()
    assert [error.id for error in errors] == ["dbperf.E013"] * 3
    assert errors[0].msg == (
        'DBPERF["PROJECT_ROOTS"][1] is 3 (int); it must be a directory or a package name '
        "(a string)."
    )
    assert errors[1].msg.startswith("DBPERF[\"PROJECT_ROOTS\"][2] is '/no/such/directory'")
    assert errors[2].msg.startswith('DBPERF["HIDE_IN_CALLSITES"][0] is')


@override_settings(
    DBPERF={"STATS": {"DATABASE": "stats", "REDACT_COLUMNS": ["*password*", ""], "MAX": 1}}
)
def test_e014_stats_database_and_redaction_patterns_name_the_key() -> None:
    errors = check_settings()
    assert [error.id for error in errors] == ["dbperf.E002", "dbperf.E014", "dbperf.E014"]
    assert errors[1].msg == (
        'DBPERF["STATS"]["DATABASE"] is \'stats\', but DATABASES has no such alias.'
    )
    assert errors[2].msg.startswith('DBPERF["STATS"]["REDACT_COLUMNS"][1] is')


@override_settings(DBPERF={"STATS": {"FLUSH_INTERVAL_S": 0, "STORE_PARAMS": "yes"}})
def test_stats_options_are_checked_like_every_other_key() -> None:
    errors = check_settings()
    assert [error.id for error in errors] == ["dbperf.E004", "dbperf.E003"]
    assert errors[0].msg == "DBPERF['STATS']['FLUSH_INTERVAL_S'] is 0; it must be at least 1.0."


@override_settings(DBPERF={"INDEXES": {"RETRY_BACKOFF_S": 5, "MAX_BACKOFF_S": 1}})
def test_e015_index_build_backoff_names_the_keys() -> None:
    (error,) = check_settings()
    assert error.id == "dbperf.E015"
    assert 'DBPERF["INDEXES"]["MAX_BACKOFF_S"] is 1' in error.msg


def test_e016_a_dbperf_indexes_module_that_cannot_be_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.apps import apps

    from django_dbperf.indexes import declarations

    config = apps.get_app_config("testapp")
    monkeypatch.setattr(config, "path", str(tmp_path))
    monkeypatch.setattr(declarations, "_declared", {})
    monkeypatch.setattr(declarations, "_errors", [])
    (tmp_path / "dbperf_indexes.py").write_text(
        "from django.db import models\n"
        "INDEXES = {'NoSuchModel': [models.Index(fields=['x'], name='dp_x')]}\n"
    )
    declarations.load()
    (error,) = check_index_declarations()
    assert error.id == "dbperf.E016"
    assert "names 'NoSuchModel', which is not a model of the app 'testapp'" in error.msg


# --- features whose extra is missing (dbperf.E018) ------------------------------------------
# A missing package is simulated with None in sys.modules (import fails, find_spec finds none);
# tests/test_packaging.py checks the same in a virtual environment without the extras, and
# tests/test_extras.py the django-redis cache, which stops start-up rather than a check.


def extras_errors(monkeypatch: pytest.MonkeyPatch, module: str) -> list[CheckMessage]:
    import sys

    from django_dbperf.checks import check_extras

    assert check_extras() == []  # with the module installed, as in the suite's environments
    monkeypatch.setitem(sys.modules, module, None)
    return check_extras()


@override_settings(DBPERF={"CACHE": {"ALIAS": "default"}})
def test_e018_cache_on_postgresql_without_psycopg_3_names_the_postgres_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.conf import settings

    databases = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "geo": {"ENGINE": "django.contrib.gis.db.backends.postgis", "NAME": "app"},
    }
    # Read from settings only (no backend is loaded), so replacing the setting is enough here.
    monkeypatch.setattr(settings, "DATABASES", databases)
    error = only(extras_errors(monkeypatch, "psycopg"))
    assert error.id == "dbperf.E018"
    assert error.msg == (
        "Cached querysets (DBPERF[\"CACHE\"]) on the PostgreSQL database 'geo' "
        "(ENGINE 'django.contrib.gis.db.backends.postgis') needs "
        "psycopg 3 (module 'psycopg'), which is not installed. Install it with django-dbperf's "
        "'postgres' extra: pip install \"django-dbperf[postgres]\""
    )
    assert "psycopg2 is not enough" in (error.hint or "")


@override_settings(DBPERF={})
def test_e018_postgresql_on_psycopg2_without_the_cache_is_fine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.conf import settings

    databases = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "app"}}
    monkeypatch.setattr(settings, "DATABASES", databases)
    assert extras_errors(monkeypatch, "psycopg") == []


@override_settings(DEBUG_TOOLBAR_PANELS=["django_dbperf.panels.DbPerfPanel"])
def test_e018_toolbar_panel_without_django_debug_toolbar(monkeypatch: pytest.MonkeyPatch) -> None:
    error = only(extras_errors(monkeypatch, "debug_toolbar"))
    assert error.id == "dbperf.E018"
    assert error.msg.startswith(
        "The panel 'django_dbperf.panels.DbPerfPanel' in DEBUG_TOOLBAR_PANELS needs "
        "django-debug-toolbar (module 'debug_toolbar'), which is not installed."
    )
    assert error.msg.endswith('pip install "django-dbperf[toolbar]"')


def test_e018_nplusone_middleware_without_nplusone(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.conf import settings

    middleware = [*settings.MIDDLEWARE, "nplusone.ext.django.NPlusOneMiddleware"]
    with override_settings(MIDDLEWARE=middleware):
        error = only(extras_errors(monkeypatch, "nplusone"))
    assert error.id == "dbperf.E018"
    assert error.msg.startswith(
        "nplusone's middleware 'nplusone.ext.django.NPlusOneMiddleware' in MIDDLEWARE needs "
        "nplusone (module 'nplusone'), which is not installed."
    )
    assert error.msg.endswith('pip install "django-dbperf[nplusone]"')
