"""The django-debug-toolbar panel: ``"django_dbperf.panels.DbPerfPanel"`` in
``DEBUG_TOOLBAR_PANELS``.

A request the toolbar is shown for: ``panel.py`` captures its queries and cache events (nothing
otherwise) -> ``summary.py`` turns them into the JSON the toolbar stores (findings, the budgets
of ``budget.py``, cache events, slow statements) -> at render, ``links.py`` links slow
statements to their pages in the admin.
"""

from __future__ import annotations

from django_dbperf.extras import require

require("toolbar", "django_dbperf.panels.DbPerfPanel (a django-debug-toolbar panel)")

from django_dbperf.panels.panel import DbPerfPanel  # noqa: E402  (after the check)

__all__ = ["DbPerfPanel"]
