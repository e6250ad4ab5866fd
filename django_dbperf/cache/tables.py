"""Which tables a statement reads or writes, from its SQL text (memoised per statement)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_NAME = r'(?:"([^"]+)"|`([^`]+)`|([A-Za-z_][\w$]*))'
_READS = re.compile(rf"\b(?:FROM|JOIN)\s+{_NAME}", re.IGNORECASE)
_WRITE = re.compile(
    rf"^\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)"
    rf"\s+{_NAME}",
    re.IGNORECASE,
)
_TRUNCATE_OPTIONS = r"(?:\s+(?:RESTART|CONTINUE|CASCADE|RESTRICT)\b.*)?"
_TRUNCATE = re.compile(
    rf"^\s*TRUNCATE\s+(?:TABLE\s+)?(.+?){_TRUNCATE_OPTIONS};?\s*$", re.IGNORECASE | re.DOTALL
)
_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "TRUNCATE", "WITH", "MERGE")

_CACHE_SIZE = 4096
_reads: dict[str, frozenset[str]] = {}
_writes: dict[str, frozenset[str]] = {}


def _names(matches: Iterable[re.Match[str]]) -> frozenset[str]:
    return frozenset(next(group for group in match.groups() if group) for match in matches)


def _remember(cache: dict[str, frozenset[str]], sql: str, tables: frozenset[str]) -> None:
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[sql] = tables


def read_tables(sql: str) -> frozenset[str]:
    """Every table named after FROM or JOIN (subqueries included)."""
    tables = _reads.get(sql)
    if tables is None:
        tables = frozenset(table_occurrences(sql))
        _remember(_reads, sql, tables)
    return tables


def written_tables(sql: str) -> frozenset[str]:
    """The tables a write statement changes; empty for reads."""
    tables = _writes.get(sql)
    if tables is not None:
        return tables
    head = sql.lstrip()[:8].upper()
    if not head.startswith(_WRITE_VERBS):
        tables = frozenset()
    elif head.startswith("TRUNCATE"):
        match = _TRUNCATE.match(sql)
        names = match.group(1).split(",") if match else []
        tables = frozenset(name.strip().strip('"`') for name in names if name.strip())
    elif head.startswith(("WITH", "MERGE")):
        # A CTE may write anywhere it names: treat every table it mentions as written.
        tables = read_tables(sql) | _names(re.finditer(rf"\b(?:INTO|UPDATE)\s+{_NAME}", sql, re.I))
    else:
        match = _WRITE.match(sql)
        tables = _names([match]) if match else frozenset()
    _remember(_writes, sql, tables)
    return tables


_occurrences: dict[str, dict[str, int]] = {}


def table_occurrences(sql: str) -> dict[str, int]:
    """How many times each table is named after FROM or JOIN (a self-join counts twice)."""
    found = _occurrences.get(sql)
    if found is None:
        found = {}
        for match in _READS.finditer(sql):
            name = next(group for group in match.groups() if group)
            found[name] = found.get(name, 0) + 1
        if len(_occurrences) >= _CACHE_SIZE:
            _occurrences.clear()
        _occurrences[sql] = found
    return found
