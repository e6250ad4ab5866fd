"""Sphinx configuration for the django-dbperf documentation."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE / "_ext")]

from django_dbperf import __version__  # noqa: E402

project = "django-dbperf"
author = "django-dbperf developers"
copyright = "2026, django-dbperf developers"
version = release = __version__

extensions = ["dbperf_reference"]
html_theme = "furo"
html_title = f"django-dbperf {release}"
exclude_patterns = ["_build"]
nitpicky = False
