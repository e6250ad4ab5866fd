"""The nplusone integration: its Django 6.1 fix, unused eager loads as findings, opting in.

nplusone patches the ORM when ``nplusone.ext.django`` is imported, and cannot be unimported:
the in-process tests import it once (module fixture) and leave the fix applied; what depends on
startup (``ready()``, which modules get imported) runs in a fresh interpreter.
"""

from __future__ import annotations

import contextvars
import importlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import django
import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection
from django.db.models import Prefetch
from django.db.models.fields.related_descriptors import ReverseManyToOneDescriptor
from django.db.models.query import RelatedPopulator
from django.test import override_settings

from django_dbperf.analysis import UNUSED_EAGER_LOAD, Finding
from django_dbperf.checks import check_nplusone_compat
from django_dbperf.inspection import FINDING_SOURCES, capture_queries
from django_dbperf.integrations import nplusone as integration
from tests.testapp.models import Author, Book, Publisher, Tag

pytest.importorskip(
    "nplusone", reason="needs the nplusone extra: pip install django-dbperf[nplusone]"
)

ROOT = Path(__file__).resolve().parent.parent
HAS_FETCH_MODES = django.VERSION >= (6, 1)


@pytest.fixture(scope="module")
def nplusone_patch() -> ModuleType:
    """nplusone's Django patches, applied for the rest of this process."""
    importlib.import_module(integration.APP)
    # Related manager classes are built once per relation and cached on its descriptor; those
    # earlier tests built predate nplusone's patched factories and would never report a read.
    # (A project imports nplusone at startup, before any manager exists.)
    for model in apps.get_models():
        for descriptor in vars(model).values():
            if isinstance(descriptor, ReverseManyToOneDescriptor):
                vars(descriptor).pop("related_manager_cls", None)
    return sys.modules["nplusone.ext.django.patch"]


@pytest.fixture
def unfixed(nplusone_patch: ModuleType) -> Iterator[None]:
    """nplusone's own RelatedPopulator wrapper, as a project without django_dbperf has it."""
    before = RelatedPopulator.__init__
    setattr(RelatedPopulator, "__init__", nplusone_patch.related_populator_init)  # noqa: B010
    yield
    setattr(RelatedPopulator, "__init__", before)  # noqa: B010


@pytest.fixture
def listening(nplusone_patch: ModuleType) -> Iterator[None]:
    """What ``register()`` does for a project with nplusone's app installed."""
    integration.apply_compat_fix()
    integration.connect()
    yield
    integration.disconnect()


def make_books() -> list[Book]:
    publisher = Publisher.objects.create(name="Penguin")
    tags = [Tag.objects.create(name=name) for name in ("classic", "novel")]
    books = []
    for number in range(3):
        author = Author.objects.create(name=f"Author {number}")
        book = Book.objects.create(title=f"Book {number}", author=author, publisher=publisher)
        book.tags.set(tags)
        books.append(book)
    return books


@pytest.fixture
def books(db: None) -> list[Book]:
    return make_books()


def unused(capture: capture_queries) -> list[Finding]:
    return [finding for finding in capture.findings if finding.kind == UNUSED_EAGER_LOAD]


def relations(capture: capture_queries) -> list[str]:
    return sorted(str(finding.relation) for finding in unused(capture))


def nplusone_profiler() -> Any:
    return importlib.import_module("nplusone.core.profiler").Profiler()


# --- The compatibility fix -----------------------------------------------------------------


@pytest.mark.skipif(not HAS_FETCH_MODES, reason="the crash needs Django 6.1's fetch_mode")
@pytest.mark.usefixtures("unfixed")
def test_without_the_fix_nplusone_crashes_select_related_on_django_61(
    books: list[Book], django_assert_num_queries: Any
) -> None:
    with pytest.raises(ValueError, match="too many values to unpack"), nplusone_profiler():
        list(Book.objects.select_related("author"))

    assert integration.compat_fix_needed()
    assert integration.apply_compat_fix() is True
    assert integration.apply_compat_fix() is False  # idempotent
    assert integration.compat_fix_applied()
    with nplusone_profiler(), django_assert_num_queries(1):
        rows = [(book.title, book.author.name) for book in Book.objects.select_related("author")]
    assert sorted(rows) == [("Book 0", "Author 0"), ("Book 1", "Author 1"), ("Book 2", "Author 2")]


@pytest.mark.skipif(HAS_FETCH_MODES, reason="Django 5.2 behaviour")
@pytest.mark.usefixtures("unfixed")
def test_no_fix_is_needed_or_applied_on_django_52(
    books: list[Book], django_assert_num_queries: Any
) -> None:
    assert not integration.compat_fix_needed()
    assert integration.apply_compat_fix() is False
    assert not integration.compat_fix_applied()
    with nplusone_profiler(), django_assert_num_queries(1):
        rows = [(book.title, book.author.name) for book in Book.objects.select_related("author")]
    assert len(rows) == 3


NPLUSONE_MIDDLEWARE = [*settings.MIDDLEWARE, "nplusone.ext.django.NPlusOneMiddleware"]


@pytest.mark.usefixtures("listening")
@override_settings(MIDDLEWARE=NPLUSONE_MIDDLEWARE)
def test_w002_is_quiet_once_the_fix_is_applied() -> None:
    assert integration.compat_fix_applied() is HAS_FETCH_MODES  # 5.2 needs none
    assert check_nplusone_compat() == []


@pytest.mark.usefixtures("unfixed")
@override_settings(MIDDLEWARE=NPLUSONE_MIDDLEWARE)
def test_w002_is_raised_while_nplusones_own_wrapper_is_installed() -> None:
    expected = ["dbperf.W002"] if HAS_FETCH_MODES else []
    assert [message.id for message in check_nplusone_compat()] == expected


# --- Unused eager loads as findings ------------------------------------------------------


@pytest.mark.usefixtures("listening")
def test_unused_select_related_is_reported(books: list[Book]) -> None:
    with capture_queries() as capture:
        line = sys._getframe().f_lineno + 1
        titles = [book.title for book in Book.objects.select_related("publisher")]
    assert len(titles) == 3
    (finding,) = unused(capture)
    assert finding.relation == "testapp.Book.publisher"
    assert finding.count == 1
    assert finding.callsite is not None
    assert (finding.callsite.path, finding.callsite.line) == (__file__, line)
    assert finding.suggestion == (
        f'remove "publisher" from .select_related(...) on the Book queryset evaluated at '
        f"{finding.callsite}: it is never used"
    )
    assert (finding.sql, finding.fingerprint) == ("", "")
    assert finding.title.startswith("Unused eager load of testapp.Book.publisher at ")


@pytest.mark.usefixtures("listening")
def test_unused_prefetch_related_is_reported(books: list[Book]) -> None:
    with capture_queries() as capture:
        titles = [book.title for book in Book.objects.prefetch_related("tags")]
    assert len(titles) == 3
    (finding,) = unused(capture)
    assert finding.relation == "testapp.Book.tags"
    assert finding.suggestion.startswith('remove "tags" from .prefetch_related(...) on the Book')


@pytest.mark.usefixtures("listening")
def test_reverse_relations_are_named_by_their_accessor(books: list[Book]) -> None:
    with capture_queries() as capture:
        list(Author.objects.prefetch_related("books"))
        list(Publisher.objects.prefetch_related("books"))
    assert relations(capture) == ["testapp.Author.books", "testapp.Publisher.books"]


@pytest.mark.usefixtures("listening")
def test_used_eager_loads_are_not_reported(books: list[Book]) -> None:
    with capture_queries() as capture:
        for book in Book.objects.select_related("author", "publisher").prefetch_related("tags"):
            assert book.author.name.startswith("Author")
            assert book.publisher is not None
            assert sorted(tag.name for tag in book.tags.all()) == ["classic", "novel"]
        for author in Author.objects.prefetch_related("books"):
            assert author.books.all()[0].title.startswith("Book")
    assert len(capture) == 4  # two querysets, two prefetches: the eager loads really ran
    assert unused(capture) == []


@pytest.mark.usefixtures("listening")
def test_using_the_relation_on_one_row_is_using_it(books: list[Book]) -> None:
    with capture_queries() as capture:
        loaded = list(Book.objects.select_related("publisher").order_by("pk"))
        assert loaded[0].publisher is not None
    assert unused(capture) == []


@pytest.mark.usefixtures("listening")
def test_to_attr_prefetches_are_never_reported(books: list[Book]) -> None:
    # nplusone cannot see reads of a to_attr list; reporting it would tell users to remove a
    # prefetch their code may rely on.
    with capture_queries() as capture:
        list(Book.objects.prefetch_related(Prefetch("tags", to_attr="tag_list")))
    assert unused(capture) == []


@pytest.mark.usefixtures("listening")
def test_each_unused_evaluation_is_counted(books: list[Book]) -> None:
    with capture_queries() as capture:
        for _ in range(3):
            list(Book.objects.select_related("publisher"))
    (finding,) = unused(capture)
    assert finding.count == 3


@pytest.mark.usefixtures("listening")
def test_eager_loads_are_not_tracked_outside_a_capture(books: list[Book]) -> None:
    loaded = list(Book.objects.select_related("publisher"))
    with capture_queries() as capture:
        list(Book.objects.prefetch_related("tags"))
        assert loaded[0].publisher is not None
    assert relations(capture) == ["testapp.Book.tags"]


@pytest.mark.usefixtures("listening")
def test_nested_captures_each_judge_what_they_saw(books: list[Book]) -> None:
    with capture_queries() as outer:
        with capture_queries() as inner:
            loaded = list(Book.objects.select_related("publisher").prefetch_related("tags"))
        assert loaded[0].publisher is not None  # used, but after the inner capture closed
    assert relations(inner) == ["testapp.Book.publisher", "testapp.Book.tags"]
    assert relations(outer) == ["testapp.Book.tags"]


@pytest.mark.usefixtures("listening")
def test_other_threads_do_not_report_into_a_capture(transactional_db: None) -> None:
    make_books()

    def evaluate() -> None:
        try:
            list(Book.objects.select_related("publisher"))
        finally:
            connection.close()

    with capture_queries() as capture:
        thread = threading.Thread(target=evaluate)
        thread.start()
        thread.join()
    assert unused(capture) == []

    # A thread that carries the capture's context (as asgiref's sync_to_async does) reports.
    with capture_queries() as capture:
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(evaluate,))
        thread.start()
        thread.join()
    assert relations(capture) == ["testapp.Book.publisher"]


@pytest.mark.usefixtures("listening")
def test_findings_sit_beside_the_sql_findings(books: list[Book]) -> None:
    with capture_queries() as capture:
        for book in Book.objects.select_related("publisher"):
            assert book.author.name  # a lazy load per row: N+1 from the SQL capture
    assert sorted(finding.kind for finding in capture.findings) == ["n_plus_one", UNUSED_EAGER_LOAD]


def test_register_does_nothing_without_nplusones_app() -> None:
    sources = list(FINDING_SOURCES)
    assert integration.register() is False
    assert sources == FINDING_SOURCES


# --- Opting in, at startup -----------------------------------------------------------------

# Sets up Django with the test settings and the given INSTALLED_APPS, then reports as JSON.
STARTUP = """
import json, sys
from django.conf import settings
from tests import settings as base

conf = {name: getattr(base, name) for name in dir(base) if name.isupper()}
conf["INSTALLED_APPS"] = json.loads(sys.argv[1])
conf["DATABASES"] = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
settings.configure(**conf)
import django
django.setup()

from django.core.checks import run_checks
from django.db import connection
from django_dbperf.inspection import FINDING_SOURCES, capture_queries
from django_dbperf.integrations import nplusone
from tests.testapp.models import Author, Book, Publisher, Tag

with connection.schema_editor() as editor:
    for model in (Author, Publisher, Tag, Book):
        editor.create_model(model)
author = Author.objects.create(name="A")
for number in range(3):
    Book.objects.create(title=str(number), author=author, publisher=Publisher.objects.create())
with capture_queries() as unused:
    list(Book.objects.select_related("publisher"))
with capture_queries() as lazy:
    for book in Book.objects.all():
        book.publisher.name
print(json.dumps({
    "modules": sorted(name for name in sys.modules if name.split(".")[0] == "nplusone"),
    "registered": nplusone.eager_loads in FINDING_SOURCES,
    "fix_applied": nplusone.compat_fix_applied(),
    "checks": [message.id for message in run_checks() if message.id.startswith("dbperf.")],
    "unused": [f.relation for f in unused.findings if f.kind == "unused_eager_load"],
    "n_plus_one": [f.relation for f in lazy.n_plus_one],
}))
"""


def start_django(installed_apps: list[str]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", STARTUP, json.dumps(installed_apps)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.fixture(scope="module")
def without_nplusone() -> dict[str, Any]:
    return start_django(list(settings.INSTALLED_APPS))


@pytest.fixture(scope="module", params=["after", "before"])
def with_nplusone(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Started with nplusone's app listed after, or before, django_dbperf."""
    apps = list(settings.INSTALLED_APPS)
    apps.insert(len(apps) if request.param == "after" else 0, integration.APP)
    return start_django(apps)


def test_without_nplusones_app_nothing_is_imported_or_registered(
    without_nplusone: dict[str, Any],
) -> None:
    assert without_nplusone["modules"] == []
    assert without_nplusone["registered"] is False
    assert without_nplusone["unused"] == []


def test_with_nplusones_app_ready_fixes_and_registers(with_nplusone: dict[str, Any]) -> None:
    assert "nplusone.ext.django.patch" in with_nplusone["modules"]
    assert with_nplusone["registered"] is True
    assert with_nplusone["fix_applied"] is HAS_FETCH_MODES
    assert "dbperf.W002" not in with_nplusone["checks"]
    assert with_nplusone["unused"] == ["testapp.Book.publisher"]


def test_with_nplusones_app_lazy_loads_keep_their_relation_name(
    with_nplusone: dict[str, Any], without_nplusone: dict[str, Any]
) -> None:
    assert without_nplusone["n_plus_one"] == ["testapp.Book.publisher"]
    assert with_nplusone["n_plus_one"] == without_nplusone["n_plus_one"]
