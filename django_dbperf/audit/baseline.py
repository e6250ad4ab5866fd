"""Baselines for CI: today's findings and query counts per URL in a reviewed JSON file, and
what an audit has that is new or worse than it.

A finding is known by its kind, subject (the relation) and site (file and function, not the
line: an edit above it must not make it new). A page's query count is worse when it grew past
the tolerance (a share and a floor, so that 3 -> 4 queries is not a failure). A page that is
not in the baseline has only new findings. So a team can adopt the gate on a large project
today and ratchet down: fix, ``--update-baseline``, commit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django_dbperf.audit.pages import PageAudit
from django_dbperf.files import replace_atomically

VERSION = 1
DEFAULT_TOLERANCE = {"queries_pct": 10.0, "queries_min": 2}


class BaselineError(ValueError):
    """The baseline file is missing or malformed; the message says what to do."""


@dataclass(frozen=True)
class Regression:
    url: str
    what: str  # for a person: "new N+1: scheduler.Event.owner at views.py:event_list"


def to_data(pages: Sequence[PageAudit], tolerance: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "version": VERSION,
        "tolerance": tolerance or dict(DEFAULT_TOLERANCE),
        "pages": {
            page.url: {
                "queries": page.queries,
                "findings": sorted({finding.key for finding in page.findings}),
                **({"error": page.error.split(":")[0]} if page.error else {}),
            }
            for page in sorted(pages, key=lambda item: item.url)
        },
    }


def write(path: Path, pages: Sequence[PageAudit], tolerance: dict[str, Any] | None = None) -> None:
    """Write the baseline at once (a temporary file replaced): never half a file."""
    text = json.dumps(to_data(pages, tolerance), indent=2, sort_keys=True) + "\n"
    replace_atomically(path, text)


def read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BaselineError(
            f"The baseline {path} does not exist: create it with --update-baseline (and commit "
            f"it), or check the path."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BaselineError(
            f"The baseline {path} is not valid JSON ({error}): write it again with "
            f"--update-baseline."
        ) from None
    pages = data.get("pages") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(pages, dict):
        raise BaselineError(
            f"The baseline {path} is not a dbperf_audit baseline (version {VERSION} with "
            f'"pages"): write it again with --update-baseline.'
        )
    for url, page in pages.items():
        if not isinstance(page, dict) or not isinstance(page.get("queries"), int):
            raise BaselineError(f'The baseline {path} has no "queries" count for {url!r}.')
        if not isinstance(page.get("findings", []), list):
            raise BaselineError(
                f'The baseline {path} has "findings" that are not a list for {url!r}.'
            )
    return data


def regressions(
    data: dict[str, Any], pages: Sequence[PageAudit], kinds: set[str]
) -> list[Regression]:
    """What ``pages`` have that is new or worse than the baseline ``data``, for ``kinds``
    (``nplusone``, ``duplicates``, ``budget``: the query count; ``error``)."""
    tolerance = {**DEFAULT_TOLERANCE, **data.get("tolerance", {})}
    found: list[Regression] = []
    for page in pages:
        known = data["pages"].get(page.url)
        keys = set(known.get("findings", [])) if known else set()
        for finding in page.findings:
            kind = "nplusone" if finding.kind == "nplusone" else "duplicates"
            if kind in kinds and finding.key not in keys:
                label = "N+1" if finding.kind == "nplusone" else "duplicate"
                found.append(
                    Regression(page.url, f"new {label}: {finding.subject} at {finding.site}")
                )
        if page.error and "error" in kinds and not (known and known.get("error")):
            found.append(Regression(page.url, f"the view now fails: {page.error}"))
        if known and "budget" in kinds:
            allowed = max(
                known["queries"] * (1 + float(tolerance["queries_pct"]) / 100),
                known["queries"] + int(tolerance["queries_min"]),
            )
            if page.queries > allowed:
                found.append(
                    Regression(
                        page.url,
                        f"{page.queries} queries, up from {known['queries']} (tolerance: "
                        f"{tolerance['queries_pct']}% or {tolerance['queries_min']} queries)",
                    )
                )
    return found
