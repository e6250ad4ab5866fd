from __future__ import annotations

from django.apps import AppConfig


class RealSiteConfig(AppConfig):
    name = "tests.realclients.site"
    label = "realsite"
    verbose_name = "Real-client site"
    default_auto_field = "django.db.models.BigAutoField"
