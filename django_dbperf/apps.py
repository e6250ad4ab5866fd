"""App configuration: ``ready()`` only connects receivers and registers the system checks."""

from __future__ import annotations

from django.apps import AppConfig
from django.core.signals import setting_changed
from django.db.backends.signals import connection_created

from django_dbperf.extras import MissingExtra

# Settings that decide which code is the project's (where callsites point).
_PROJECT_SETTINGS = frozenset({"DBPERF", "BASE_DIR", "ROOT_URLCONF"})


def forget_project_code(*, setting: str, **kwargs: object) -> None:
    if setting in _PROJECT_SETTINGS:
        from django_dbperf.capture.callsite import forget_classification

        forget_classification()


class DbPerfConfig(AppConfig):
    name = "django_dbperf"
    verbose_name = "Database performance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_dbperf import checks  # also registers the system checks
        from django_dbperf.capture import install
        from django_dbperf.conf import clear_config_cache
        from django_dbperf.indexes import declarations
        from django_dbperf.integrations import nplusone

        # A django-redis CACHE["ALIAS"] without django-redis: Django's own cache checks would
        # stop every command on the missing backend without naming the extra that brings it.
        if problem := checks.missing_cache_extra():
            raise MissingExtra(problem)
        # First: dbperf_indexes.py modules join the models' Meta.indexes before anything reads
        # the models (the autodetector, the checks).
        declarations.load()
        setting_changed.connect(clear_config_cache, dispatch_uid="django_dbperf.conf")
        setting_changed.connect(forget_project_code, dispatch_uid="django_dbperf.capture.roots")
        # Every new connection, in every thread, gets the (idle until captured) query wrapper.
        connection_created.connect(install, dispatch_uid="django_dbperf.capture")
        self.connect_cache_invalidation()
        self.connect_safe_index_builds()
        # Only with "nplusone.ext.django" in INSTALLED_APPS; otherwise nplusone is never imported.
        nplusone.register()

    def connect_cache_invalidation(self) -> None:
        """Writes invalidate cached querysets; inert until DBPERF["CACHE"] is set."""
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from django_dbperf.cache import dependencies, invalidation

        connection_created.connect(invalidation.install, dispatch_uid="django_dbperf.cache")
        setting_changed.connect(
            dependencies.clear_dependencies, dispatch_uid="django_dbperf.cache.dependencies"
        )
        invalidation.install_on_open_connections()
        post_save.connect(invalidation.on_save_or_delete, dispatch_uid="django_dbperf.save")
        post_delete.connect(invalidation.on_save_or_delete, dispatch_uid="django_dbperf.delete")
        m2m_changed.connect(invalidation.on_m2m_changed, dispatch_uid="django_dbperf.m2m")

    def connect_safe_index_builds(self) -> None:
        """While ``migrate`` runs, concurrent index builds on PostgreSQL retry and clean up."""
        from django.db.models.signals import post_migrate, pre_migrate

        from django_dbperf.indexes import building

        pre_migrate.connect(building.on_pre_migrate, dispatch_uid="django_dbperf.indexes.pre")
        post_migrate.connect(building.on_post_migrate, dispatch_uid="django_dbperf.indexes.post")
