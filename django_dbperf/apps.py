"""App configuration: ``ready()`` only connects receivers and registers the system checks."""

from __future__ import annotations

from django.apps import AppConfig
from django.core.signals import setting_changed
from django.db.backends.signals import connection_created


class DbPerfConfig(AppConfig):
    name = "django_dbperf"
    verbose_name = "Database performance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_dbperf import checks  # noqa: F401  (registers the system checks)
        from django_dbperf.capture import install
        from django_dbperf.conf import clear_config_cache
        from django_dbperf.integrations import nplusone

        setting_changed.connect(clear_config_cache, dispatch_uid="django_dbperf.conf")
        # Every new connection, in every thread, gets the (idle until captured) query wrapper.
        connection_created.connect(install, dispatch_uid="django_dbperf.capture")
        # Only with "nplusone.ext.django" in INSTALLED_APPS; otherwise nplusone is never imported.
        nplusone.register()
