"""Real pages of the Django admin, DRF and Wagtail, captured: counts, growth and findings.

Each page is visited warm (see ``pages.visit``). The naive pages' query counts grow with their
items; the fixes django_dbperf prints for them, applied as printed (``site.applied``), must stop
that growth. The precision tests at the end state what a finding must be on code nobody wrote
for django_dbperf, on every page.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator, Set
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import transaction

from django_dbperf.analysis import DUPLICATE, N_PLUS_ONE, Finding
from django_dbperf.capture import QueryRecord
from tests.realclients.pages import APPLIED_PAGES, FIXED, NAIVE, PAGES, PageCase, Visit, visit
from tests.realclients.seed import Seeded, seed
from tests.realclients.site.applied import APPLIED, apply_fixes, parse_call
from tests.realclients.site.models import Article

pytestmark = pytest.mark.django_db

Visited = Callable[[PageCase], Visit]


def pages(only: Callable[[PageCase], bool] | None = None) -> list[object]:
    """The page list as parameters, named by page id."""
    return [pytest.param(case, id=case.id) for case in PAGES if only is None or only(case)]


def test_system_checks_pass() -> None:
    call_command("check", fail_level="WARNING")


@pytest.mark.parametrize("case", pages())
def test_page_status_and_query_count(case: PageCase, visited: Visited) -> None:
    page = visited(case)
    assert page.status == case.status, f"GET {page.url} as {case.user or 'anonymous'}"
    # The capture sees exactly the queries Django's own CaptureQueriesContext sees...
    assert len(page.captured) == page.django_count
    # ...and the middleware, nested inside, counted the same request.
    assert page.header_count == str(len(page.captured))


def _count_with_more_items(case: PageCase, seeded: Seeded, extra: int) -> int:
    with transaction.atomic():
        seed(extra)
        count = len(visit(case, seeded).captured)
        transaction.set_rollback(True)
    return count


@pytest.mark.parametrize("case", pages(only=lambda case: case.variant is not None))
def test_query_count_with_more_items(case: PageCase, seeded: Seeded) -> None:
    fewer, more = (_count_with_more_items(case, seeded, extra) for extra in (2, 6))
    if case.variant == FIXED:
        assert more == fewer, f"{case.id}: {fewer} queries with 2 more items, {more} with 6"
    else:
        assert case.variant == NAIVE
        assert more > fewer, f"{case.id}: {fewer} queries with 2 more items, {more} with 6"


@pytest.mark.parametrize("case", pages(only=lambda case: bool(case.expected)))
def test_page_names_its_relations(case: PageCase, visited: Visited) -> None:
    """Every relation loaded row by row, tags (taggit's generic or "through" model) included."""
    missing = case.expected - {finding.relation for finding in visited(case).captured.n_plus_one}
    assert not missing, f"no N+1 finding names {sorted(missing)}"


@pytest.mark.parametrize("case", pages(only=lambda case: case.variant == FIXED))
def test_fixed_page_has_no_n_plus_one(case: PageCase, visited: Visited) -> None:
    assert [str(finding) for finding in visited(case).captured.n_plus_one] == []


# -- Precision: what every finding must be --------------------------------------------------------


def records_of(finding: Finding, records: list[QueryRecord]) -> list[QueryRecord]:
    """The captured queries an N+1 finding stands for: its shape, from its line and template.

    A finding placed in no project line (``callsite`` None) may gather queries whose records
    name framework lines: then every query of its shape and template is taken.
    """
    return [
        record
        for record in records
        if record.fingerprint == finding.fingerprint
        and record.template == finding.template
        and (finding.callsite is None or record.callsite == finding.callsite)
    ]


@pytest.mark.parametrize("case", pages())
def test_n_plus_one_queries_differ(case: PageCase, visited: Visited) -> None:
    """The same SQL with the same parameters, repeated, is a duplicate: never an N+1."""
    captured = visited(case).captured
    identical = []
    for finding in captured.n_plus_one:
        records = records_of(finding, captured.queries)
        assert len(records) >= finding.count, f"records not found for {finding}"
        if len({(record.sql, repr(record.params)) for record in records}) == 1:
            identical.append(str(finding))
    assert identical == []


@pytest.mark.parametrize("case", pages())
def test_relations_are_the_pages_own(case: PageCase, visited: Visited) -> None:
    """A finding names only a relation the page loads row by row."""
    wrong = [
        finding.title
        for finding in visited(case).captured.n_plus_one
        if finding.relation is not None and finding.relation not in case.expected
    ]
    assert wrong == []


_BAD_RELATION_ENDINGS = (".+", ".id", ".pk", "_ptr")
_EAGER_CALL = re.compile(r"\.(?:select_related|prefetch_related)\(")


def eager_calls(suggestion: str) -> list[str]:
    """Each ``.select_related(...)``/``.prefetch_related(...)`` of a suggestion, to the ``)``."""
    calls = []
    for match in _EAGER_CALL.finditer(suggestion):
        depth, end = 0, match.end() - 1
        for end in range(match.end() - 1, len(suggestion)):
            depth += {"(": 1, ")": -1}.get(suggestion[end], 0)
            if depth == 0:
                break
        calls.append(suggestion[match.start() : end + 1])
    return calls


def test_eager_calls_are_extracted_whole() -> None:
    text = 'add .prefetch_related(Prefetch("a", queryset=A.objects.all())) and .select_related('
    assert eager_calls(text) == [
        '.prefetch_related(Prefetch("a", queryset=A.objects.all()))',
        ".select_related(",
    ]


@pytest.mark.parametrize("case", pages())
def test_relations_and_fixes_are_valid(case: PageCase, visited: Visited) -> None:
    """A relation names a real field, and a suggested eager load is Python that parses."""
    problems = []
    for finding in visited(case).captured.findings:
        if finding.kind == N_PLUS_ONE and (finding.relation or "").endswith(_BAD_RELATION_ENDINGS):
            problems.append(f"relation {finding.relation!r} in {finding.title}")
        for call in eager_calls(finding.suggestion):
            try:
                ast.parse(f"queryset{call}", mode="eval")
            except SyntaxError:
                problems.append(f"invalid Python {call!r} in {finding.suggestion!r}")
    assert problems == []


# The suite's own files sit in BASE_DIR too, but a finding placed at the test client's
# `client.get()` tells a user nothing: only the project's code (the app, urls) counts.
HARNESS = frozenset({"conftest.py", "pages.py", "report.py", "seed.py", "test_pages.py"})


def _in_project(finding: Finding) -> bool:
    """A project line ran it, or (no project line did) an installed package's line, named."""
    base = Path(settings.BASE_DIR)
    if finding.callsite is not None:
        path = Path(finding.callsite.path).resolve()
        return path.is_relative_to(base) and str(path.relative_to(base)) not in HARNESS
    if finding.framework is None:
        return False
    return not Path(finding.framework.path).resolve().is_relative_to(base)


@pytest.mark.parametrize("case", pages())
def test_findings_say_where(case: PageCase, visited: Visited) -> None:
    """Every finding points at a project line, or says which framework ran the queries."""
    findings = visited(case).captured.findings
    assert [finding.title for finding in findings if not _in_project(finding)] == []
    # A duplicate names every line that ran it.
    assert [
        finding.title for finding in findings if finding.kind == DUPLICATE and not finding.callsites
    ] == []


# -- The printed fixes, applied as printed, stop the growth ---------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '.filter(title="x")',
        '.select_related("writer").delete()',
        '.prefetch_related(Prefetch("comments"))',
        ".select_related(writer)",
        ".select_related(*names)",
        '.select_related("writer", **options)',
        ".select_related(1)",
        '.prefetch_related("tags", for_specific_subqueries=flag)',
        '__import__("os").system("true")',
        'select_related("writer")',
        '.select_related("writer"',
    ],
)
def test_apply_fixes_refuses_other_code(applied: dict[str, list[str]], text: str) -> None:
    applied["page"] = [text]
    with pytest.raises(ValueError):
        apply_fixes(Article.objects.all(), "page")


def test_apply_fixes_applies_the_calls(applied: dict[str, list[str]]) -> None:
    applied["page"] = [
        '.select_related("writer__publisher")',
        '.prefetch_related("comments__user", "tags")',
    ]
    queryset = apply_fixes(Article.objects.all(), "page")
    assert queryset.query.select_related == {"writer": {"publisher": {}}}
    assert queryset._prefetch_related_lookups == ("comments__user", "tags")
    assert apply_fixes(Article.objects.all(), "another page").query.select_related is False
    assert parse_call('.prefetch_related("authors__author", for_specific_subqueries=True)') == (
        "prefetch_related",
        ("authors__author",),
        {"for_specific_subqueries": True},
    )


@pytest.fixture
def applied() -> Iterator[dict[str, list[str]]]:
    """The registry of applied fixes, emptied after the test."""
    APPLIED.clear()
    yield APPLIED
    APPLIED.clear()


# A fix that says no eager load helps (the framework re-queries each row past any prefetch,
# e.g. Wagtail's API TagsField runs tags.all().order_by("name").values_list("name")).
NOT_FIXABLE_HERE = "prefetching does not help"


def _count_fixable(case: PageCase, seeded: Seeded, extra: int, unfixable: Set[str]) -> int:
    """The page's queries with ``extra`` more items, leaving out shapes no queryset can fix."""
    with transaction.atomic():
        seed(extra)
        captured = visit(case, seeded).captured
        transaction.set_rollback(True)
    return sum(query.fingerprint not in unfixable for query in captured)


@pytest.mark.parametrize(
    "case", [pytest.param(case, id=case.id) for case in PAGES if case.id in APPLIED_PAGES]
)
def test_printed_fixes_stop_the_growth(
    case: PageCase, visited: Visited, seeded: Seeded, applied: dict[str, list[str]]
) -> None:
    """The eager loads every N+1 finding prints, applied to the page's queryset as printed.

    A finding whose fix says no eager load helps there is left out, and its queries with it:
    every other query of the page must stop growing.
    """
    findings = visited(case).captured.n_plus_one
    unfixable = {f.fingerprint for f in findings if NOT_FIXABLE_HERE in f.suggestion}
    calls = list(
        dict.fromkeys(call for finding in findings for call in eager_calls(finding.suggestion))
    )
    assert calls, f"{case.id}: no N+1 finding prints an eager load"
    applied[case.id] = calls
    applied_page = APPLIED_PAGES[case.id]
    fewer, more = (_count_fixable(applied_page, seeded, n, unfixable) for n in (2, 6))
    left = [
        str(finding)
        for finding in visit(applied_page, seeded).captured.n_plus_one
        if finding.fingerprint not in unfixable
    ]
    assert (more, left) == (fewer, []), (
        f"{case.id} with {' '.join(calls)}: {fewer} queries with 2 more items, {more} with 6; "
        f"N+1 findings left: {left}"
    )
