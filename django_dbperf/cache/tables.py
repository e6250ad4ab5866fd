"""Which tables a statement reads or writes, from its SQL text (memoised per statement)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django_dbperf.cache.dependencies import DELETE, TRUNCATE_CASCADE, WRITE, tables_changed_with

_NAME = r'(?:"([^"]+)"|`([^`]+)`|([A-Za-z_][\w$]*))'
_READS = re.compile(rf"\b(?:FROM|JOIN)\s+{_NAME}", re.IGNORECASE)
_WRITE = re.compile(
    rf"^\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)"
    rf"\s+{_NAME}",
    re.IGNORECASE,
)
_TRUNCATE_OPTIONS = r"(\s+(?:RESTART|CONTINUE|CASCADE|RESTRICT)\b.*)?"
_TRUNCATE = re.compile(
    rf"^\s*TRUNCATE\s+(?:TABLE\s+)?(.+?){_TRUNCATE_OPTIONS};?\s*$", re.IGNORECASE | re.DOTALL
)
_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "TRUNCATE", "WITH", "MERGE")
# Statements that may delete rows, so the database runs its ON DELETE actions: REPLACE deletes
# the row it replaces; a CTE or a MERGE may hold a DELETE.
_DELETES = re.compile(r"^\s*(?:DELETE|REPLACE|INSERT\s+OR\s+REPLACE|WITH|MERGE)\b", re.IGNORECASE)

_CACHE_SIZE = 4096
_reads: dict[str, frozenset[str]] = {}
# The tables a statement names and its kind (dependencies.py): what the database changes along
# with them depends on the settings, so it is added outside this memo.
_writes: dict[str, tuple[frozenset[str], str]] = {}


def _names(matches: Iterable[re.Match[str]]) -> frozenset[str]:
    return frozenset(next(group for group in match.groups() if group) for match in matches)


def _remember[T](cache: dict[str, T], sql: str, found: T) -> None:
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[sql] = found


def read_tables(sql: str) -> frozenset[str]:
    """Every table named after FROM or JOIN (subqueries included)."""
    tables = _reads.get(sql)
    if tables is None:
        tables = frozenset(table_occurrences(sql))
        _remember(_reads, sql, tables)
    return tables


def written_tables(sql: str) -> frozenset[str]:
    """The tables a write statement changes, with those the database changes along with them
    (``dependencies.py``: database-level cascades, declared triggers); empty for reads."""
    found = _writes.get(sql)
    if found is None:
        found = _named_writes(sql)
        _remember(_writes, sql, found)
    tables, kind = found
    return tables_changed_with(tables, kind) if tables else tables


def _named_writes(sql: str) -> tuple[frozenset[str], str]:
    """The tables a write statement names, and its kind: ``WRITE``, ``DELETE`` (may delete
    rows) or ``TRUNCATE_CASCADE``."""
    head = sql.lstrip()[:8].upper()
    if not head.startswith(_WRITE_VERBS):
        return frozenset(), WRITE
    kind = DELETE if _DELETES.match(sql) else WRITE
    if head.startswith("TRUNCATE"):
        match = _TRUNCATE.match(sql)
        names = match.group(1).split(",") if match else []
        if match and match.group(2) and re.search(r"\bCASCADE\b", match.group(2), re.I):
            kind = TRUNCATE_CASCADE
        return frozenset(name.strip().strip('"`') for name in names if name.strip()), kind
    if head.startswith(("WITH", "MERGE")):
        # A CTE may write anywhere it names: treat every table it mentions as written.
        names = _names(re.finditer(rf"\b(?:INTO|UPDATE)\s+{_NAME}", sql, re.I))
        return read_tables(sql) | names, kind
    match = _WRITE.match(sql)
    return (_names([match]) if match else frozenset()), kind


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
