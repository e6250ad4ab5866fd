"""``dbperf_audit``: pages requested through the test client, findings with their fix and what
fixing them saves, the crawl of every GET route, baselines for CI, JUnit XML, and a
CommandError that says what to do for each bad argument."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from tests.helpers import make_library
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.django_db


def audit(*args: str) -> tuple[str, int]:
    """The command's output and exit code (0, or the CommandError's returncode)."""
    out = StringIO()
    try:
        call_command("dbperf_audit", *args, stdout=out)
    except CommandError as error:
        return out.getvalue() + f"\n{error}", error.returncode
    return out.getvalue(), 0


def as_json(*args: str) -> tuple[dict[str, Any], int]:
    output, code = audit(*args, "--format", "json")
    return json.loads(output[: output.rindex("}") + 1]), code


def test_a_page_with_an_nplusone_fails_and_names_the_fix_and_the_saving() -> None:
    make_library(authors=4, books_per_author=2)
    output, code = audit("/testapp/n-plus-one/", "/testapp/clean/")
    assert code == 1
    assert "GET /testapp/n-plus-one/  200  9 queries" in output
    assert "N+1 testapp.Book.author: 8 queries" in output
    assert 'fix: add .select_related("author")' in output
    assert "saves about 7 queries" in output
    assert "GET /testapp/clean/  200  1 queries" in output
    assert "FAILED: 1 page(s)\n  /testapp/n-plus-one/: 1 N+1 finding(s)" in output


def test_fail_on_chooses_what_fails_and_budget_comes_from_max_queries() -> None:
    make_library(authors=2, books_per_author=2)
    data, code = as_json("/testapp/duplicates/", "--fail-on", "duplicates")
    assert code == 1 and data["failures"] == {"/testapp/duplicates/": ["1 duplicate finding(s)"]}
    (page,) = data["pages"]
    (finding,) = page["findings"]
    assert finding["kind"] == "duplicate" and finding["saves_queries"] == 1
    _, code = audit("/testapp/duplicates/", "--fail-on", "nplusone")
    assert code == 0
    assert audit("/testapp/n-plus-one/", "--fail-on", "none")[1] == 0
    assert audit("/testapp/broken/", "--fail-on", "none")[1] == 1  # a crash always fails
    data, code = as_json("/testapp/clean/", "--max-queries", "0", "--fail-on", "budget")
    assert code == 1 and data["pages"][0]["over_budget"] is True


def test_a_crashing_view_is_reported_and_the_audit_goes_on() -> None:
    output, code = audit("/testapp/broken/", "/testapp/clean/")
    assert code == 1
    assert "the view failed: ValueError: the report template is missing at" in output
    assert "GET /testapp/clean/  200" in output


def test_all_fills_arguments_from_real_rows_and_says_what_it_skipped() -> None:
    books = make_library(authors=1, books_per_author=1)
    data, _ = as_json("--all", "--fail-on", "budget")
    urls = [page["url"] for page in data["pages"]]
    assert f"/testapp/books/{books[0].pk}/" in urls  # the view names its model
    assert "/testapp/clean/" in urls
    skipped = {route["pattern"]: route["skipped"] for route in data["skipped"]}
    assert skipped["testapp/authors/<slug:handle>/"].startswith("no model to fill <handle>")
    assert not any(url.startswith("/admin/") for url in urls)
    assert any(reason.startswith("an admin route") for reason in skipped.values())
    assert any(reason.startswith("a debug route") for reason in skipped.values())


def test_user_requests_as_that_user() -> None:
    User.objects.create_superuser("boss", password="pw")
    data, _ = as_json("/admin/", "--user", "boss", "--fail-on", "budget")
    assert data["pages"][0]["status"] == 200
    data, _ = as_json("/admin/", "--fail-on", "budget")
    assert data["pages"][0]["status"] == 302  # to the login page


def test_a_baseline_fails_only_on_what_is_new_or_worse(tmp_path: Path) -> None:
    make_library(authors=3, books_per_author=1)
    path = tmp_path / "baseline.json"
    output, code = audit("/testapp/n-plus-one/", "--baseline", str(path), "--update-baseline")
    assert code == 0 and path.exists()
    recorded = json.loads(path.read_text())
    assert recorded["pages"]["/testapp/n-plus-one/"]["findings"] == [
        "nplusone testapp.Book.author at tests/testapp/views.py:n_plus_one"
    ]
    # The same N+1 again: known, so the gate passes.
    assert audit("/testapp/n-plus-one/", "--baseline", str(path))[1] == 0
    # More rows: 4 queries -> 11 grows past the tolerance (10% or 2 queries).
    for number in range(7):
        Book.objects.create(title=f"More {number}", author=Author.objects.create(name=f"A{number}"))
    output, code = audit("/testapp/n-plus-one/", "--baseline", str(path))
    assert code == 1 and "11 queries, up from 4" in output
    # A finding the baseline does not hold is new.
    recorded["pages"]["/testapp/n-plus-one/"] = {"queries": 100, "findings": []}
    path.write_text(json.dumps(recorded))
    output, code = audit("/testapp/n-plus-one/", "--baseline", str(path))
    assert (
        code == 1 and "new N+1: testapp.Book.author at tests/testapp/views.py:n_plus_one" in output
    )


def test_junit_shows_each_url_as_a_test_case() -> None:
    make_library(authors=2, books_per_author=2)
    output, code = audit("/testapp/n-plus-one/", "/testapp/clean/", "--format", "junit")
    root = ET.fromstring(output[: output.rindex(">") + 1])
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert code == 1
    assert cases["GET /testapp/n-plus-one/"].find("failure") is not None
    assert cases["GET /testapp/clean/"].find("failure") is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Give the URLs to audit"),
        (("/no/such/page/",), "/no/such/page/ matches no URL pattern"),
        (("http://example.com/events/",), "is not a path"),
        (("/testapp/clean/", "--user", "nobody"), "There is no user 'nobody'"),
        (("/testapp/clean/", "--fail-on", "nplusone,typos"), "Unknown --fail-on kind(s): typos"),
        (("/testapp/clean/", "--update-baseline"), "--update-baseline writes the file given"),
        (("/testapp/clean/", "--max-queries", "-1"), "--max-queries must be 0 or more"),
        (("/testapp/clean/", "--baseline", "/nonexistent/b.json"), "does not exist: create it"),
    ],
)
def test_bad_input_is_a_command_error_that_says_what_to_do(
    args: tuple[str, ...], message: str
) -> None:
    with pytest.raises(
        CommandError, match=message.replace("(", r"\(").replace(")", r"\)")
    ) as caught:
        call_command("dbperf_audit", *args, stdout=StringIO())
    assert caught.value.returncode == 2


def test_a_malformed_baseline_is_a_command_error(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    for text, message in [
        ("{not json", "is not valid JSON"),
        ('{"version": 9}', "is not a dbperf_audit baseline"),
        ('{"version": 1, "pages": {"/x/": {"findings": []}}}', 'has no "queries" count'),
    ]:
        path.write_text(text)
        with pytest.raises(CommandError, match=message) as caught:
            call_command("dbperf_audit", "/testapp/clean/", "--baseline", str(path))
        assert caught.value.returncode == 2


def test_the_example_project_before_and_after_the_managers() -> None:
    """The naive pages have N+1 findings with their fix; their /fast/ twins (managers with
    profiles) have none, on SQLite and PostgreSQL alike."""
    call_command("seed_demo", events=20, reset=True, stdout=StringIO())
    data, code = as_json("/events/", "/fast/events/", "/logs/", "/fast/logs/")
    pages = {page["url"]: page for page in data["pages"]}
    assert code == 1 and set(data["failures"]) == {"/events/", "/logs/"}
    relations = {finding["subject"] for finding in pages["/events/"]["findings"]}
    assert {"scheduler.Event.owner", "scheduler.Event.tags"} <= relations
    assert pages["/fast/events/"]["findings"] == [] and pages["/fast/logs/"]["findings"] == []
    assert pages["/fast/events/"]["queries"] < pages["/events/"]["queries"] / 5
