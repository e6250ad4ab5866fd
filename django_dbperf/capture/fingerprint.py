"""Statement shapes: SQL with literals, placeholders and ``IN`` lists collapsed.

Django sends the same SQL strings over and over (parameters travel separately), so the
normalisation is memoised by the SQL text and costs one dict lookup for a repeated statement.
"""

from __future__ import annotations

import re

_CACHE_SIZE = 4096
_cache: dict[str, str] = {}

_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w\".])-?\b\d+(?:\.\d+)?\b")
_PLACEHOLDER = re.compile(r"%s|%\(\w+\)s|\?|\$\d+")
_IN_LIST = re.compile(r"\bIN\s*\(\s*\?(?:\s*,\s*\?)*\s*\)", re.IGNORECASE)
_ROW = r"\(\s*\?(?:\s*,\s*\?)*\s*\)"
_VALUES_ROWS = re.compile(rf"\bVALUES\s*({_ROW})(?:\s*,\s*{_ROW})*", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def _normalise(sql: str) -> str:
    shape = _STRING.sub("?", sql)
    shape = _PLACEHOLDER.sub("?", shape)
    shape = _NUMBER.sub("?", shape)
    shape = _SPACE.sub(" ", shape).strip()
    shape = _IN_LIST.sub("IN (...)", shape)
    # A bulk INSERT of 3 rows and of 300 rows is the same statement shape.
    return _VALUES_ROWS.sub(r"VALUES \1, ...", shape)


def fingerprint(sql: str) -> str:
    """The shape of ``sql``: equal for the same statement run with other values."""
    shape = _cache.get(sql)
    if shape is None:
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        shape = _cache[sql] = _normalise(sql)
    return shape
