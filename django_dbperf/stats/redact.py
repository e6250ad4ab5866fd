"""Parameter redaction: which column each ``%s`` of a statement is bound to, and masking by it.

The statistics store may keep one sample of a statement's parameters (``STORE_PARAMS``). A value
is kept only when its column is known for certain and matches no redaction pattern. A value whose
column cannot be told (a function argument, ``CASE``, arithmetic, a placeholder on the left) may
be anything, a password included, so unknown means masked; so does a statement whose placeholders
do not number its params. Imports nothing of django_dbperf nor Django: every layer can use it.
"""

from __future__ import annotations

import datetime
import fnmatch
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal

REDACTED = "<redacted>"
# fnmatch globs, case-insensitive, matched against the bare column name.
DEFAULT_REDACT_COLUMNS: tuple[str, ...] = (
    "*password*", "*passwd*", "*token*", "*secret*", "*email*", "*api_key*", "*apikey*",
    "*private_key*", "*session*", "*credential*", "ssn", "*_ssn", "ssn_*", "*credit_card*",
    "*card_number*", "*cvv*", "*iban*", "*phone*", "*address*", "*birth*", "*passport*",
)  # fmt: skip

_TOKEN = re.compile(
    r"""(?P<skip>\s+|--[^\n]*|/\*.*?(?:\*/|\Z))
    |(?P<str>[Ee]'(?:[^'\\]|\\.|'')*(?:'|\Z)|'(?:[^']|'')*(?:'|\Z))
    |"(?:[^"]|"")*(?:"|\Z)|`(?:[^`]|``)*(?:`|\Z)|[^\W\d]\w*|%%|%s|%\(\w+\)s
    |\d+(?:\.\d*)?(?:[Ee][-+]?\d+)?|::|<>|!=|<=|>=|\|\||!?~\*?|\S""",
    re.VERBOSE | re.DOTALL,
)
_PH = "%s"
# Longest first: NOT LIKE is not a LIKE whose left operand is NOT.
_OPERATORS = ("IS NOT DISTINCT FROM", "IS DISTINCT FROM", "NOT ILIKE", "NOT LIKE", "ILIKE",
              "LIKE", "REGEXP", "GLOB", "=", "<>", "!=", "<", "<=", ">", ">=", "~", "~*", "!~",
              "!~*")  # fmt: skip
_WRAPPERS = frozenset({"UPPER", "LOWER"})
# What may stand right before a column operand, and right after a value.
_BEFORE = frozenset({"", "(", ",", "WHERE", "AND", "OR", "NOT", "ON", "SET", "WHEN", "HAVING"})
_AFTER = frozenset({"", ")", ",", ";", "AND", "OR", "ESCAPE", "THEN", "ELSE", "END", "WHEN",
                    "WHERE", "ORDER", "GROUP", "HAVING", "LIMIT", "OFFSET", "RETURNING", "UNION",
                    "INTERSECT", "EXCEPT", "FOR", "FROM", "AS"})  # fmt: skip
_NOT_NAMES = _BEFORE | _AFTER | {"NULL", "TRUE", "FALSE", "IN", "IS", "LIKE", "BETWEEN"}


def _tokens(sql: str) -> list[str]:
    """Code tokens, bare words upper-cased; a string literal is ``'`` and comments vanish."""
    found = []
    for match in _TOKEN.finditer(sql):
        if match.lastgroup is None:
            tok = match.group()
            found.append(tok.upper() if tok[0].isalpha() or tok[0] == "_" else tok)
        elif match.lastgroup == "str":
            found.append("'")
    return found


def _at(toks: list[str], k: int) -> str:
    return toks[k] if 0 <= k < len(toks) else ""


def _is_name(tok: str) -> bool:
    if tok[:1] in ('"', "`"):
        return True
    return (tok[:1].isalpha() or tok[:1] == "_") and tok not in _NOT_NAMES


def _unquote(name: str) -> str:
    return name[1:-1].replace(name[0] * 2, name[0]) if name[0] in '"`' else name.lower()


def _close(toks: list[str], k: int) -> int | None:
    """The index of the parenthesis closing the one at ``k``."""
    depth = 0
    for n in range(k, len(toks)):
        depth += {"(": 1, ")": -1}.get(toks[n], 0)
        if depth == 0:
            return n
    return None


def _operand(toks: list[str], j: int) -> tuple[str, int] | None:
    """The column and first index of the operand ending at ``j``: ``"t"."col"``, ``col::text``,
    ``UPPER(col)``; None for any other expression."""
    wrapped = 0
    while True:
        while _at(toks, j - 1) == "::" and _is_name(_at(toks, j)):
            j -= 2
        if _at(toks, j) != ")":
            break
        wrapped, j = wrapped + 1, j - 1
    start = j
    while _at(toks, start - 1) == "." and _is_name(_at(toks, start - 2)):
        start -= 2
    for _ in range(wrapped):
        if _at(toks, start - 1) != "(" or _at(toks, start - 2) not in _WRAPPERS:
            return None
        start -= 2
    return (_unquote(toks[j]), start) if _is_name(_at(toks, j)) else None


def _left_column(toks: list[str], j: int) -> str | None:
    """The column of the operand ending at ``j``, if nothing binds it to more on its left."""
    found = _operand(toks, j)
    return found[0] if found and _at(toks, found[1] - 1) in _BEFORE else None


def _ends_value(toks: list[str], k: int) -> bool:
    """Whether the value ending at ``k`` (a cast such as ``::date[]`` skipped) ends there."""
    while _at(toks, k + 1) == "::" and _is_name(_at(toks, k + 2)):
        k += 2
        while _at(toks, k + 1) == "[" and _at(toks, k + 2) == "]":
            k += 2
    return _at(toks, k + 1) in _AFTER


def _column(toks: list[str], i: int) -> str | None:
    """The column the placeholder at ``i`` is compared with or assigned to, or None."""
    if _at(toks, i - 1) in ("LIMIT", "OFFSET"):
        return _at(toks, i - 1) if _ends_value(toks, i) else None
    for at in (i - 1, i - 3):  # BETWEEN %s AND %s: both bounds
        if [_at(toks, at + n) for n in range(4)] == ["BETWEEN", _PH, "AND", _PH]:
            left = at - 2 if _at(toks, at - 1) == "NOT" else at - 1
            return _left_column(toks, left) if _ends_value(toks, at + 3) else None
    start, end = i, i
    if _at(toks, i - 1) == "(" and _at(toks, i - 2) in _WRAPPERS and _at(toks, i + 1) == ")":
        start, end = i - 2, i + 1  # UPPER(%s)
    for op in _OPERATORS if _ends_value(toks, end) else ():
        if " ".join(toks[max(start - op.count(" ") - 1, 0) : start]) == op:
            return _left_column(toks, start - op.count(" ") - 2)
    return None


def _in_lists(toks: list[str]) -> dict[int, str | None]:
    """The placeholders of ``col IN (%s, %s, ...)`` lists by index, mapped to ``col`` (one pass:
    lists of thousands are common)."""
    found: dict[int, str | None] = {}
    for k in (k for k, tok in enumerate(toks) if tok == "IN" and _at(toks, k + 1) == "("):
        end = k + 2
        while _at(toks, end) == _PH and _at(toks, end + 1) == ",":
            end += 2
        if _at(toks, end) == _PH and _at(toks, end + 1) == ")":
            left = k - 2 if _at(toks, k - 1) == "NOT" else k - 1
            column = _left_column(toks, left) if _ends_value(toks, end + 1) else None
            found.update(dict.fromkeys(range(k + 2, end + 1, 2), column))
    return found


def _items(toks: list[str], opening: int, closing: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` spans of the comma-separated items between two parentheses."""
    spans, start, depth = [], opening + 1, 0
    for k in range(opening + 1, closing):
        depth += {"(": 1, ")": -1}.get(toks[k], 0)
        if toks[k] == "," and depth == 0:
            spans.append((start, k))
            start = k + 1
    return [*spans, (start, closing)]


def _insert_columns(toks: list[str]) -> dict[int, str]:
    """The placeholders of ``INSERT INTO t (a, b) VALUES (%s, %s), (...)`` by index, mapped to
    their columns (also PostgreSQL's bulk ``SELECT * FROM UNNEST((%s)::varchar[], ...)``)."""
    if _at(toks, 0) not in ("INSERT", "REPLACE") or "INTO" not in toks:
        return {}
    k = toks.index("INTO") + 1
    while _is_name(_at(toks, k)) or _at(toks, k) == ".":
        k += 1
    if _at(toks, k) != "(" or (end := _close(toks, k)) is None:
        return {}
    names = [toks[start] if stop == start + 1 else "" for start, stop in _items(toks, k, end)]
    if not all(_is_name(name) for name in names):
        return {}
    k = end + 1 + (4 if toks[end + 1 : end + 5] == ["SELECT", "*", "FROM", "UNNEST"] else 0)
    k += _at(toks, k) == "VALUES"
    found: dict[int, str] = {}
    while _at(toks, k) == "(" and (end := _close(toks, k)) is not None:
        if len(items := _items(toks, k, end)) == len(names):
            for (start, stop), name in zip(items, names, strict=True):
                value = toks[start:stop]  # %s, or (%s)::int[]: one placeholder, cast
                value = value[: value.index("::")] if "::" in value else value
                if [tok for tok in value if tok not in ("(", ")")] == [_PH]:
                    found[start + value.index(_PH)] = _unquote(name)
        k = end + 2 if _at(toks, end + 1) == "," else len(toks)
    return found


def placeholder_columns(sql: str) -> list[str | None]:
    """One entry per ``%s`` of ``sql``, in order: the column its value is compared with, assigned
    to or inserted into (``"LIMIT"``/``"OFFSET"`` for those slots), or None when unknown."""
    toks = _tokens(sql)
    known = {**_in_lists(toks), **_insert_columns(toks)}
    spots = [i for i, tok in enumerate(toks) if tok == _PH]
    return [known[i] if i in known else _column(toks, i) for i in spots]


def _json_safe(value: object) -> object:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)  # a plain int of IntegerChoices, psycopg's Int4...
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime.date | datetime.time | datetime.timedelta | Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{memoryview(value).nbytes} bytes>"
    if isinstance(value, list | tuple):  # PostgreSQL's bulk insert binds a list per column
        return [_json_safe(item) for item in value]
    return REDACTED


def redact_params(
    sql: str, params: Sequence[object] | Mapping[str, object] | None, patterns: Sequence[str]
) -> list[object] | None:
    """``params`` as a JSON-safe list, each value masked unless its column is known and matches
    none of ``patterns``. Named params (a mapping) are all masked."""
    if params is None:
        return None
    if isinstance(params, Mapping):
        return [REDACTED] * len(params)
    columns = placeholder_columns(sql)
    if len(columns) != len(params):
        columns = [None] * len(params)
    globs = [pattern.lower() for pattern in patterns]
    return [
        REDACTED
        if column is None or any(fnmatch.fnmatchcase(column.lower(), glob) for glob in globs)
        else _json_safe(value)
        for column, value in zip(columns, params, strict=True)
    ]
