"""Analysis of captured queries: N+1, duplicates and their fixes (reads capture records only)."""

from __future__ import annotations

from django_dbperf.analysis.detect import analyse, find_duplicates, find_n_plus_one
from django_dbperf.analysis.findings import DUPLICATE, N_PLUS_ONE, UNUSED_EAGER_LOAD, Finding

__all__ = [
    "DUPLICATE",
    "N_PLUS_ONE",
    "UNUSED_EAGER_LOAD",
    "Finding",
    "analyse",
    "find_duplicates",
    "find_n_plus_one",
]
