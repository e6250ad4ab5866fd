"""Readable summaries of captured queries: shapes grouped and counted, SQL shortened, findings.

Pure functions over ``QueryRecord`` and ``Finding`` sequences (no settings, no database), shared
by test failure messages and anything else that prints queries for a person to read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from django_dbperf.analysis.detect import sites
from django_dbperf.analysis.findings import Finding
from django_dbperf.analysis.sql_text import fingerprint_id, shorten_sql
from django_dbperf.capture import QueryRecord

LISTED_SHAPES = 20
LISTED_CALLSITES = 3


# --- Grouping by shape -------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapeGroup:
    """The queries of one statement shape: how many, one example, and the lines that ran them."""

    fingerprint: str
    count: int
    example: str  # the SQL of the first query of the shape, as sent
    callsites: tuple[str, ...]  # distinct, in the order first seen
    total_ms: float

    @property
    def id(self) -> str:
        return fingerprint_id(self.fingerprint)


def group_by_shape(records: Sequence[QueryRecord]) -> list[ShapeGroup]:
    """One group per fingerprint, most frequent first (then in the order first run)."""
    members: dict[str, list[QueryRecord]] = {}
    for record in records:
        members.setdefault(record.fingerprint, []).append(record)
    groups = [
        ShapeGroup(
            fingerprint=shape,
            count=len(group),
            example=group[0].sql,
            callsites=tuple(str(site) for site in sites(group)),
            total_ms=sum(record.duration_ms for record in group),
        )
        for shape, group in members.items()
    ]
    return sorted(groups, key=lambda group: -group.count)  # stable: ties keep first-run order


def shape_counts(records: Sequence[QueryRecord]) -> Counter[str]:
    return Counter(record.fingerprint for record in records)


def growth_notes(
    runs: Sequence[tuple[int, Sequence[QueryRecord]]], unit: str = "rows"
) -> dict[str, str]:
    """Shapes run more often in the last run than in the first: ``"+8 between 2 and 10 rows"``."""
    (first_size, first), (last_size, last) = runs[0], runs[-1]
    before = shape_counts(first)
    return {
        shape: f"+{count - before[shape]} between {first_size} and {last_size} {unit}"
        for shape, count in shape_counts(last).items()
        if count > before[shape]
    }


# --- Text --------------------------------------------------------------------------------------


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def format_callsites(callsites: Sequence[str], limit: int = LISTED_CALLSITES) -> str:
    shown = ", ".join(callsites[:limit])
    return shown + (f" and {len(callsites) - limit} more" if len(callsites) > limit else "")


def format_findings(findings: Sequence[Finding]) -> list[str]:
    """``Findings:`` and each finding numbered, with its fix (nothing when there are none)."""
    if not findings:
        return []
    return ["Findings:"] + [f"{number}. {finding}" for number, finding in enumerate(findings, 1)]


def format_groups(
    groups: Sequence[ShapeGroup],
    notes: Mapping[str, str] | None = None,
    limit: int = LISTED_SHAPES,
) -> list[str]:
    """Two lines per shape: ``6x SQL``, then its id, ``notes`` and callsites."""
    notes = notes or {}
    width = len(f"{groups[0].count}x") if groups else 0
    lines = []
    for group in groups[:limit]:
        details = [f"shape {group.id}"]
        if group.fingerprint in notes:
            details.insert(0, notes[group.fingerprint])
        if group.callsites:
            details.append(f"from {format_callsites(group.callsites)}")
        lines.append(f"  {f'{group.count}x':>{width}} {shorten_sql(group.example)}")
        lines.append(f"  {'':>{width}} {'; '.join(details)}")
    if len(groups) > limit:
        rest = groups[limit:]
        lines.append(
            f"  ... and {_plural(len(rest), 'more shape')} "
            f"({_plural(sum(group.count for group in rest), 'query', 'queries')})"
        )
    return lines


def summarise(
    records: Sequence[QueryRecord],
    findings: Sequence[Finding] = (),
    notes: Mapping[str, str] | None = None,
) -> str:
    """Findings, then the queries grouped by shape, then the total: for a failure message."""
    groups = group_by_shape(records)
    lines = format_findings(findings)
    if groups:
        lines.append("Queries by shape, most frequent first:")
        lines += format_groups(groups, notes)
    total_ms = sum(record.duration_ms for record in records)
    lines.append(
        f"Total: {_plural(len(records), 'query', 'queries')} of "
        f"{_plural(len(groups), 'shape')}, {total_ms:.1f} ms."
    )
    return "\n".join(lines)
