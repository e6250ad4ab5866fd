"""Callsites: the project's line, the framework's line, never the code that sent the request."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from django.test import Client, override_settings

from django_dbperf import capture_queries
from django_dbperf.capture import roots
from tests import dataaccess, helpers
from tests.helpers import make_library
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.django_db


def line_of(marker: str) -> str:
    return helpers.line_of(__file__, marker)


def test_a_page_served_by_framework_code_names_the_framework_line_not_the_test() -> None:
    make_library(authors=4, books_per_author=1)
    with capture_queries() as captured:
        response = Client().get("/testapp/generic/")  # client-call
    assert response.status_code == 200
    (finding,) = captured.n_plus_one
    # No project code ran the queries: the test's client.get() line is not their callsite.
    assert finding.callsite is None
    assert finding.framework is not None
    assert finding.framework.module is not None
    assert finding.framework.module.startswith("django.template")
    assert "in the framework" in finding.title
    assert str(finding.template) == "testapp/book_list.html:2"
    assert line_of("client-call") not in str(finding)
    assert all(query.callsite is None for query in captured)


def test_a_project_line_names_the_framework_line_too() -> None:
    make_library(authors=4, books_per_author=1)
    from django.template import Context, Template

    template = Template("{% for book in books %}{{ book.author.name }}{% endfor %}")
    with capture_queries() as captured:
        template.render(Context({"books": Book.objects.all()}))  # render-call
    (finding,) = captured.n_plus_one
    assert str(finding.callsite) == line_of("render-call")
    assert finding.framework is not None and "django/template" in finding.framework.path
    assert f"{line_of('render-call')} (through " in finding.title


def test_hidden_modules_are_skipped_for_the_line_that_called_them() -> None:
    make_library(authors=4, books_per_author=1)
    names = [f"Author {number}" for number in range(4)]
    with capture_queries() as captured:
        [dataaccess.author_named(name) for name in names]  # calls-helper
    assert str(captured.n_plus_one[0].callsite) == helpers.line_of(
        dataaccess.__file__, "helper-line"
    )
    with override_settings(DBPERF={"HIDE_IN_CALLSITES": ["tests.dataaccess"]}):
        with capture_queries() as captured:
            [dataaccess.author_named(name) for name in names]  # calls-helper-hidden
        assert str(captured.n_plus_one[0].callsite) == line_of("calls-helper-hidden")


def _site_packages_file(name: str) -> str:
    libraries = roots.current().libraries
    return os.path.join(libraries[0], name)


def test_project_packages_count_even_when_installed_as_a_wheel() -> None:
    installed = _site_packages_file("shop/views.py")
    assert roots.classify(installed, "shop.views") == roots.FRAMEWORK
    with override_settings(DBPERF={"PROJECT_ROOTS": ["shop"]}):
        assert roots.classify(installed, "shop.views") == roots.PROJECT
        assert roots.classify(_site_packages_file("wagtail/x.py"), "wagtail.x") == roots.FRAMEWORK
    # The settings module's own package is the project's without any setting.
    settings_package = os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings").split(".")[0]
    assert roots.classify(_site_packages_file("x.py"), f"{settings_package}.x") == roots.PROJECT


def test_project_directories_from_base_dir_and_project_roots(tmp_path: object) -> None:
    here = os.path.dirname(__file__)
    outside = os.path.join(os.path.dirname(here), "benchmarks", "harness.py")
    # Without BASE_DIR, every file outside installed packages is the project's.
    assert roots.classify(outside, "benchmarks.harness") == roots.PROJECT
    with override_settings(BASE_DIR=here):
        assert roots.classify(os.path.join(here, "x.py"), "x") == roots.PROJECT
        assert roots.classify(outside, "benchmarks.harness") == roots.FRAMEWORK
        # A virtualenv inside BASE_DIR holds installed packages, not the project.
        venv_file = _site_packages_file("wagtail/models.py")
        assert roots.classify(venv_file, "wagtail.models") == roots.FRAMEWORK
    with override_settings(DBPERF={"PROJECT_ROOTS": [os.path.dirname(outside)]}):
        assert roots.classify(outside, "benchmarks.harness") == roots.PROJECT


def test_django_orm_stdlib_and_instrumentation_are_never_named() -> None:
    import json

    import django.db.models.query as query_module

    assert roots.classify(query_module.__file__, "django.db.models.query") == roots.SKIP
    assert roots.classify(json.__file__, "json") == roots.SKIP
    assert roots.classify(_site_packages_file("nplusone/core/signals.py"), "nplusone.x") == (
        roots.SKIP
    )
    admin = _site_packages_file("django/contrib/admin/options.py")
    assert roots.classify(admin, "django.contrib.admin.options") == roots.FRAMEWORK


@pytest.mark.django_db(transaction=True)
def test_async_orm_calls_are_named_by_the_awaiting_line() -> None:
    make_library(authors=4, books_per_author=1)

    async def load() -> list[str]:
        with capture_queries() as captured:
            names = []
            for number in range(4):
                author = await Author.objects.aget(name=f"Author {number}")  # await-line
                names.append(author.name)
        assert [str(query.callsite) for query in captured] == [line_of("await-line")] * 4
        (finding,) = captured.n_plus_one
        assert str(finding.callsite) == line_of("await-line")
        return names

    async def run() -> list[str]:
        from asgiref.sync import sync_to_async
        from django.db import connections

        try:
            return await load()
        finally:
            await sync_to_async(connections.close_all)()

    assert asyncio.run(run()) == [f"Author {number}" for number in range(4)]


@pytest.mark.django_db(transaction=True)
def test_async_calls_in_other_tasks_are_never_given_the_awaiting_line() -> None:
    """Children of asyncio.gather() run in tasks of their own: unknown, not the gather line."""
    make_library(authors=3, books_per_author=1)

    async def load() -> None:
        with capture_queries() as captured:
            await asyncio.gather(  # gather-line
                *(Author.objects.aget(name=f"Author {number}") for number in range(3))
            )
        assert len(captured) == 3
        assert all(query.callsite is None for query in captured)

    async def run() -> None:
        from asgiref.sync import sync_to_async
        from django.db import connections

        try:
            await load()
        finally:
            await sync_to_async(connections.close_all)()

    asyncio.run(run())


def test_callsites_carry_the_module_name() -> None:
    make_library(authors=1, books_per_author=1)
    with capture_queries() as captured:
        Author.objects.count()
    (query,) = captured
    assert query.callsite is not None and query.callsite.module == __name__
    assert sys.modules[__name__].__file__ == query.callsite.path


def test_a_framework_only_finding_is_ignored_by_its_page() -> None:
    """Findings with no project line still know their request (for ignore rules by path)."""
    from tests.test_ignore import MIDDLEWARE

    make_library(authors=4, books_per_author=1)
    rules = [{"path": "/testapp/generic/", "reason": "Django's own"}]
    with override_settings(MIDDLEWARE=MIDDLEWARE, DBPERF={"IGNORE": rules}):
        with capture_queries() as captured:
            Client().get("/testapp/generic/")
        assert len(captured) == 5
        assert captured.findings == []


def test_each_select_knows_its_queryset_after_the_capture_and_then_lets_its_frames_go() -> None:
    make_library(authors=2, books_per_author=1)
    with capture_queries() as captured:
        list(Book.objects.select_related("author"))
        Author.objects.count()
    listed, counted = captured.queries
    assert listed.pending_origin is not None  # frames kept, not read, during the capture
    origin = listed.origin
    assert origin is not None and origin.model is Book
    assert origin.select_related == {"author": {}}
    assert listed.pending_origin is None  # read once, then released
    assert counted.origin is None  # count() evaluates no queryset
