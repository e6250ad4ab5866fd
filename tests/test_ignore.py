"""Ignoring findings: DBPERF["IGNORE"] rules (every key, in every capture) and ignore_queries()."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections
from django.test import Client, TestCase, override_settings
from django.test.utils import CaptureQueriesContext

from django_dbperf import capture_queries, ignore_queries, pytest_plugin
from django_dbperf.analysis import Finding
from django_dbperf.analysis.ignore import active_rules, is_ignored
from django_dbperf.capture import Callsite
from django_dbperf.capture.request import RequestInfo
from django_dbperf.checks import check_settings
from django_dbperf.testing import DbPerfTestMixin
from tests.helpers import make_library
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.django_db

BOOKS = 6  # make_library(authors=3, books_per_author=2)
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django_dbperf.middleware.QueryCountMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
N_PLUS_ONE_URL = "/testapp/n-plus-one/"  # view "n_plus_one": N+1 on testapp.Book.author


@pytest.fixture
def library() -> None:
    make_library(authors=3, books_per_author=2)


def lazy_authors() -> list[str]:
    return [book.author.name for book in Book.objects.all()]


def counted_twice() -> None:
    Author.objects.filter(name="Author 0").count()
    Author.objects.filter(name="Author 0").count()


def findings_with(rules: list[Any], run: Any = lazy_authors) -> list[Finding]:
    with override_settings(DBPERF={"IGNORE": rules}):
        with capture_queries() as captured:
            run()
        return captured.findings


def author_shape() -> str:
    """The fingerprint of the per-book author query, as findings name it."""
    with capture_queries() as captured:
        lazy_authors()
    return captured.n_plus_one[0].fingerprint


def ignores(rule: dict[str, str], run: Any = lazy_authors) -> bool:
    """Whether ``rule`` alone hides the N+1 (and there is one without it)."""
    assert findings_with([], run), "the code must have a finding to ignore"
    return findings_with([rule], run) == []


# --- Each key ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "ignored"),
    [
        ({"relation": "testapp.Book.author"}, True),
        ({"relation": "testapp.Book.*"}, True),
        ({"relation": "TESTAPP.book.AUTHOR"}, True),  # labels ignore case, like get_model()
        ({"relation": "testapp.Book.publisher"}, False),
        ({"relation": "testapp.Book"}, False),  # globs match the whole label
        ({"model": "testapp.Book"}, True),
        ({"model": "testapp.*"}, True),
        ({"model": "auth.User"}, False),
        ({"app": "testapp"}, True),
        ({"app": "test*"}, True),
        ({"app": "auth"}, False),
        ({"module": "tests.test_ignore"}, True),
        ({"module": "tests.*"}, True),
        ({"module": "wagtail.*"}, False),
        ({"kind": "n_plus_one"}, True),
        ({"kind": "duplicate"}, False),
        ({"relation": "testapp.Book.author", "reason": "vendored report code"}, True),
    ],
)
def test_finding_keys(library: None, rule: dict[str, str], ignored: bool) -> None:
    assert ignores(rule) is ignored


def test_fingerprint_by_shape_or_by_id(library: None) -> None:
    shape = author_shape()
    digest = hashlib.sha1(shape.encode()).hexdigest()
    assert ignores({"fingerprint": shape})
    assert ignores({"fingerprint": digest[:12]})  # Finding.fingerprint_id
    assert ignores({"fingerprint": digest[:10]})  # any prefix of 8 or more hex digits
    assert not ignores({"fingerprint": shape.replace(" LIMIT ?", "")})
    assert not ignores({"fingerprint": "0123456789ab"})


def test_kind_tells_duplicates_from_n_plus_one(library: None) -> None:
    def both() -> None:
        lazy_authors()
        counted_twice()

    kinds = [finding.kind for finding in findings_with([{"kind": "duplicate"}], both)]
    assert kinds == ["n_plus_one"]
    kinds = [finding.kind for finding in findings_with([{"kind": "n_plus_one"}], both)]
    assert kinds == ["duplicate"]


def test_module_matches_the_framework_line_too(library: None) -> None:
    (finding,) = findings_with([])
    admin = Callsite("/venv/wagtail/admin/views.py", 12, "index", "wagtail.admin.views")
    through_wagtail = dataclasses.replace(finding, framework=admin)
    with override_settings(DBPERF={"IGNORE": [{"module": "wagtail.*"}]}):
        assert is_ignored(through_wagtail)
        assert not is_ignored(finding)


def test_a_finding_without_a_relation_never_matches_relation_keys(library: None) -> None:
    (finding,) = findings_with([], counted_twice)
    assert finding.relation is None
    assert not ignores({"relation": "*"}, counted_twice)
    assert not ignores({"app": "*"}, counted_twice)
    assert ignores({"kind": "duplicate"}, counted_twice)


# --- Rules combine: AND within a rule, OR across rules -----------------------------------------


def test_keys_of_one_rule_must_all_match(library: None) -> None:
    assert not ignores({"relation": "testapp.Book.author", "kind": "duplicate"})
    assert not ignores({"relation": "testapp.Book.author", "module": "wagtail.*"})
    assert ignores({"relation": "testapp.Book.author", "kind": "n_plus_one", "module": "tests.*"})


def test_any_rule_may_match(library: None) -> None:
    def both() -> None:
        lazy_authors()
        counted_twice()

    rules = [{"kind": "duplicate"}, {"relation": "testapp.Book.author"}, {"model": "auth.*"}]
    assert findings_with(rules, both) == []
    assert len(findings_with(rules[2:], both)) == 2


# --- Request keys: stamped by the middleware, seen by every capture around the request ---------


@pytest.fixture
def with_middleware() -> Iterator[None]:
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        yield


def request_findings(client: Client, rules: list[dict[str, str]]) -> list[Finding]:
    with override_settings(DBPERF={"IGNORE": rules}):
        with capture_queries() as captured:
            assert client.get(N_PLUS_ONE_URL).status_code == 200
        return captured.findings


@pytest.mark.parametrize(
    ("rule", "ignored"),
    [
        ({"path": N_PLUS_ONE_URL}, True),
        ({"path": "/testapp/*"}, True),
        ({"path": "/admin/*"}, False),
        ({"path": "/testapp/"}, False),
        ({"path_regex": r"/testapp/n-plus-.*"}, True),
        ({"path_regex": r"/testapp/"}, False),  # the whole path must match (re.fullmatch)
        ({"path_regex": r"/api/v[12]/.*"}, False),
        ({"view": "n_plus_one"}, True),
        ({"view": "n_plus_*"}, True),
        ({"view": "admin:*"}, False),
        ({"view": "n_plus_one", "relation": "testapp.Book.author"}, True),
        ({"view": "n_plus_one", "relation": "testapp.Book.publisher"}, False),
    ],
)
def test_request_keys(
    client: Client, library: None, with_middleware: None, rule: dict[str, str], ignored: bool
) -> None:
    assert request_findings(client, [])
    assert (request_findings(client, [rule]) == []) is ignored


def test_request_keys_never_match_outside_a_request(library: None) -> None:
    assert not ignores({"path": "*"})
    assert not ignores({"view": "*"})


def test_without_the_middleware_requests_are_unknown(client: Client, library: None) -> None:
    assert request_findings(client, [{"path": "*"}])


def test_every_request_of_a_finding_must_be_matched(
    client: Client, library: None, with_middleware: None
) -> None:
    with capture_queries() as captured:
        client.get(N_PLUS_ONE_URL)
    # The same line, reached from another URL for half its queries.
    elsewhere = RequestInfo("/elsewhere/", "elsewhere")
    for query in captured.queries[1::2]:
        query.request = elsewhere

    def findings(rules: list[dict[str, str]]) -> list[Finding]:
        captured.__dict__.pop("findings", None)
        with override_settings(DBPERF={"IGNORE": rules}):
            return captured.findings

    assert findings([{"path": "/testapp/*"}])
    assert findings([{"path": "/testapp/*"}, {"path": "/elsewhere/"}]) == []


def test_a_duplicate_is_matched_by_the_requests_of_all_its_lines(
    client: Client, library: None, with_middleware: None
) -> None:
    with capture_queries() as captured:
        client.get("/testapp/duplicates/")  # the same count, from two lines of the view

    def findings(rules: list[dict[str, str]]) -> list[Finding]:
        captured.__dict__.pop("findings", None)
        with override_settings(DBPERF={"IGNORE": rules}):
            return captured.findings

    assert findings([{"view": "duplicates", "kind": "duplicate"}]) == []
    captured.queries[-1].request = RequestInfo("/elsewhere/", None)  # the second line's query
    assert [finding.kind for finding in findings([{"view": "duplicates"}])] == ["duplicate"]


def test_the_middleware_stops_logging_an_ignored_finding(
    client: Client, library: None, with_middleware: None, caplog: pytest.LogCaptureFixture
) -> None:
    def logged(rules: list[dict[str, str]]) -> list[str]:
        caplog.clear()
        with (
            override_settings(DBPERF={"IGNORE": rules}),
            caplog.at_level(logging.WARNING, logger="django_dbperf"),
        ):
            response = client.get(N_PLUS_ONE_URL)
        assert response["X-DB-Query-Count"] == str(1 + BOOKS)  # counted all the same
        return [r.getMessage() for r in caplog.records if r.name == "django_dbperf"]

    assert any("N+1 on testapp.Book.author" in message for message in logged([]))
    assert any("N+1 on testapp.Book.author" in message for message in logged([{"path": "/a/*"}]))
    assert logged([{"path": "/testapp/*"}]) == []
    assert logged([{"view": "n_plus_one", "relation": "testapp.Book.author"}]) == []


@override_settings(
    MIDDLEWARE=MIDDLEWARE, DBPERF={"ON_NPLUSONE": "raise", "IGNORE": [{"path": "/testapp/*"}]}
)
def test_raise_mode_lets_an_ignored_finding_through(client: Client, library: None) -> None:
    assert client.get(N_PLUS_ONE_URL).status_code == 200


# --- Test assertions ----------------------------------------------------------------------------


class FakeItem:
    """What the plugin's hook reads of a test item: its closest ``dbperf`` marker."""

    def __init__(self, **kwargs: object) -> None:
        self.marker = pytest.mark.dbperf(**kwargs).mark

    def get_closest_marker(self, name: str) -> pytest.Mark | None:
        return self.marker if name == pytest_plugin.MARKER else None


def run_marked_test(body: Any, **marker: object) -> None:
    """Run ``body`` the way the plugin runs a marked test: inside its hook wrapper."""
    hook = pytest_plugin.pytest_runtest_call(FakeItem(**marker))  # type: ignore[arg-type]
    next(hook)
    body()
    with pytest.raises(StopIteration):
        hook.send(None)


def test_marker_passes_when_the_only_n_plus_one_is_ignored(library: None) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"1 N\+1 query found"):
        run_marked_test(lazy_authors, nplusone="forbid")
    with override_settings(DBPERF={"IGNORE": [{"relation": "testapp.Book.author"}]}):
        run_marked_test(lazy_authors, nplusone="forbid")


def test_marker_honours_path_rules_of_test_client_requests(
    client: Client, library: None, with_middleware: None
) -> None:
    def body() -> None:
        client.get(N_PLUS_ONE_URL)

    with pytest.raises(pytest.fail.Exception, match=r"1 N\+1 query found"):
        run_marked_test(body, nplusone="forbid")
    with override_settings(DBPERF={"IGNORE": [{"path": "/testapp/*"}]}):
        run_marked_test(body, nplusone="forbid")


@override_settings(MIDDLEWARE=MIDDLEWARE)
class MixinTests(DbPerfTestMixin, TestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        make_library(authors=3, books_per_author=2)

    def test_assert_no_n_plus_one_fails_without_a_rule(self) -> None:
        with self.assertRaises(AssertionError), self.assertNoNPlusOne():
            self.client.get(N_PLUS_ONE_URL)

    @override_settings(DBPERF={"IGNORE": [{"view": "n_plus_one"}]})
    def test_assert_no_n_plus_one_honours_view_rules(self) -> None:
        with self.assertNoNPlusOne():
            self.client.get(N_PLUS_ONE_URL)

    @override_settings(DBPERF={"IGNORE": [{"view": "admin:*"}]})
    def test_a_rule_for_other_views_leaves_the_finding(self) -> None:
        with self.assertRaises(AssertionError), self.assertNoNPlusOne():
            self.client.get(N_PLUS_ONE_URL)

    @override_settings(DBPERF={"IGNORE": [{"relation": "testapp.Book.author"}]})
    def test_assert_no_n_plus_one_honours_relation_rules(self) -> None:
        self.assertNoNPlusOne(lazy_authors)

    def test_assert_no_n_plus_one_honours_ignore_queries(self) -> None:
        self.assertNoNPlusOne(ignore_queries(lazy_authors))


# --- ignore_queries() -----------------------------------------------------------------------


def test_ignore_queries_block_counts_but_finds_nothing(library: None) -> None:
    with (
        CaptureQueriesContext(connection) as django_count,
        capture_queries() as captured,
        ignore_queries(),
    ):
        lazy_authors()
        counted_twice()
    assert len(captured) == len(django_count) == 1 + BOOKS + 2
    assert all(query.ignored for query in captured.queries)
    assert captured.findings == []


def test_only_queries_inside_the_block_are_ignored(library: None) -> None:
    with capture_queries() as captured:
        with ignore_queries():
            lazy_authors()
        lazy_authors()
    assert len(captured) == 2 * (1 + BOOKS)
    (finding,) = captured.n_plus_one
    assert finding.count == BOOKS


def test_sync_decorator_with_and_without_parentheses(library: None) -> None:
    @ignore_queries
    def bare() -> list[str]:
        return lazy_authors()

    @ignore_queries()
    def called() -> list[str]:
        return lazy_authors()

    for decorated in (bare, called):
        with capture_queries() as captured:
            assert decorated() == lazy_authors()
        assert len(captured) == 2 * (1 + BOOKS)
        assert [finding.count for finding in captured.n_plus_one] == [BOOKS]
    assert bare.__name__ == "bare"


@pytest.mark.django_db(transaction=True)
def test_async_decorator() -> None:
    make_library(authors=3, books_per_author=2)

    async def names() -> list[str]:
        return [(await Author.objects.aget(pk=b.author_id)).name async for b in Book.objects.all()]

    async def run(view: Any) -> tuple[int, list[Finding]]:
        try:
            with capture_queries() as captured:
                await view()
            return len(captured), captured.findings
        finally:
            await sync_to_async(connections.close_all)()

    plain_count, plain_findings = asyncio.run(run(names))
    ignored_count, ignored_findings = asyncio.run(run(ignore_queries(names)))
    assert plain_count == ignored_count == 1 + BOOKS
    assert [finding.count for finding in plain_findings] == [BOOKS]
    assert ignored_findings == []


def test_nested_captures_all_leave_ignored_queries_out(library: None) -> None:
    with capture_queries() as outer, capture_queries() as middle:
        with ignore_queries(), capture_queries() as inner:
            lazy_authors()
        counted_twice()
    assert len(outer) == len(middle) == 1 + BOOKS + 2 and len(inner) == 1 + BOOKS
    assert [f.kind for f in outer.findings] == [f.kind for f in middle.findings] == ["duplicate"]
    assert inner.findings == []


def test_a_capture_inside_the_block_alone_ignores_them_too(library: None) -> None:
    with ignore_queries(), capture_queries() as captured:
        lazy_authors()
    assert len(captured) == 1 + BOOKS and captured.findings == []


def test_one_instance_can_be_entered_twice(library: None) -> None:
    ignored = ignore_queries()
    with capture_queries() as captured:
        with ignored:
            with ignored:
                lazy_authors()
            lazy_authors()
        lazy_authors()
    assert [finding.count for finding in captured.n_plus_one] == [BOOKS]


# --- Compiled rules and their checks ------------------------------------------------------------


def test_rules_are_compiled_once_per_setting() -> None:
    with override_settings(DBPERF={"IGNORE": [{"app": "auth"}]}):
        first = active_rules()
        assert active_rules() is first and len(first) == 1
    with override_settings(DBPERF={"IGNORE": [{"app": "auth"}, {"app": "admin"}]}):
        assert len(active_rules()) == 2
    assert active_rules() == ()


@pytest.mark.parametrize(
    ("rules", "message", "hint"),
    [
        (
            ["auth.User"],
            "DBPERF[\"IGNORE\"][0] is 'auth.User' (str), not a dict.",
            "e.g. {\"model\": 'auth.User'} or {\"module\": 'auth.User'}",
        ),
        (
            [{"model": "auth.User"}, {"paths": "/admin/*"}],
            "DBPERF[\"IGNORE\"][1] has an unknown key 'paths'.",
            "Did you mean 'path'?",
        ),
        ([{}], 'DBPERF["IGNORE"][0] has no key to match on', "Add one of: app, fingerprint"),
        (
            [{"reason": "third-party"}],
            'DBPERF["IGNORE"][0] has no key to match on, so it would ignore every finding.',
            "Add one of",
        ),
        (
            [{"path": ["/admin/*", "/cms/*"]}],
            "DBPERF[\"IGNORE\"][0][\"path\"] must be str, not ['/admin/*', '/cms/*'] (list).",
            "write one rule per value",
        ),
        (
            [{"app": "auth"}, {"app": "admin"}, {"path_regex": "/api/(v1"}],
            'DBPERF["IGNORE"][2]["path_regex"] is \'/api/(v1\', which is not a valid regular '
            "expression: missing ), unterminated subpattern at position 5.",
            "re.fullmatch",
        ),
        (
            [{"kind": "n+1"}],
            "DBPERF[\"IGNORE\"][0][\"kind\"] is 'n+1'; allowed values: 'n_plus_one', "
            "'duplicate', 'unused_eager_load'.",
            "every kind",
        ),
        (
            [{"fingerprint": "abc1"}],
            'DBPERF["IGNORE"][0]["fingerprint"] is \'abc1\', neither a statement shape nor a '
            "shape id.",
            "8 to 40",
        ),
    ],
)
def test_each_malformed_rule_is_a_check_error_and_refused_at_run_time(
    rules: list[object], message: str, hint: str
) -> None:
    with override_settings(DBPERF={"IGNORE": rules}):
        (error,) = check_settings()
        assert error.id == "dbperf.E012"
        assert message in error.msg
        assert hint in (error.hint or "")
        with capture_queries() as captured:
            Author.objects.count()
        with pytest.raises(ImproperlyConfigured) as refused:
            captured.findings  # noqa: B018
        assert message in str(refused.value)


@override_settings(DBPERF={"IGNORE": {"model": "auth.User"}})
def test_ignore_must_be_a_list() -> None:
    (error,) = check_settings()
    assert error.id == "dbperf.E003"
    assert "DBPERF['IGNORE'] must be list or tuple, not {'model': 'auth.User'} (dict)" in error.msg
    with pytest.raises(ImproperlyConfigured, match="must be a list of rules"):
        active_rules()


@override_settings(
    DBPERF={
        "IGNORE": [
            {"path": "/admin/*", "reason": "Django admin changelists we do not own"},
            {"view": "wagtailadmin_pages:*", "model": "wagtailcore.*"},
            {"module": "wagtail.*", "kind": "n_plus_one"},
            {"relation": "auth.User.groups", "path_regex": r"/api/v[12]/.*"},
            {"fingerprint": "0123456789ab"},
        ]
    }
)
def test_valid_rules_pass_the_checks() -> None:
    assert check_settings() == []
