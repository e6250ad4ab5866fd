"""The django-debug-toolbar panel: ``"django_dbperf.panels.DbPerfPanel"`` in
``DEBUG_TOOLBAR_PANELS``.

A request the toolbar is shown for: ``panel.py`` captures its queries and cache events (nothing
otherwise) -> ``summary.py`` turns them into the JSON the toolbar stores (findings, the budgets
of ``budget.py``, cache events, slow statements) -> at render, ``links.py`` links slow
statements to their pages in the admin.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

try:
    import debug_toolbar  # noqa: F401
except ImportError as error:
    raise ImproperlyConfigured(
        "django_dbperf.panels.DbPerfPanel is a django-debug-toolbar panel, and "
        'django-debug-toolbar is not installed: pip install "django-dbperf[toolbar]".'
    ) from error

from django_dbperf.panels.panel import DbPerfPanel

__all__ = ["DbPerfPanel"]
