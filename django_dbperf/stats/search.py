"""What the admin's search reads: a statement's names (tables, columns, aliases) in lower
case, a few hundred characters instead of its whole SQL.

Searching 100,000 stored statements in their SQL text scans over 100 MB per page (measured:
about 0.9 s on PostgreSQL, twice per page with the count); the names are what people search
for ("inventory_profile", "created_at"), and kept with the shape's id in a narrow table of
their own (``QueryShapeSearch``) they are a few MB.
"""

from __future__ import annotations

import re

LIMIT = 2000
_NAME = re.compile(r'"([^"]+)"|`([^`]+)`|\b([A-Za-z_][A-Za-z0-9_$]*)\b')
_PLACEHOLDER = re.compile(r"%(?:\(\w+\))?s|'(?:[^']|'')*'")  # values, not names
# SQL words are not names: leaving them out keeps the text short and the matches meaningful.
_SQL_WORDS = frozenset(
    """
    select from where and or not in is null as on join inner left right full outer cross
    natural using group by order asc desc limit offset having distinct union all except
    intersect insert into values update set delete returning case when then else end exists
    between like ilike escape true false count sum avg min max coalesce cast with recursive
    over partition filter lateral any some for share nowait skip locked no key conflict do
    nothing default upper lower interval date time timestamp text integer bigint numeric
    double precision boolean varchar char collate nulls first last only array
    """.split()  # noqa: SIM905 - a word list reads better as text
)


def search_text(sql: str) -> str:
    """The distinct names in ``sql``, lower case, in order of first appearance."""
    names: dict[str, None] = {}
    for match in _NAME.finditer(_PLACEHOLDER.sub(" ", sql)):
        name = (match.group(1) or match.group(2) or match.group(3) or "").lower()
        if name and name not in _SQL_WORDS:
            names[name] = None
    return " ".join(names)[:LIMIT]


def terms(query: str) -> list[str]:
    """The words of a search, lower case, quotes and dots taken as separators."""
    return [term for term in re.split(r'[\s".`]+', query.lower()) if term]
