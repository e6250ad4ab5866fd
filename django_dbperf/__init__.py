"""django_dbperf: find and fix database performance problems in Django projects."""

from __future__ import annotations

from django_dbperf.budgets import query_budget
from django_dbperf.conf import get_config
from django_dbperf.ignoring import ignore_queries
from django_dbperf.inspection import capture_queries

__version__ = "0.1.0.dev0"

__all__ = ["__version__", "capture_queries", "get_config", "ignore_queries", "query_budget"]
