"""The pages of the real-client project the suite and the report visit, and how to visit one.

A visit requests the page once to warm it up (Wagtail creates image renditions and fills its
caches on a first view), then again inside both ``capture_queries()`` and Django's own
``CaptureQueriesContext``: the second request is what a visitor of a running site costs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.cache import caches
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from django_dbperf import capture_queries
from django_dbperf.middleware import QUERY_COUNT_HEADER
from tests.realclients.seed import Seeded

NAIVE, FIXED = "naive", "fixed"


@dataclass(frozen=True)
class PageCase:
    id: str  # a readable test id
    url: Callable[[Seeded], str]
    user: str | None = None  # "admin" (superuser), "editor" (in Wagtail's Editors group)
    status: int = 200
    # NAIVE: its query count grows with the items (an N+1 is really there); FIXED: it does not.
    variant: str | None = None
    # Every relation ("app_label.Model.field") the page loads row by row: findings must name
    # these and no other. (Per-row queries that load no relation, such as Wagtail's .specific,
    # or its own permission checks, are N+1s without a relation.)
    expected: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return self.id


# The Wagtail API v2 pages endpoint, asked for the relations the blog posts load.
API_PAGES_QUERY = "?type=realsite.BlogPage&fields=tags,feed_image,categories"

PAGES = [
    # The Django admin.
    PageCase(
        "admin-changelist",
        lambda s: "/django-admin/realsite/article/",
        "admin",
        variant=NAIVE,
        expected=frozenset(
            {"realsite.Article.writer", "realsite.Article.publisher", "realsite.Article.tags"}
        ),
    ),
    PageCase(
        "admin-changelist-fixed",
        lambda s: "/django-admin-fixed/realsite/article/",
        "admin",
        variant=FIXED,
    ),
    PageCase(
        "admin-change-form",
        lambda s: f"/django-admin/realsite/article/{s.article_id}/change/",
        "admin",
    ),
    PageCase("admin-add-form", lambda s: "/django-admin/realsite/article/add/", "admin"),
    # Django REST framework.
    PageCase(
        "drf-list",
        lambda s: "/drf/articles/",
        variant=NAIVE,
        expected=frozenset(
            {
                "realsite.Article.writer",
                "realsite.Article.publisher",
                "realsite.Writer.publisher",
                "realsite.Article.comments",
                "realsite.Comment.user",
                "realsite.Article.tags",
            }
        ),
    ),
    PageCase("drf-list-fixed", lambda s: "/drf/articles/fixed/", variant=FIXED),
    # The Wagtail admin.
    PageCase("wagtail-explorer", lambda s: f"/admin/pages/{s.index_id}/", "admin"),
    # Wagtail's own per-page permission checks for a non-superuser: two queries per child.
    PageCase(
        "wagtail-explorer-editor", lambda s: f"/admin/pages/{s.index_id}/", "editor", variant=NAIVE
    ),
    PageCase("wagtail-page-edit", lambda s: f"/admin/pages/{s.post_id}/edit/", "admin"),
    PageCase("wagtail-users", lambda s: "/admin/users/", "admin"),
    PageCase("wagtail-groups", lambda s: "/admin/groups/", "admin"),
    PageCase("wagtail-images", lambda s: "/admin/images/", "admin"),
    PageCase("wagtail-snippets-authors", lambda s: "/admin/snippets/realsite/author/", "admin"),
    # The Wagtail site.
    # Its "everything on the site" list reads each page's .specific: one query per page.
    PageCase("site-home", lambda s: "/", variant=NAIVE),
    PageCase(
        "site-blog-index",
        lambda s: "/blog/",
        variant=NAIVE,
        expected=frozenset(
            {
                "realsite.BlogPage.feed_image",
                "realsite.BlogPage.categories",
                "realsite.BlogPage.authors",
                "realsite.BlogPageAuthor.author",
                "realsite.BlogPage.tags",
            }
        ),
    ),
    PageCase("site-blog-index-fixed", lambda s: "/blog/?fixed=1", variant=FIXED),
    PageCase("site-blog-post", lambda s: s.post_url),
    # The Wagtail API v2.
    PageCase(
        "api-pages",
        lambda s: f"/api/v2/pages/{API_PAGES_QUERY}",
        variant=NAIVE,
        expected=frozenset(
            {
                "realsite.BlogPage.feed_image",
                "realsite.BlogPage.categories",
                "realsite.BlogPage.tags",
            }
        ),
    ),
    PageCase(
        "api-images",
        lambda s: "/api/v2/images/",
        variant=NAIVE,
        expected=frozenset({"wagtailimages.Image.tags"}),
    ),
]


# The naive pages again, their queryset passed through ``site.applied.apply_fixes()``: with the
# fixes the naive page printed registered, by the naive page's id. Kept out of PAGES: with
# nothing registered they are the naive pages once more.
APPLIED_PAGES = {
    "admin-changelist": PageCase(
        "admin-changelist-applied", lambda s: "/django-admin-applied/realsite/article/", "admin"
    ),
    "drf-list": PageCase("drf-list-applied", lambda s: "/drf/articles/applied/"),
    "site-blog-index": PageCase("site-blog-index-applied", lambda s: "/blog/?applied=1"),
    "api-pages": PageCase(
        "api-pages-applied", lambda s: f"/api/v2/pages-applied/{API_PAGES_QUERY}"
    ),
}


@dataclass
class Visit:
    case: PageCase
    url: str
    status: int
    captured: capture_queries
    django_count: int  # len(CaptureQueriesContext.captured_queries) around the same request
    header_count: str | None  # what QueryCountMiddleware put in X-DB-Query-Count


def client_for(case: PageCase) -> Client:
    client = Client()
    if case.user:
        client.force_login(User.objects.get(username=case.user))
    return client


def visit(case: PageCase, seeded: Seeded, client: Client | None = None) -> Visit:
    """Request the page warm, counting its queries both ways."""
    client = client or client_for(case)
    url = case.url(seeded)
    for cache in caches.all():
        cache.clear()  # what earlier visits left there must not change this one's count
    client.get(url)
    with CaptureQueriesContext(connection) as django_capture, capture_queries() as captured:
        response = client.get(url)
    return Visit(
        case,
        url,
        response.status_code,
        captured,
        len(django_capture.captured_queries),
        response.headers.get(QUERY_COUNT_HEADER),
    )
