"""Settings for the example project.

With no environment variables it runs on SQLite and Django's local-memory cache.
``DATABASE_URL=postgres://...`` switches to PostgreSQL; ``REDIS_URL`` (or ``VALKEY_URL``)
to Valkey or Redis through django-redis.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from example_project.config import cache_from_url, database_from_url

if TYPE_CHECKING:
    from django.http import HttpRequest

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("SECRET_KEY", "example-project-not-secret")
DEBUG = os.environ.get("DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_dbperf",
    "example_project.scheduler",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Counts queries per request and logs N+1 findings with their fix (see DBPERF below).
    "django_dbperf.middleware.QueryCountMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "example_project.wsgi.application"
ASGI_APPLICATION = "example_project.asgi.application"

DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'example_project.sqlite3'}")
    )
}

_cache_url = os.environ.get("REDIS_URL") or os.environ.get("VALKEY_URL")
CACHES = {
    "default": cache_from_url(_cache_url)
    if _cache_url
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

DBPERF: dict[str, object] = {
    "ON_NPLUSONE": os.environ.get("DBPERF_ON_NPLUSONE", "log"),
    # Cached querysets (the /cached/ dashboard) in the default cache: Valkey/Redis when REDIS_URL
    # is set; local memory otherwise, which check dbperf.E010 allows only while DEBUG is on.
    "CACHE": {
        "ALIAS": "default",
        # What `manage.py dbperf_cache warm` fills after a deploy (scheduler/hot.py).
        "WARM": [
            "example_project.scheduler.hot.cached_dashboard_events",
            "example_project.scheduler.hot.cached_dashboard_servers",
        ],
    },
    # The demo database is small (a few thousand logs); production keeps the default, 10,000.
    "INDEXES": {"MIN_TABLE_ROWS": 1_000},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_dbperf": {"handlers": ["console"], "level": "INFO"}},
}

# django-debug-toolbar with django_dbperf's panel, in DEBUG when installed (the toolbar extra:
# pip install "django-dbperf[toolbar]"); the project runs without it too.
if DEBUG and importlib.util.find_spec("debug_toolbar") is not None:
    from debug_toolbar.settings import PANELS_DEFAULTS

    INSTALLED_APPS.append("debug_toolbar")
    MIDDLEWARE.insert(0, "debug_toolbar.middleware.DebugToolbarMiddleware")
    INTERNAL_IPS = ["127.0.0.1", "::1"]
    DEBUG_TOOLBAR_PANELS = [*PANELS_DEFAULTS, "django_dbperf.panels.DbPerfPanel"]
    DEBUG_TOOLBAR_CONFIG = {"SHOW_TOOLBAR_CALLBACK": "example_project.settings.show_toolbar"}


def show_toolbar(request: HttpRequest) -> bool:
    """The toolbar for a browser on this machine, never for Django's test client: the
    management commands (dbperf_audit, demo_report, demo_indexes) request pages through it and
    compare responses and timings, which the toolbar would change."""
    return (
        settings.DEBUG
        and request.META.get("REMOTE_ADDR") in settings.INTERNAL_IPS
        and request.META.get("SERVER_NAME") != "testserver"
    )


DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
LOGIN_URL = "admin:login"
