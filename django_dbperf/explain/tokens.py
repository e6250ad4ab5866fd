"""SQL text cut into tokens, so that checks never mistake a string, a quoted name or a comment
for code; and Django's ``%s`` placeholders numbered ``$1..$n`` for PostgreSQL.

The dialect matters where a mistake would hide code: PostgreSQL nests block comments and has
dollar quotes and ``E'...'`` strings with backslash escapes; SQLite has none of these, so there
they are not recognised (SQLite would read the text the plain way, and so do we).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Dialect = Literal["postgresql", "sqlite"]
Kind = Literal[
    "space", "comment", "string", "quoted", "word", "number", "placeholder", "percent", "punct"
]


class TokenError(ValueError):
    """The text cannot be cut into tokens (an unterminated string, quoted name or comment)."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str
    start: int

    @property
    def keyword(self) -> str:
        """The upper-cased word, or "" for anything that is not a bare word."""
        return self.text.upper() if self.kind == "word" else ""


_SPACE = re.compile(r"[ \t\n\r\f\v]+")  # the ASCII whitespace both lexers skip
_WORD = re.compile(r"[^\W\d]\w*(?:\$\w*)*")  # PostgreSQL allows $ inside (not first in) names
_NUMBER = re.compile(r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?")
_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")
_DOLLAR_PARAM = re.compile(r"\$\d+")
_NAMES = {"'": "string literal", '"': "quoted name", "$": "dollar-quoted string"}


def _quoted_end(sql: str, start: int, quote: str, backslashes: bool) -> int:
    """The index after the quote closing the one at ``start`` (doubled quotes are escapes)."""
    index = start + 1
    while index < len(sql):
        char = sql[index]
        if backslashes and char == "\\":
            index += 2
            continue
        if char == quote:
            if sql.startswith(quote, index + 1):
                index += 2
                continue
            return index + 1
        index += 1
    raise TokenError(f"unterminated {_NAMES[quote]} starting at character {start + 1}")


def _block_comment_end(sql: str, start: int, nested: bool) -> int:
    depth, index = 0, start
    while index < len(sql):
        if sql.startswith("/*", index):
            depth = depth + 1 if nested or depth == 0 else depth
            index += 2
        elif sql.startswith("*/", index):
            depth -= 1
            index += 2
            if depth == 0:
                return index
        else:
            index += 1
    raise TokenError(f"unterminated comment starting at character {start + 1}")


def _token_end(sql: str, index: int, dialect: Dialect) -> tuple[Kind, int]:
    postgres = dialect == "postgresql"
    char = sql[index]
    if match := _SPACE.match(sql, index):
        return "space", match.end()
    if sql.startswith("--", index):
        # PostgreSQL ends it at \r too: ending early can only make us see more code, not less.
        ends = [end for end in (sql.find("\n", index), sql.find("\r", index)) if end >= 0]
        return "comment", min(ends) + 1 if ends else len(sql)
    if sql.startswith("/*", index):
        return "comment", _block_comment_end(sql, index, nested=postgres)
    if char in "'\"":
        return ("string" if char == "'" else "quoted"), _quoted_end(sql, index, char, False)
    if postgres and char in "eE" and sql.startswith("'", index + 1):
        return "string", _quoted_end(sql, index + 1, "'", backslashes=True)
    if match := _DOLLAR_PARAM.match(sql, index):  # a parameter in both dialects
        return "placeholder", match.end()
    if postgres and (match := _DOLLAR_TAG.match(sql, index)):
        close = sql.find(match.group(), match.end())
        if close < 0:
            raise TokenError(f"unterminated dollar-quoted string at character {index + 1}")
        return "string", close + len(match.group())
    if sql.startswith("%s", index):
        return "placeholder", index + 2
    if sql.startswith("%%", index):
        return "percent", index + 2
    if match := _WORD.match(sql, index) or _NUMBER.match(sql, index):
        return ("word" if match.re is _WORD else "number"), match.end()
    return "punct", index + 1


def tokenize(sql: str, dialect: Dialect) -> list[Token]:
    """Every token of ``sql``, whitespace and comments included (their texts add up to ``sql``).

    Raises TokenError for an unterminated string, quoted name or comment.
    """
    tokens, index = [], 0
    while index < len(sql):
        kind, end = _token_end(sql, index, dialect)
        tokens.append(Token(kind, sql[index:end], index))
        index = end
    return tokens


def numbered_placeholders(tokens: list[Token]) -> tuple[str, int]:
    """Django's form (``%s`` placeholders, ``%%`` for a percent sign) in PostgreSQL's ``$n`` form,
    and the number of placeholders.

    ``%%`` becomes ``%`` inside string literals and quoted names too: the drivers (psycopg,
    Django's SQLite wrapper) replace it everywhere when a statement runs with parameters, so
    that is the text the database saw.
    """
    parts, count = [], 0
    for token in tokens:
        if token.kind == "placeholder" and token.text == "%s":
            count += 1
            parts.append(f"${count}")
        elif token.kind in ("percent", "string", "quoted"):
            parts.append(token.text.replace("%%", "%"))
        else:
            parts.append(token.text)
    return "".join(parts), count
