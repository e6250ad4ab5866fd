"""A small real project on big third-party apps (Django admin, DRF, Wagtail) for django_dbperf.

Its pages are driven through Django's test client inside ``capture_queries()`` to check that
the findings are right on code nobody wrote for django_dbperf. Run it with its own settings:
``pytest tests/realclients --ds=tests.realclients.settings``.
"""
