"""A trigram index for the admin's search, on PostgreSQL when pg_trgm can be created.

Searching the names of 100,000 statements (``LIKE '%name%'``) scans their table twice per page
(about 70-100 ms each, measured in benchmarks/admin_pages.py); with this index it is a bitmap
index scan. pg_trgm is a trusted extension (PostgreSQL 13+), so the database owner may create
it; where it cannot be created the index is skipped and search still works, unindexed.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, transaction

INDEX = "dbperf_search_trgm"


def create(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=connection.alias):  # a savepoint: a refusal is not fatal
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            schema_editor.execute(
                f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "django_dbperf_queryshapesearch" '
                'USING gin ("text" gin_trgm_ops)'
            )
    except Exception:  # no privilege for the extension: search works without the index
        pass


def drop(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'DROP INDEX IF EXISTS "{INDEX}"')


class Migration(migrations.Migration):
    dependencies = [("django_dbperf", "0001_initial")]
    operations = [migrations.RunPython(create, drop, elidable=False)]
