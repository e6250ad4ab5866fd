"""A plan as people read it: a tree whose costly nodes are marked, and its text.

Built from PostgreSQL's ``EXPLAIN (FORMAT JSON)`` or SQLite's ``EXPLAIN QUERY PLAN`` rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

COSTLY_SHARE = 0.2  # of the plan's total cost, spent in the node itself
COSTLY_SEQ_SCAN_ROWS = 1000


@dataclass
class PlanNode:
    label: str  # "Seq Scan on testapp_book", "SEARCH testapp_book USING INDEX ..."
    node_type: str
    relation: str | None
    startup_cost: float | None  # None on SQLite, which has no costs
    total_cost: float | None
    rows: int | None  # the planner's estimate
    actual_ms: float | None  # with ANALYZE: time in this node and below, all loops
    self_cost_share: float  # of the plan's total cost, spent in this node itself (0..1)
    costly: bool
    children: list[PlanNode] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    text: str
    tree: PlanNode | None
    generic: bool  # planned without parameter values
    analyzed: bool
    vendor: str
    note: str | None
    method: str  # "GENERIC_PLAN", "PREPARE + force_generic_plan", "values", "EXPLAIN QUERY PLAN"


# Keys shown in a node's head line (or not at all), kept out of its details.
_HEAD_KEYS = frozenset(
    {
        "Node Type", "Plans", "Relation Name", "Alias", "Index Name", "CTE Name",
        "Function Name", "Startup Cost", "Total Cost", "Plan Rows", "Plan Width",
        "Actual Startup Time", "Actual Total Time", "Actual Rows", "Actual Loops",
        "Parent Relationship", "Parallel Aware", "Async Capable", "Join Type", "Strategy",
        "Partial Mode", "Inner Unique", "Scan Direction",
    }
)  # fmt: skip
_AGGREGATES = {"Hashed": "HashAggregate", "Sorted": "GroupAggregate", "Mixed": "MixedAggregate"}


def postgres_tree(document: Any) -> tuple[PlanNode, str]:
    """EXPLAIN (FORMAT JSON) output as a tree with costly nodes marked, and as text."""
    if isinstance(document, str):
        document = json.loads(document)
    top = document[0]
    lines = _postgres_lines(top["Plan"], 0)
    for key in ("Planning Time", "Execution Time"):
        lines += [f"{key}: {top[key]:.3f} ms"] if key in top else []
    return _postgres_node(top["Plan"], float(top["Plan"]["Total Cost"])), "\n".join(lines)


def _postgres_node(raw: dict[str, Any], plan_cost: float) -> PlanNode:
    children = [_postgres_node(child, plan_cost) for child in raw.get("Plans", [])]
    total = float(raw["Total Cost"])
    # Children's costs are per loop, so a nested loop's inner side can make this negative.
    own = max(total - sum(float(child["Total Cost"]) for child in raw.get("Plans", [])), 0.0)
    share = own / plan_cost if plan_cost > 0 else 0.0
    relation = raw.get("Relation Name")
    rows = int(raw["Plan Rows"])
    big_scan = raw["Node Type"] == "Seq Scan" and relation and rows >= COSTLY_SEQ_SCAN_ROWS
    actual = raw.get("Actual Total Time")
    return PlanNode(
        label=_postgres_label(raw),
        node_type=raw["Node Type"],
        relation=relation,
        startup_cost=float(raw["Startup Cost"]),
        total_cost=total,
        rows=rows,
        actual_ms=None if actual is None else float(actual) * int(raw.get("Actual Loops", 1)),
        self_cost_share=share,
        costly=share >= COSTLY_SHARE or bool(big_scan),
        children=children,
        details={key: _text(value) for key, value in raw.items() if key not in _HEAD_KEYS},
    )


def _postgres_label(raw: dict[str, Any]) -> str:
    """The node's name as PostgreSQL's text format writes it."""
    label = str(_AGGREGATES.get(raw.get("Strategy", ""), raw["Node Type"]))
    join = raw.get("Join Type")
    if join and join != "Inner":
        label = f"{label.removesuffix(' Join')} {join} Join"
    if raw.get("Scan Direction") == "Backward":
        label = label.replace(" Scan", " Scan Backward", 1)
    if raw.get("Parallel Aware"):
        label = f"Parallel {label}"
    target = raw.get("Relation Name") or raw.get("CTE Name") or raw.get("Function Name")
    if index := raw.get("Index Name"):
        label += f" using {index}" if target else f" on {index}"
    if target:
        alias = raw.get("Alias")
        label += f" on {target}" + (f" {alias}" if alias and alias != target else "")
    return label


def _postgres_lines(raw: dict[str, Any], depth: int) -> list[str]:
    head = (
        f"{_postgres_label(raw)}  (cost={raw['Startup Cost']:.2f}..{raw['Total Cost']:.2f} "
        f"rows={raw['Plan Rows']} width={raw['Plan Width']})"
    )
    if "Actual Total Time" in raw:
        head += (
            f" (actual time={raw['Actual Startup Time']:.3f}..{raw['Actual Total Time']:.3f} "
            f"rows={raw['Actual Rows']} loops={raw['Actual Loops']})"
            if raw["Actual Loops"]
            else " (never executed)"
        )
    prefix = " " * (6 * depth - 4) + "->  " if depth else ""
    indent = " " * (6 * depth + 2)
    # Like PostgreSQL's text format, leave out what is zero or false.
    details = [
        f"{indent}{key}: {_text(value)}"
        for key, value in raw.items()
        if key not in _HEAD_KEYS and value not in (0, False, None, "", [])
    ]
    lines = [prefix + head, *details]
    for child in raw.get("Plans", []):
        lines += _postgres_lines(child, depth + 1)
    return lines


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and all(isinstance(item, str | int | float) for item in value):
        return ", ".join(str(item) for item in value)
    return str(value) if isinstance(value, str | int | float) else json.dumps(value)


def sqlite_tree(rows: Sequence[tuple[Any, ...]]) -> tuple[PlanNode, str]:
    """EXPLAIN QUERY PLAN's (id, parent, notused, detail) rows as a tree, and as text."""
    root = PlanNode("QUERY PLAN", "QUERY PLAN", None, None, None, None, None, 0.0, False)
    nodes = {0: root}
    for node_id, parent, _, detail in rows:
        words = detail.split()
        scan = words[0] in ("SCAN", "SEARCH") and detail != "SCAN CONSTANT ROW"
        # A full table scan; "SCAN t USING [COVERING] INDEX i" reads an index instead.
        costly = scan and words[0] == "SCAN" and "INDEX" not in words
        kind, relation = (words[0], words[1]) if scan else (detail, None)
        nodes[node_id] = PlanNode(detail, kind, relation, None, None, None, None, 0.0, costly)
        nodes.get(parent, root).children.append(nodes[node_id])
    return root, "\n".join(["QUERY PLAN", *_sqlite_lines(root.children, "")])


def _sqlite_lines(nodes: list[PlanNode], prefix: str) -> list[str]:
    """The sqlite3 shell's drawing: ``|--`` for a node with siblings below, `` `-- `` last."""
    lines = []
    for index, node in enumerate(nodes):
        last = index == len(nodes) - 1
        lines.append(f"{prefix}{'`--' if last else '|--'}{node.label}")
        lines += _sqlite_lines(node.children, prefix + ("   " if last else "|  "))
    return lines
