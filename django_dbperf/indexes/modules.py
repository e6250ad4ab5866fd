"""Writing suggestions into ``<app>/dbperf_indexes.py``: reviewed code, deterministic, merged.

The file is rendered from its data (what it already holds plus the new suggestions), so the
same inputs always give the same bytes. An entry already there is kept as a person left it
(only its shapes gain new ones); a name in ``REJECTED`` is never written again. The new text
is checked to compile and written to a temporary file that replaces the old one at once: a
failure never leaves a partial file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.apps import AppConfig
from django.db import models
from django.db.migrations.writer import MigrationWriter

from django_dbperf.files import replace_atomically
from django_dbperf.indexes.declarations import MODULE_NAME, AppDeclarations, read_module, same_index

# Characters of each shape's SQL written as evidence: whole statements, so that verify can plan
# them; a longer one is cut and marked ``"shortened"`` (verify then cannot check it).
SQL_KEPT = 20_000

_HEADER = '''"""Indexes suggested by django-dbperf's index advisor for the app {label!r}.

Reviewed code: keep, edit or delete entries, then run ``python manage.py makemigrations``.
``dbperf_indexes suggest --write`` merges new suggestions into this file and never writes a name
listed in REJECTED. ``dbperf_indexes verify`` checks each index is built, valid, and used by the
statements in SHAPES.
"""

{imports}

'''


@dataclass(frozen=True)
class WriteResult:
    path: Path
    added: tuple[str, ...]  # index names new in the file
    kept: tuple[str, ...]  # already there


def _shape_record(shape: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"fingerprint": shape.key, "sql": shape.sql[:SQL_KEPT]}
    if len(shape.sql) > SQL_KEPT:
        record["shortened"] = True
    if shape.saving_pct is not None:
        record["saving_pct"] = round(float(shape.saving_pct), 1)
        record["cost_before"] = round(float(shape.cost_before or 0.0), 2)
        record["cost_after"] = round(float(shape.cost_after or 0.0), 2)
    return record


def merged(
    current: AppDeclarations | None, suggestions: Sequence[Any]
) -> tuple[
    dict[str, list[models.Index]], dict[str, list[dict[str, Any]]], tuple[str, ...], list[str]
]:
    """The file's data after adding ``suggestions``: indexes, shapes, rejected, added names."""
    indexes = {name: list(found) for name, found in (current.indexes if current else {}).items()}
    shapes = {name: list(found) for name, found in (current.shapes if current else {}).items()}
    rejected = current.rejected if current else ()
    added: list[str] = []
    for suggestion in suggestions:
        index = suggestion.index
        if index.name in rejected:
            continue
        mine = indexes.setdefault(suggestion.model_name, [])
        existing = next(
            (item for item in mine if item.name == index.name or same_index(item, index)), None
        )
        name = existing.name if existing is not None else index.name
        if existing is None:
            mine.append(index)
            added.append(index.name)
        records = shapes.setdefault(name, [])
        known = {record.get("fingerprint") for record in records}
        records.extend(
            _shape_record(shape) for shape in suggestion.shapes if shape.key not in known
        )
    return indexes, shapes, rejected, added


def render(
    label: str,
    indexes: dict[str, list[models.Index]],
    shapes: dict[str, list[dict[str, Any]]],
    rejected: Sequence[str],
) -> str:
    imports = {"from django.db import models"}
    body = ["INDEXES = {"]
    for model_name in sorted(indexes):
        body.append(f"    {model_name!r}: [")
        for index in sorted(indexes[model_name], key=lambda item: item.name):
            text, needed = MigrationWriter.serialize(index)
            imports |= needed
            body.append(f"        # {_comment(shapes.get(index.name, []))}")
            body.append(f"        {text},")
        body.append("    ],")
    body.append("}")
    body.append("")
    body.append("# What each index was suggested for: the statements verify plans again.")
    # JSON of strings and numbers is Python too, and reads better than pprint's layout.
    body.append("SHAPES = " + json.dumps(shapes, indent=4, sort_keys=True, ensure_ascii=False))
    body.append("")
    body.append("# Suggestions a person said no to: --write never adds these names again.")
    body.append(f"REJECTED = {sorted(rejected)!r}")
    header = _HEADER.format(label=label, imports="\n".join(sorted(imports)))
    return header + "\n".join(body) + "\n"


def _comment(records: list[dict[str, Any]]) -> str:
    if not records:
        return "declared by hand"
    savings = [record["saving_pct"] for record in records if "saving_pct" in record]
    if not savings:
        return f"{len(records)} statement(s); unverified (no hypopg evidence)"
    low, high = f"{min(savings):.0f}%", f"{max(savings):.0f}%"
    cut = low if low == high else f"{low} to {high}"
    return f"{len(records)} statement(s); plan cost cut by {cut} (hypopg)"


def write(app_config: AppConfig, suggestions: Sequence[Any]) -> WriteResult:
    """Merge ``suggestions`` (all of this app) into the app's module; all or nothing."""
    current = read_module(app_config)
    indexes, shapes, rejected, added = merged(current, suggestions)
    text = render(app_config.label, indexes, shapes, rejected)
    path = Path(app_config.path) / f"{MODULE_NAME}.py"
    compile(text, str(path), "exec")  # never write what Python cannot read back
    replace_atomically(path, text)
    kept = tuple(
        index.name for found in indexes.values() for index in found if index.name not in added
    )
    return WriteResult(path, tuple(added), kept)
