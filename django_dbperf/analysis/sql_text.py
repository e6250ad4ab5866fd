"""Statement text for people: a short stable id per shape, and SQL shortened to one line.

Shared by findings (a duplicate shows what ran), test failure messages and reports. Imports
nothing of django_dbperf, so every layer can use it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

SQL_LIMIT = 200
KEPT_ITEMS = 2  # of a long select, column or value list, the first ones are shown


def fingerprint_id(fingerprint: str) -> str:
    """A short, stable name for a statement shape: 12 hex digits of its SHA-1, in every process."""
    return hashlib.sha1(fingerprint.encode(), usedforsecurity=False).hexdigest()[:12]


# --- Shortening SQL ----------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")
_CLAUSE = re.compile(
    r"\b(?:FROM|WHERE|GROUP\s+BY|HAVING|ORDER\s+BY|LIMIT|OFFSET|RETURNING|VALUES|SET|UNION"
    r"|(?:(?:INNER|CROSS|NATURAL|(?:LEFT|RIGHT|FULL)(?:\s+OUTER)?)\s+)?JOIN)\b",
    re.IGNORECASE,
)
_SELECT_HEAD = re.compile(r"^(SELECT(?:\s+DISTINCT(?:\s+ON\s*\([^()]*\))?)?\s+)", re.IGNORECASE)
_INSERT_COLUMNS = re.compile(r"^(INSERT\s+INTO\s+\S+\s*)\(([^()]*)\)", re.IGNORECASE)
# A parenthesised list without nested parentheses: IN (...) lists and VALUES rows.
_FLAT_LIST = re.compile(r"\(([^()'\"]*,[^()'\"]*)\)")
_KEPT = frozenset({"FROM", "WHERE"})


def _top_level(sql: str) -> list[bool]:
    """For each character: outside every string, quoted name and parenthesis."""
    flags, depth, quote = [], 0, ""
    for char in sql:
        if quote:
            flags.append(False)
            if char == quote:
                quote = ""
            continue
        if char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        flags.append(depth == 0 and not quote and char not in "()")
    return flags


def _split_top_level(text: str, separator: str = ",") -> list[str]:
    flags = _top_level(text)
    parts, start = [], 0
    for index, char in enumerate(text):
        if char == separator and flags[index]:
            parts.append(text[start:index].strip())
            start = index + 1
    parts.append(text[start:].strip())
    return parts


def _collapse(items: Sequence[str], noun: str) -> str:
    if len(items) <= KEPT_ITEMS + 1:
        return ", ".join(items)
    return f"{', '.join(items[:KEPT_ITEMS])}, ... ({len(items)} {noun})"


def _clauses(sql: str) -> list[tuple[str, str]]:
    """``sql`` cut at its top-level keywords: ``[("", "SELECT ..."), ("FROM", "FROM ...")...]``."""
    flags = _top_level(sql)
    starts = [m for m in _CLAUSE.finditer(sql) if flags[m.start()]]
    clauses, previous, keyword = [], 0, ""
    for match in starts:
        clauses.append((keyword, sql[previous : match.start()].strip()))
        previous, keyword = match.start(), _SPACE.sub(" ", match.group().upper())
    clauses.append((keyword, sql[previous:].strip()))
    return [(key, text) for key, text in clauses if text]


def _collapse_lists(clauses: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Long select lists, column lists, ``SET`` lists and ``IN``/``VALUES`` lists, collapsed."""
    collapsed = []
    for keyword, text in clauses:
        head = _SELECT_HEAD.match(text) if keyword == "" else None
        if head:
            columns = _split_top_level(text[head.end() :])
            text = head.group(1) + _collapse(columns, "columns")
        elif keyword == "" and (insert := _INSERT_COLUMNS.match(text)):
            columns = [column.strip() for column in insert.group(2).split(",")]
            text = f"{insert.group(1)}({_collapse(columns, 'columns')}){text[insert.end() :]}"
        elif keyword == "SET":
            assignments = _split_top_level(text[3:])
            text = "SET " + _collapse(assignments, "columns")
        elif keyword == "VALUES":
            rows = _split_top_level(text[len("VALUES") :])
            text = f"VALUES {rows[0]}" + (f", ... ({len(rows)} rows)" if len(rows) > 1 else "")
        text = _FLAT_LIST.sub(
            lambda m: f"({_collapse([item.strip() for item in m.group(1).split(',')], 'values')})",
            text,
        )
        collapsed.append((keyword, text))
    return collapsed


def _join(clauses: Sequence[tuple[str, str] | None]) -> str:
    """The kept clauses, with ``...`` where some were left out."""
    parts: list[str] = []
    for clause in clauses:
        if clause is not None:
            parts.append(clause[1])
        elif not parts or parts[-1] != "...":
            parts.append("...")
    return " ".join(parts)


def shorten_sql(sql: str, limit: int = SQL_LIMIT) -> str:
    """``sql`` in at most ``limit`` characters, keeping what tells statements apart.

    Long select, column and value lists become ``"a", "b", ... (23 columns)``; if that is not
    enough, joins, ordering and the like give way to ``...`` before the verb, the ``FROM`` table
    and the ``WHERE`` clause do; what is still too long is cut at the end.
    """
    sql = _SPACE.sub(" ", sql).strip()
    if len(sql) <= limit:
        return sql
    clauses = _collapse_lists(_clauses(sql))
    shortened = _join(clauses)
    if len(shortened) > limit:
        # Required: the head (verb and columns), FROM and WHERE; then others while they fit.
        kept: list[tuple[str, str] | None] = [
            clause if index == 0 or clause[0] in _KEPT else None
            for index, clause in enumerate(clauses)
        ]
        for index, clause in enumerate(clauses):
            if kept[index] is None:
                trial = [*kept[:index], clause, *kept[index + 1 :]]
                if len(_join(trial)) <= limit:
                    kept = trial
        shortened = _join(kept)
    if len(shortened) > limit:
        cut = shortened[: limit - 4]
        space = cut.rfind(" ", limit - 40)  # end at a word when one ends near the limit
        shortened = (cut[:space] if space > 0 else cut).rstrip() + " ..."
    return shortened


def format_sql(sql: str) -> str:
    """``sql`` on several lines: one per top-level clause, the select list one column a line."""
    lines: list[str] = []
    for keyword, text in _clauses(_SPACE.sub(" ", sql).strip()):
        head = _SELECT_HEAD.match(text) if keyword == "" else None
        if head:
            lines.append(head.group(1).rstrip())
            columns = _split_top_level(text[head.end() :])
            lines.extend(f"    {column}," for column in columns[:-1])
            lines.append(f"    {columns[-1]}")
        else:
            lines.append(text)
    return "\n".join(lines)
