"""Query capture: the execute_wrapper recorder, fingerprints, callsites.

Imports nothing of django_dbperf above it (no analysis, no admin).
"""

from __future__ import annotations

from django_dbperf.capture.callsite import Callsite, LazyLoad, Origin, TemplateSite
from django_dbperf.capture.fingerprint import fingerprint
from django_dbperf.capture.recorder import (
    QueryRecord,
    Recorder,
    ignoring_queries,
    install,
    is_capturing,
    recording,
)

__all__ = [
    "Callsite",
    "LazyLoad",
    "Origin",
    "QueryRecord",
    "Recorder",
    "TemplateSite",
    "fingerprint",
    "ignoring_queries",
    "install",
    "is_capturing",
    "recording",
]
