"""Choosing a small set of indexes for the whole workload, net of what they cost in writes.

Greedy, like a set cover weighted by time: the index whose added savings across all shapes,
minus its write cost, is largest goes first; a shape already served by a chosen index counts
only what another would save beyond it. So one index serving several shapes beats several.

Time saved for a shape = its total time x the share of its plan cost the index removes (only
where that share reaches ``min_saving``). Write cost of an index = the measured time of the
table's INSERT/UPDATE/DELETE statements / (its indexes + 1): each index adds about as much work
to a write as each one it already has. Both come from the same store, over the same period.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from django_dbperf.indexes.candidates import Candidate
from django_dbperf.indexes.costing import Costing


@dataclass(frozen=True)
class Choice:
    candidate: Candidate
    savings: dict[str, float]  # query key -> share of its cost saved (0..1), above the bar
    saved_ms: float  # total over its shapes (not counting what an earlier choice saved)
    write_cost_ms: float


def choose(
    costing: Costing,
    total_ms: Mapping[str, float],
    write_cost_ms: Mapping[str, float],
    *,
    min_saving: float,
) -> list[Choice]:
    """The chosen candidates, best first."""
    shares: dict[Candidate, dict[str, float]] = {}
    for candidate, key in costing.alone:
        share = costing.saving(candidate, key)
        if share >= min_saving:
            shares.setdefault(candidate, {})[key] = share
    served: dict[str, float] = {}  # query key -> ms already saved by chosen indexes
    chosen: list[Choice] = []
    remaining = sorted(shares, key=lambda candidate: candidate.describe())
    while remaining:
        best: tuple[float, float, Candidate] | None = None
        for candidate in remaining:
            gained = _gain(shares[candidate], total_ms, served)
            net = gained - write_cost_ms.get(candidate.table, 0.0)
            if best is None or net > best[0]:
                best = (net, gained, candidate)
        if best is None or best[0] <= 0:
            break
        _, gained, candidate = best
        for key, share in shares[candidate].items():
            served[key] = max(served.get(key, 0.0), total_ms.get(key, 0.0) * share)
        chosen.append(
            Choice(candidate, shares[candidate], gained, write_cost_ms.get(candidate.table, 0.0))
        )
        remaining.remove(candidate)
    return chosen


def _gain(
    shares: Mapping[str, float], total_ms: Mapping[str, float], served: dict[str, float]
) -> float:
    return sum(
        max(0.0, total_ms.get(key, 0.0) * share - served.get(key, 0.0))
        for key, share in shares.items()
    )


def write_costs(
    write_ms: Mapping[str, float], index_counts: Mapping[str, int], tables: Sequence[str]
) -> dict[str, float]:
    """Each table's estimated write cost of one more index."""
    return {table: write_ms.get(table, 0.0) / (index_counts.get(table, 0) + 1) for table in tables}
