"""Django's ``makemigrations``, writing declared indexes as concurrent builds in non-atomic files.

One step runs before the files are written: ``AddIndex`` of an index declared in a
``dbperf_indexes.py`` module becomes Django's ``AddIndexConcurrently`` when
``DBPERF["INDEXES"]["CONCURRENTLY"]`` says so, in a migration with ``atomic = False`` (PostgreSQL
cannot build concurrently inside a transaction): the migration itself when it holds nothing else,
else a ``<number>_dbperf_indexes`` migration appended after the app's new ones (Django 5.2's
writer leaves ``atomic`` out: the line is added to the written file). The files use only
Django's operations. Everything else (``--dry-run``, ``--check``, ``--update``, the output)
is Django's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.apps import apps
from django.core.management.base import CommandError
from django.core.management.commands.makemigrations import Command as MakeMigrationsCommand
from django.db import DEFAULT_DB_ALIAS, connections, router
from django.db.migrations import Migration
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.operations import AddIndex
from django.db.migrations.operations.base import Operation
from django.db.migrations.writer import MigrationWriter

from django_dbperf.conf import get_config
from django_dbperf.indexes.declarations import declared_index_names

NAME_FRAGMENT = "dbperf_indexes"
CLASS_LINE = "class Migration(migrations.Migration):\n"
NON_ATOMIC = re.compile(r"^\s+atomic = False$", re.MULTILINE)


@dataclass(frozen=True)
class ConcurrentMigration:
    """A migration that now builds ``count`` declared indexes concurrently."""

    migration: Migration
    count: int
    appended: bool  # a new migration, not in ``changes`` before

    def describe(self) -> str:
        indexes = "index" if self.count == 1 else "indexes"
        name = self.migration.name
        return f"  dbperf: {name} builds {self.count} {indexes} concurrently (non-atomic)"


class Command(MakeMigrationsCommand):
    help = (
        MakeMigrationsCommand.help + " Indexes declared in dbperf_indexes.py modules are "
        'built concurrently where DBPERF["INDEXES"]["CONCURRENTLY"] says so.'
    )

    def write_migration_files(
        self,
        changes: dict[str, Any],
        update_previous_migration_paths: dict[str, str] | None = None,
    ) -> None:
        # With --update, Django deletes the updated migration's old file once per migration it
        # writes for the app: no renaming (the new name could be the old file's), and appended
        # migrations are written on their own, without that step.
        updating = bool(update_previous_migration_paths)
        converted = build_declared_indexes_concurrently(changes, rename=not updating)
        appended = {item.migration for item in converted if item.appended}
        if updating and appended:
            kept = {label: [m for m in ms if m not in appended] for label, ms in changes.items()}
            super().write_migration_files(kept, update_previous_migration_paths)
            extra = {m.app_label: [m] for m in appended}
            super().write_migration_files(extra)
        else:
            super().write_migration_files(changes, update_previous_migration_paths)
        if not self.dry_run:
            for item in converted:
                self.mark_non_atomic(MigrationWriter(item.migration).path)
        if self.verbosity >= 1:
            for item in converted:
                self.log(item.describe())

    def mark_non_atomic(self, path: str) -> None:
        """Add ``atomic = False`` to a written file whose writer leaves it out (Django < 6.1)."""
        file = Path(path)
        text = file.read_text(encoding="utf-8")
        if NON_ATOMIC.search(text):
            return
        if CLASS_LINE not in text:
            raise CommandError(
                f"{path} has no line {CLASS_LINE.strip()!r}: add 'atomic = False' to its "
                "Migration class by hand (PostgreSQL builds concurrently only outside a "
                "transaction)."
            )
        text = text.replace(CLASS_LINE, f"{CLASS_LINE}\n    atomic = False\n", 1)
        file.write_text(text, encoding="utf-8")


def build_declared_indexes_concurrently(
    changes: dict[str, Any], rename: bool = True
) -> list[ConcurrentMigration]:
    """Rewrite ``changes`` (app label -> its new migrations, in order) in place.

    With ``rename``, a migration the builds left gets a name suggested without them."""
    names = declared_index_names()
    if not names:
        return []
    converted: list[ConcurrentMigration] = []
    renamed: dict[tuple[str, str], tuple[str, str]] = {}
    for app_label, migrations in changes.items():
        converted.extend(_convert_app(app_label, migrations, names, renamed if rename else None))
    if renamed:
        # Other new migrations (of any app) may depend on a migration that was renamed.
        for migration in (m for migrations in changes.values() for m in migrations):
            migration.dependencies = [renamed.get(d, d) for d in migration.dependencies]
    return converted


def _convert_app(
    app_label: str,
    migrations: list[Migration],
    names: frozenset[str],
    renamed: dict[tuple[str, str], tuple[str, str]] | None,
) -> list[ConcurrentMigration]:
    converted: list[ConcurrentMigration] = []
    moved: list[Operation] = []
    for migration in migrations:
        builds = [_is_concurrent_build(op, app_label, names) for op in migration.operations]
        if not any(builds):
            continue
        if all(builds):
            # The stubs type these as class variables; the autodetector sets them per instance.
            concurrent = [_concurrently(op) for op in migration.operations]
            migration.operations = concurrent  # type: ignore[misc]
            migration.atomic = False  # type: ignore[misc]
            converted.append(ConcurrentMigration(migration, len(builds), appended=False))
            continue
        # A non-atomic migration would run the other operations without a transaction too.
        old_name = migration.name
        moved.extend(_move_out(migration, builds, rename=renamed is not None))
        if renamed is not None and migration.name != old_name:
            renamed[(app_label, old_name)] = (app_label, migration.name)
    if moved:
        extra = _index_migration(app_label, migrations[-1], moved)
        migrations.append(extra)
        converted.append(ConcurrentMigration(extra, len(moved), appended=True))
    return converted


def _move_out(migration: Migration, builds: list[bool], rename: bool) -> list[Operation]:
    """Take the builds out of ``migration``; an automatic name is suggested again without them."""
    automatic = rename and migration.name.endswith(f"_{migration.suggest_name()[:100]}")
    operations = list(migration.operations)
    kept = [op for op, build in zip(operations, builds, strict=True) if not build]
    migration.operations = kept  # type: ignore[misc]
    if automatic:
        number = migration.name.split("_", 1)[0]
        migration.name = f"{number}_{migration.suggest_name()[:100]}"
    return [_concurrently(op) for op, build in zip(operations, builds, strict=True) if build]


def _is_concurrent_build(operation: Operation, app_label: str, names: frozenset[str]) -> bool:
    # Exactly AddIndex, as the autodetector writes it: subclasses (AddIndexConcurrently
    # included) already chose how they build.
    return (
        type(operation) is AddIndex
        and operation.index.name in names
        and builds_concurrently(app_label, operation.model_name)
    )


def builds_concurrently(app_label: str, model_name: str) -> bool:
    """``DBPERF["INDEXES"]["CONCURRENTLY"]`` for one model ("auto": its database's vendor)."""
    setting = get_config()["INDEXES"]["CONCURRENTLY"]
    if setting != "auto":
        return bool(setting)
    try:
        alias = router.db_for_write(apps.get_model(app_label, model_name))
    except LookupError:
        alias = DEFAULT_DB_ALIAS
    return connections[alias].vendor == "postgresql"


def _concurrently(operation: Operation) -> Operation:
    # Imported here: the PostgreSQL contrib app is only needed once an index is converted.
    from django.contrib.postgres.operations import AddIndexConcurrently

    assert isinstance(operation, AddIndex)
    return AddIndexConcurrently(model_name=operation.model_name, index=operation.index)


def _index_migration(app_label: str, previous: Migration, operations: list[Operation]) -> Migration:
    number = (MigrationAutodetector.parse_number(previous.name) or 0) + 1
    # A class of its own, like the Migration class of a migration file.
    attributes = {
        "operations": operations,
        "dependencies": [(app_label, previous.name)],
        "atomic": False,
    }
    migration: Migration = type("Migration", (Migration,), attributes)(
        f"{number:04d}_{NAME_FRAGMENT}", app_label
    )
    return migration
