"""App configuration for the example scheduler app."""

from __future__ import annotations

from django.apps import AppConfig


class SchedulerConfig(AppConfig):
    name = "example_project.scheduler"
    label = "scheduler"
    verbose_name = "Scheduler (example)"
    default_auto_field = "django.db.models.BigAutoField"
