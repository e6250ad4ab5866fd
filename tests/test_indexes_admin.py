"""The admin's index suggestion page: it runs the advisor on a POST only, for staff with the
permission, and shows each suggestion with the statements (linked) and views it serves."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings

from django_dbperf.stats.models import QueryShape, QueryShapeSite
from tests.test_indexes_advisor import by_pages, fill_books

URL = "/admin/django_dbperf/indexadvice/"
pytestmark = pytest.mark.django_db(transaction=True)
EVIL = "<script>alert(1)</script>"


def staff(allowed: bool) -> Client:
    account = User.objects.create_user(f"u{allowed}", password="pw", is_staff=True)
    if allowed:
        account.user_permissions.add(Permission.objects.get(codename="view_dbperf"))
    client = Client()
    client.force_login(account)
    return client


def stored(sql: str, key: str = "abcdefabcdef", total_ms: float = 9000.0) -> QueryShape:
    now = dt.datetime.now(dt.UTC)
    shape = QueryShape.objects.create(
        alias="default", fingerprint_id=key, fingerprint=sql, sql=sql, is_select=True,
        calls=100, sampled_calls=100, total_ms=total_ms, first_seen=now, last_seen=now,
    )  # fmt: skip
    QueryShapeSite.objects.create(
        shape=shape, view=EVIL, callsite="books/views.py:7", calls=100, sampled_calls=100,
        total_ms=total_ms, first_seen=now, last_seen=now,
    )  # fmt: skip
    return shape


def test_get_shows_the_form_and_runs_nothing() -> None:
    response = staff(True).get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Run the advisor" in html and "Method:" not in html


def test_post_needs_the_permission() -> None:
    assert staff(False).post(URL).status_code == 403
    assert Client().post(URL).status_code == 302  # to the login page


def test_health_page_links_to_the_suggestions() -> None:
    html = staff(True).get("/admin/django_dbperf/databasehealth/").content.decode()
    assert URL in html


@override_settings(DBPERF={"INDEXES": {"MIN_TABLE_ROWS": 1000}})
def test_post_shows_suggestions_with_their_statements_and_views(hypopg: None) -> None:
    fill_books()
    sql, _ = by_pages().query.sql_with_params()
    shape = stored(sql)
    response = staff(True).post(URL, {"database": "default"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Method: <strong>hypopg</strong>" in html
    assert "fields=[&#x27;pages&#x27;, &#x27;-published&#x27;]" in html
    assert f"/admin/django_dbperf/queryshape/{shape.pk}/" in html
    assert "books/views.py:7" in html
    assert EVIL not in html and "&lt;script&gt;" in html  # the view name, escaped
