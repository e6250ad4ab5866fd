"""Settings for the test suite.

SQLite in memory by default; ``DBPERF_TEST_DATABASE_URL`` switches to PostgreSQL and
``DBPERF_TEST_REDIS_URL`` adds a django-redis cache (alias ``"redis"``) for Valkey or Redis.
``python -m tests.servers -- pytest`` starts throwaway servers and sets both.
"""

from __future__ import annotations

import os

from example_project.config import cache_from_url, database_from_url

SECRET_KEY = "django_dbperf-tests"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "debug_toolbar",
    "django_dbperf",
    "tests.testapp",
    "example_project.scheduler",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"

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
    DATABASES = {
        "default": database_from_url(_database_url),
        # A second alias on the same server, for tests of multi-database capture.
        "other": {**database_from_url(_database_url), "NAME": "dbperf_other"},
    }
else:
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    }

CACHES: dict[str, dict[str, object]] = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}
_redis_url = os.environ.get("DBPERF_TEST_REDIS_URL")
if _redis_url:
    CACHES["redis"] = cache_from_url(_redis_url)

STATIC_URL = "static/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The toolbar is only switched on by the tests that add its middleware.
DEBUG_TOOLBAR_CONFIG = {
    "IS_RUNNING_TESTS": False,
    "SHOW_TOOLBAR_CALLBACK": "tests.settings.show_toolbar",
}


def show_toolbar(request: object) -> bool:
    return True


# The toolbar middleware is added only by the tests that need it.
SILENCED_SYSTEM_CHECKS = ["debug_toolbar.W001"]
