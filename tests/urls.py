"""URLs for the test suite: the example project plus the testapp's middleware views."""

from __future__ import annotations

from django.urls import include, path
from django.views.generic import ListView

from tests.testapp import views
from tests.testapp.models import Book

urlpatterns = [
    path("testapp/clean/", views.clean, name="clean"),
    path("testapp/n-plus-one/", views.n_plus_one, name="n_plus_one"),
    path("testapp/duplicates/", views.duplicates, name="duplicates"),
    path("testapp/budgeted/", views.budgeted, name="budgeted"),
    path("testapp/generous/", views.generous, name="generous"),
    path("testapp/slow/", views.slow, name="slow"),
    path("testapp/async/", views.async_n_plus_one, name="async_n_plus_one"),
    path("testapp/timed/", views.timed_elsewhere, name="timed"),
    path("testapp/html/", views.html, name="html"),
    path("testapp/broken/", views.broken, name="broken"),
    path("testapp/books/<int:pk>/", views.BookDetail.as_view(), name="book_detail"),
    path("testapp/authors/<slug:handle>/", views.clean, name="author_by_handle"),
    # Every query of this page runs in Django's code (a generic view and its template).
    path("testapp/generic/", ListView.as_view(model=Book), name="generic_book_list"),
    path("", include("example_project.urls")),
    # Included directly: debug_toolbar_urls() adds nothing when DEBUG is off at import.
    path("__debug__/", include("debug_toolbar.urls")),
]
