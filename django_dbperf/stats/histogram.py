"""Durations as a fixed set of log-spaced buckets: percentiles without keeping every duration.

Bucket edges are 10% apart from 0.05 ms to beyond 60 s, so a percentile read back is within
5% of the true one (the bucket's geometric middle), two histograms merge by adding counts
(across processes, servers and hours), and recording a duration is one ``log`` and one
increment. Stored sparse: ``{bucket index: count}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

FLOOR_MS = 0.05
RATIO = 1.1
_LOG_RATIO = math.log(RATIO)
# Bucket 0 holds everything under FLOOR_MS; the last one everything from about 60 s.
BUCKETS = 2 + math.ceil(math.log(60_000 / FLOOR_MS) / _LOG_RATIO)

Histogram = dict[int, int]


_LAST = BUCKETS - 1
_log = math.log


def bucket_of(ms: float) -> int:
    if ms < FLOOR_MS:
        return 0
    bucket = 1 + int(_log(ms / FLOOR_MS) / _LOG_RATIO)
    return bucket if bucket < _LAST else _LAST


def bounds(bucket: int) -> tuple[float, float]:
    """The durations (ms) bucket ``bucket`` holds: from the first, up to the second."""
    if bucket <= 0:
        return 0.0, FLOOR_MS
    low = FLOOR_MS * RATIO ** (bucket - 1)
    return low, (math.inf if bucket >= BUCKETS - 1 else low * RATIO)


def add(histogram: Histogram, ms: float, count: int = 1) -> None:
    bucket = bucket_of(ms)
    histogram[bucket] = histogram.get(bucket, 0) + count


def merge(into: Histogram, other: Mapping[int, int] | Mapping[str, int]) -> Histogram:
    """Add ``other``'s counts to ``into`` (also from JSON, whose keys are strings)."""
    for bucket, count in other.items():
        index = int(bucket)
        into[index] = into.get(index, 0) + int(count)
    return into


def from_json(value: object) -> Histogram:
    """A stored histogram; anything malformed reads as empty rather than as wrong counts."""
    if not isinstance(value, dict):
        return {}
    try:
        histogram = {int(bucket): int(count) for bucket, count in value.items()}
    except (TypeError, ValueError):
        return {}
    return {b: c for b, c in histogram.items() if 0 <= b < BUCKETS and c > 0}


def to_json(histogram: Histogram) -> dict[str, int]:
    return {str(bucket): count for bucket, count in sorted(histogram.items()) if count}


def percentile(
    histogram: Mapping[int, int], fraction: float, maximum: float | None = None
) -> float | None:
    """The duration (ms) below which ``fraction`` of the recorded ones fall; None when empty.

    Read as the bucket's geometric middle, and never above the exact ``maximum`` when known.
    """
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            low, high = bounds(bucket)
            value = low if math.isinf(high) else (math.sqrt(low * high) if low else high / 2)
            return min(value, maximum) if maximum is not None else value
    return maximum  # pragma: no cover - rank never exceeds the total


def percentiles(
    histogram: Mapping[int, int], fractions: Iterable[float], maximum: float | None = None
) -> list[float | None]:
    return [percentile(histogram, fraction, maximum) for fraction in fractions]
