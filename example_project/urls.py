"""The example project's URLs: the admin, the scheduler's naive and optimized pages, and
django-debug-toolbar's when settings.py installed it (in DEBUG)."""

from __future__ import annotations

from django.apps import apps
from django.contrib import admin
from django.urls import include, path

from example_project.scheduler import fast_urls
from example_project.scheduler import urls as scheduler_urls

# One "scheduler" namespace for both: {% url "scheduler:fast_dashboard" %} next to the naive
# names. Two includes with the same namespace would hide each other's names when reversing.
scheduler_patterns = [*scheduler_urls.urlpatterns, *fast_urls.urlpatterns]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include((scheduler_patterns, scheduler_urls.app_name))),
]

if apps.is_installed("debug_toolbar"):
    from debug_toolbar.toolbar import debug_toolbar_urls

    urlpatterns += debug_toolbar_urls()  # nothing unless DEBUG
