"""The admin pages under /admin/django_dbperf/: who may see them, what they show, escaping, and
EXPLAIN safe by construction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings

from django_dbperf import capture_queries, stats
from django_dbperf.stats.flusher import FLUSHER
from django_dbperf.stats.models import FindingStat, PgStatement, QueryShape, QueryShapeSite
from tests.helpers import make_library
from tests.test_middleware import MIDDLEWARE
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN_MIDDLEWARE = [
    *MIDDLEWARE,
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
PAGES = [
    "/admin/django_dbperf/",
    "/admin/django_dbperf/dashboard/",
    "/admin/django_dbperf/queryshape/",
    "/admin/django_dbperf/findingstat/",
    "/admin/django_dbperf/pgstatement/",
    "/admin/django_dbperf/databasehealth/",
    "/admin/django_dbperf/cachereport/",
    "/admin/django_dbperf/indexadvice/",
]


@pytest.fixture(autouse=True)
def settings_and_buffer() -> Iterator[None]:
    FLUSHER.buffer.take()
    with override_settings(MIDDLEWARE=ADMIN_MIDDLEWARE):
        yield
    FLUSHER.buffer.take()


@pytest.fixture
def recorded(client: Client) -> QueryShape:
    """Two sampled requests of the N+1 view, flushed: shapes, sites and a finding."""
    make_library(authors=3, books_per_author=2)
    client.get("/testapp/n-plus-one/")
    client.get("/testapp/n-plus-one/")
    assert stats.flush().written
    return QueryShape.objects.get(sql__contains='FROM "testapp_author"')


def user(name: str, *, staff: bool, allowed: bool = False, superuser: bool = False) -> User:
    account = User.objects.create_user(name, password="pw", is_staff=staff)
    account.is_superuser = superuser
    account.save()
    if allowed:
        account.user_permissions.add(Permission.objects.get(codename="view_dbperf"))
    return account


def signed_in(account: User) -> Client:
    client = Client()
    client.force_login(account)
    return client


def explain_url(shape: QueryShape) -> str:
    return f"/admin/django_dbperf/queryshape/{shape.pk}/explain/"


# --- who may see them -------------------------------------------------------------------------


def test_anonymous_users_go_to_the_login_page(recorded: QueryShape) -> None:
    for url in [*PAGES, f"/admin/django_dbperf/queryshape/{recorded.pk}/"]:
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    response = Client().post(explain_url(recorded))
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("staff", [False, True])
def test_users_without_the_permission_get_403_on_every_page_and_post(
    recorded: QueryShape, staff: bool
) -> None:
    client = signed_in(user("someone", staff=staff))
    for url in [*PAGES[1:], f"/admin/django_dbperf/queryshape/{recorded.pk}/"]:
        assert client.get(url).status_code == 403, url
    client = Client(enforce_csrf_checks=False)
    client.force_login(User.objects.get(username="someone"))
    assert client.post(explain_url(recorded)).status_code == 403


def test_non_staff_with_the_permission_still_get_403(recorded: QueryShape) -> None:
    client = signed_in(user("outsider", staff=False, allowed=True))
    assert client.get("/admin/django_dbperf/dashboard/").status_code == 403


def test_staff_with_the_permission_see_every_page(recorded: QueryShape) -> None:
    client = signed_in(user("analyst", staff=True, allowed=True))
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 200, url
    index = client.get("/admin/").content.decode()
    assert "/admin/django_dbperf/dashboard/" in index


# --- what they show -----------------------------------------------------------------------------


def test_the_dashboard_shows_views_statements_and_nplusone_sites(recorded: QueryShape) -> None:
    page = signed_in(user("a", staff=True, allowed=True)).get("/admin/django_dbperf/dashboard/")
    html = page.content.decode()
    assert "n_plus_one" in html  # the slowest view, by name
    assert recorded.fingerprint_id in html
    assert "testapp.Book.author" in html and "tests/testapp/views.py:" in html
    assert "every request is sampled" in html.lower()


def test_the_statement_list_sorts_and_filters(recorded: QueryShape) -> None:
    client = signed_in(user("a", staff=True, allowed=True))
    for order in ("2", "3", "4", "5", "6"):  # calls, total, mean, p95, max
        assert client.get(f"/admin/django_dbperf/queryshape/?o={order}").status_code == 200
    by_view = client.get("/admin/django_dbperf/queryshape/?view=n_plus_one").content.decode()
    assert recorded.fingerprint_id in by_view
    assert (
        recorded.fingerprint_id
        not in client.get("/admin/django_dbperf/queryshape/?view=nothing").content.decode()
    )
    for search in ("testapp_author", '"testapp_author"."name"', recorded.fingerprint_id[:6]):
        found = client.get("/admin/django_dbperf/queryshape/", {"q": search}).content.decode()
        assert recorded.fingerprint_id in found, search
    missing = client.get("/admin/django_dbperf/queryshape/", {"q": "testapp_author nosuch"})
    assert recorded.fingerprint_id not in missing.content.decode()


def test_the_detail_page_shows_sql_lines_percentiles_and_trend(recorded: QueryShape) -> None:
    html = (
        signed_in(user("a", staff=True, allowed=True))
        .get(f"/admin/django_dbperf/queryshape/{recorded.pk}/")
        .content.decode()
    )
    assert 'FROM "testapp_author"' in html.replace("&quot;", '"')
    assert "tests/testapp/views.py:" in html and "n_plus_one" in html
    assert "<svg" in html and 'class="bar"' in html
    assert "p95" in html and 'name="analyze"' in html


def test_pages_run_a_constant_number_of_queries(
    client: Client, django_assert_max_num_queries: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_library(authors=2, books_per_author=2)
    admin_client = signed_in(user("a", staff=True, allowed=True))

    def counts() -> list[int]:
        result = []
        for url in PAGES[1:5]:
            with CaptureQueriesContext(connection) as queries:
                assert admin_client.get(url).status_code == 200
            result.append(len(queries))
        return result

    client.get("/testapp/n-plus-one/")
    stats.flush()
    few = counts()
    for _ in range(3):
        client.get("/testapp/n-plus-one/")
        client.get("/testapp/duplicates/")
        client.get("/testapp/clean/")
    with capture_queries() as captured:
        list(Author.objects.filter(name__startswith="A"))
        list(Book.objects.filter(pages__gt=2))
    stats.record_request(captured.queries, [], view="more", sample_rate=1.0)
    stats.flush()
    assert QueryShape.objects.count() > 3
    assert counts() == few


# --- escaping -------------------------------------------------------------------------------------


def test_stored_sql_views_and_lines_are_escaped_everywhere(recorded: QueryShape) -> None:
    evil = "<script>alert(1)</script>"
    QueryShape.objects.filter(pk=recorded.pk).update(sql=f"SELECT '{evil}' FROM x")
    QueryShapeSite.objects.filter(shape=recorded).update(view=evil, callsite=evil, framework=evil)
    FindingStat.objects.update(callsite=evil, subject=evil, view=evil, suggestion=evil)
    client = signed_in(user("a", staff=True, allowed=True))
    for url in [*PAGES[1:], f"/admin/django_dbperf/queryshape/{recorded.pk}/"]:
        html = client.get(url).content.decode()
        assert evil not in html, url
    assert (
        "&lt;script&gt;"
        in client.get(f"/admin/django_dbperf/queryshape/{recorded.pk}/").content.decode()
    )


# --- EXPLAIN -------------------------------------------------------------------------------------


def test_explain_shows_a_plan_for_a_stored_select(recorded: QueryShape) -> None:
    client = signed_in(user("a", staff=True, allowed=True))
    html = client.post(explain_url(recorded)).content.decode()
    assert 'id="plan-text"' in html and "testapp_author" in html


def test_explain_refuses_other_statements_and_unknown_ids_and_changes_nothing(
    recorded: QueryShape,
) -> None:
    with capture_queries() as captured:
        Book.objects.update(pages=5)
    stats.record_request(captured.queries, [], view="writes", sample_rate=1.0)
    stats.flush()
    update = QueryShape.objects.get(sql__startswith="UPDATE")
    client = signed_in(user("a", staff=True, allowed=True))
    Book.objects.update(pages=9)
    html = client.post(explain_url(update), follow=True).content.decode()
    assert "EXPLAIN runs only for SELECT statements" in html
    assert set(Book.objects.values_list("pages", flat=True)) == {9}  # the UPDATE never ran
    # A tampered stored statement: flagged SELECT, but a write inside.
    QueryShape.objects.filter(pk=recorded.pk).update(sql="DELETE FROM testapp_book")
    html = client.post(explain_url(recorded)).content.decode()
    assert "EXPLAIN refused" in html and Book.objects.count() > 0
    assert client.post("/admin/django_dbperf/queryshape/999999/explain/").status_code == 404
    assert client.get(explain_url(recorded)).status_code == 405  # POST only


def test_explain_needs_a_csrf_token(recorded: QueryShape) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user("a", staff=True, allowed=True))
    assert client.post(explain_url(recorded)).status_code == 403


def test_explain_analyze_only_for_superusers_when_enabled(recorded: QueryShape) -> None:
    staff = signed_in(user("a", staff=True, allowed=True))
    html = staff.post(explain_url(recorded), {"analyze": "1"}).content.decode()
    assert "EXPLAIN ANALYZE is not allowed" in html
    boss = signed_in(user("boss", staff=True, superuser=True))
    html = boss.post(explain_url(recorded), {"analyze": "1"}).content.decode()
    assert "EXPLAIN ANALYZE is not allowed" in html  # not enabled in settings


def test_pg_statements_rows_link_to_views_or_say_they_were_never_sampled(
    recorded: QueryShape,
) -> None:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    QueryShape.objects.filter(pk=recorded.pk).update(queryid=42)
    PgStatement.objects.create(
        userid=1, dbid=1, queryid=42, query="SELECT 1", calls=3, first_seen=now, last_seen=now
    )
    PgStatement.objects.create(
        userid=1, dbid=1, queryid=7, query="SELECT 2", calls=9, first_seen=now, last_seen=now
    )
    html = (
        signed_in(user("a", staff=True, allowed=True))
        .get("/admin/django_dbperf/pgstatement/")
        .content.decode()
    )
    assert recorded.fingerprint_id in html and "n_plus_one" in html
    assert "not seen in sampled requests" in html


def test_the_trend_chart_draws_one_bar_per_hour_with_data_and_escapes_labels() -> None:
    import datetime as dt

    from django_dbperf.admin.charts import Point, trend_svg

    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    points = [
        Point(start + dt.timedelta(hours=hour), calls, p95)
        for hour, calls, p95 in [(0, 10, 2.0), (5, 30, None), (23, 5, 9.5), (30, 99, 1.0)]
    ]
    svg = str(trend_svg(points, start=start, hours=24, bar_label="<b>", line_label="ms"))
    assert svg.count('class="bar"') == 3  # the hour past the range is left out
    assert svg.count('class="dot"') == 2 and "<b>" not in svg and "&lt;b&gt;" in svg
    empty = str(trend_svg([], start=start, hours=24, bar_label="calls", line_label="ms"))
    assert "No data in these 24 hours" in empty and 'class="bar"' not in empty


def test_the_cache_page_shows_counters_and_why_reads_were_served_uncached(
    cache_alias: str,
) -> None:
    from django_dbperf.cache.store import STORE

    make_library(authors=1, books_per_author=2)
    list(Book.cache.plain().all().cached())
    list(Book.cache.plain().all().cached())
    STORE.bypass("testapp.Book", "a <b>reason</b> from another process")
    STORE.reset()  # as another process: only the cache server knows the reason now
    html = (
        signed_in(user("a", staff=True, allowed=True))
        .get("/admin/django_dbperf/cachereport/")
        .content.decode()
    )
    assert "testapp.Book" in html and "Hit ratio" in html
    assert "a &lt;b&gt;reason&lt;/b&gt; from another process" in html


def test_the_pg_statements_page_says_how_to_enable_the_extension() -> None:
    from django.db import connection

    client = signed_in(user("a", staff=True, allowed=True))
    html = client.get("/admin/django_dbperf/pgstatement/").content.decode()
    if connection.vendor != "postgresql":
        assert "none of the databases it watches is PostgreSQL" in html
        return
    with connection.cursor() as cursor:
        cursor.execute("DROP EXTENSION IF EXISTS pg_stat_statements")
    try:
        html = client.get("/admin/django_dbperf/pgstatement/").content.decode()
        assert "shared_preload_libraries" in html and "CREATE EXTENSION" in html
    finally:
        with connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


def test_search_has_a_trigram_index_on_postgresql(postgres: None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'dbperf_search_trgm'")
        (definition,) = cursor.fetchone()
    assert "gin" in definition and "gin_trgm_ops" in definition


def test_the_statement_list_filters_by_database(recorded: QueryShape) -> None:
    client = signed_in(user("a", staff=True, allowed=True))
    listed = client.get("/admin/django_dbperf/queryshape/", {"alias": "default"}).content
    assert recorded.fingerprint_id in listed.decode()
    other = client.get("/admin/django_dbperf/queryshape/", {"alias": "other"}).content
    assert recorded.fingerprint_id not in other.decode()
