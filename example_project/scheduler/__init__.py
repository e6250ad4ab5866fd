"""The example project's job-scheduling app: the naive "before" picture for django-dbperf."""

from __future__ import annotations
