"""Settings of the real-client project: the Django admin, DRF and a Wagtail site.

SQLite in memory by default; ``DBPERF_TEST_DATABASE_URL`` switches to PostgreSQL, as in
``tests.settings``. Uploaded images go to a temporary ``MEDIA_ROOT`` that the suite removes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from example_project.config import database_from_url

# What counts as "project code" for the findings: everything under this package.
BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "django_dbperf-realclients"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "tests.realclients.site",
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail.api.v2",
    "wagtail",
    "modelcluster",
    "taggit",
    "rest_framework",
    "django_filters",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_dbperf",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before SessionMiddleware, so the session and user queries are counted (dbperf.W001).
    "django_dbperf.middleware.QueryCountMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "wagtail.contrib.redirects.middleware.RedirectMiddleware",
]

ROOT_URLCONF = "tests.realclients.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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

_database_url = os.environ.get("DBPERF_TEST_DATABASE_URL")
if _database_url:
    DATABASES = {"default": database_from_url(_database_url)}
    # Wagtail's database search backend uses its search vectors there (postgres.E005).
    INSTALLED_APPS.append("django.contrib.postgres")
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

STATIC_URL = "/static/"
MEDIA_URL = "/media/"
# One directory per process, so a SQLite and a PostgreSQL run side by side never share files.
MEDIA_ROOT = tempfile.mkdtemp(prefix="dbperf-realclients-media-")

# The Wagtail page editor posts many fields.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000

WAGTAIL_SITE_NAME = "dbperf real clients"
WAGTAILADMIN_BASE_URL = "http://testserver"
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}

DBPERF = {"ON_NPLUSONE": "log"}
