"""The statistics store: what sampled requests ran, per statement shape, view and line.

The flow: ``QueryCountMiddleware`` -> ``record_request()`` adds a request's queries to the
process's buffer (``buffer.py``, memory only) -> a background thread (``flusher.py``) writes
the buffer every ``FLUSH_INTERVAL_S`` on a connection of its own (``writer.py``) -> the
tables (``models.py``) add up across processes and servers -> the admin reads them.
``pruning.py`` keeps ``RETENTION_DAYS``; ``histogram.py`` gives percentiles; ``redact.py``
masks parameter values with ``STORE_PARAMS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django_dbperf.capture import QueryRecord
from django_dbperf.conf import get_config
from django_dbperf.stats.flusher import FLUSHER


def record_request(
    queries: Sequence[QueryRecord], findings: Iterable[Any], *, view: str, sample_rate: float
) -> None:
    """Add one sampled request's queries and findings to the buffer: no I/O, one lock."""
    config = get_config()["STATS"]
    if not config["ENABLED"]:
        return
    FLUSHER.ensure_running()
    FLUSHER.buffer.record(
        queries,
        findings,
        view=view,
        weight=1.0 / sample_rate if 0 < sample_rate < 1 else 1.0,
        max_shapes=config["MAX_FINGERPRINTS"],
        sample_params=_params_sampler(config) if config["STORE_PARAMS"] else None,
    )


def _params_sampler(config: Any) -> Any:
    from django_dbperf.stats.redact import DEFAULT_REDACT_COLUMNS, redact_params

    patterns = config["REDACT_COLUMNS"]
    patterns = DEFAULT_REDACT_COLUMNS if patterns is None else tuple(patterns)

    def sample(query: QueryRecord) -> list[Any] | None:
        if query.many:
            return None  # executemany: one statement, many parameter sets
        return redact_params(query.sql, query.params, patterns)

    return sample


def flush() -> Any:
    """Write this process's buffer now (from a thread of its own); a ``FlushResult``."""
    return FLUSHER.flush()


def prune(days: int | None = None) -> dict[str, int]:
    """Delete statistics older than ``days`` (default ``RETENTION_DAYS``) days."""
    from django_dbperf.stats.pruning import prune as prune_older

    config = get_config()["STATS"]
    return prune_older(config["RETENTION_DAYS"] if days is None else days, config["DATABASE"])


__all__ = ["flush", "prune", "record_request"]
