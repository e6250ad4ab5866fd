"""A throwaway Django project on disk for the index advisor's end-to-end runs (test and
benchmark): an app ``shop`` with an ``Order`` table, its own database, and ``manage()`` to run
real management commands in a subprocess, as a person would.

The loop it serves: requests through the middleware -> dbperf_flush -> dbperf_indexes suggest
--write -> makemigrations -> migrate -> dbperf_indexes verify.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

MODELS = """
from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=100)


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, db_index=False)
    status = models.CharField(max_length=10)
    placed_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True)
    total = models.IntegerField(default=0)
    note = models.TextField(blank=True)
"""

VIEWS = '''
from django.db.models import Max
from django.http import JsonResponse

from shop.models import Order


def recent(request, customer):
    """A filtered, sorted page: a customer's latest live orders."""
    orders = Order.objects.filter(customer_id=customer, deleted_at__isnull=True).order_by(
        "-placed_at"
    )[:20]
    return JsonResponse({"orders": [order.total for order in orders]})


def statuses(request):
    """No index helps: it reads most columns of every row."""
    found = Order.objects.filter(total__gte=0).aggregate(
        Max("note"), Max("placed_at"), Max("status"), Max("customer_id")
    )
    return JsonResponse({"latest": str(found["placed_at__max"])})
'''

URLS = """
from django.urls import path

from shop import views

urlpatterns = [
    path("recent/<int:customer>/", views.recent, name="recent"),
    path("statuses/", views.statuses, name="statuses"),
]
"""

SETTINGS = """
from example_project.config import database_from_url

SECRET_KEY = "advisor-project"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_dbperf",
    "shop",
]
MIDDLEWARE = ["django_dbperf.middleware.QueryCountMiddleware"]
ROOT_URLCONF = "shop.urls"
DATABASES = {{"default": database_from_url({url!r})}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DBPERF = {{
    "STATS": {{"ENABLED": True, "FLUSH_INTERVAL_S": 3600}},
    "INDEXES": {{"MIN_TABLE_ROWS": 1000}},
}}
"""

DRIVE = """
import django
django.setup()
from django.core.management import call_command
from django.test import Client

client = Client()
for round in range({rounds}):
    for customer in range(1, 40):
        assert client.get(f"/recent/{{customer}}/").status_code == 200
    assert client.get("/statuses/").status_code == 200
call_command("dbperf_flush")
"""


@dataclass
class Project:
    root: Path
    database_url: str

    def environment(self) -> dict[str, str]:
        paths = [str(self.root), str(REPO), os.environ.get("PYTHONPATH", "")]
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, paths)),
            "DJANGO_SETTINGS_MODULE": "shop_settings",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``django-admin ARGS`` in the project; raises with its output when it fails."""
        result = subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=self.root,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def drive(self, rounds: int = 3) -> None:
        """Requests through the middleware, then a flush into the statistics store."""
        script = self.root / "drive.py"
        script.write_text(DRIVE.format(rounds=rounds))
        subprocess.run(
            [sys.executable, str(script)], cwd=self.root, env=self.environment(), check=True,
            timeout=600,
        )  # fmt: skip

    @property
    def app(self) -> Path:
        return self.root / "shop"


def make_project(root: Path, database_url: str) -> Project:
    app = root / "shop"
    (app / "migrations").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "migrations" / "__init__.py").write_text("")
    (app / "models.py").write_text(textwrap.dedent(MODELS))
    (app / "views.py").write_text(textwrap.dedent(VIEWS))
    (app / "urls.py").write_text(textwrap.dedent(URLS))
    (root / "shop_settings.py").write_text(SETTINGS.format(url=database_url))
    return Project(root, database_url)


def fill(cursor: Any, orders: int = 200_000, customers: int = 2_000) -> None:
    """``orders`` rows over ``customers`` customers; one in ten soft-deleted; vacuumed and
    analysed now, so that autovacuum does not change the plans' costs midway (an all-visible
    table makes index-only scans cheaper)."""
    cursor.execute(
        "INSERT INTO shop_customer (id, name) SELECT g, 'customer ' || g "
        "FROM generate_series(1, %s) g",
        [customers],
    )
    cursor.execute(
        "INSERT INTO shop_order (customer_id, status, placed_at, deleted_at, total, note) "
        "SELECT 1 + (g %% %s), (ARRAY['new','paid','sent','done'])[1 + g %% 4], "
        "now() - make_interval(secs => g), CASE WHEN g %% 10 = 0 THEN now() END, g %% 1000, "
        "repeat('x', 40) FROM generate_series(1, %s) g",
        [customers, orders],
    )
    cursor.execute("VACUUM ANALYZE shop_customer")
    cursor.execute("VACUUM ANALYZE shop_order")
