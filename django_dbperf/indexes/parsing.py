"""What each table of one SQL statement is filtered, joined and sorted by: the advisor's evidence.

The index advisor turns the statements a project ran into candidate indexes; for that it needs,
per relation occurrence, the columns compared with ``=`` to a value, the ``IN`` lists, the
ranges, the ``IS NULL`` tests, the join columns, the ``ORDER BY`` (and whether a ``LIMIT`` makes
it a top-N query), and which columns the statement reads at all (for covering indexes).

The text is read by pglast (libpg_query: PostgreSQL's own parser), never by pattern matching.
Django's form (``%s``, ``%%``) is first put in PostgreSQL's (``$n``) with the project's
tokenizer, so texts from the statistics store and from pg_stat_statements read the same.

Only what a btree can use is collected: predicates AND-ed at the top of a ``WHERE`` or
``JOIN ... ON``, on plain columns (not ``UPPER(col)`` nor ``col::date``), against a parameter
or a literal. ``OR`` and ``NOT`` branches are left out, except ``NOT col`` on a boolean column.
Column names resolve through each ``SELECT``'s own ``FROM`` first, then the enclosing ones
(correlated subqueries); an unqualified column only when its ``SELECT`` reads one relation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import (
    A_Expr_Kind,
    BoolExprType,
    BoolTestType,
    NullTestType,
    SetOperation,
    SortByDir,
    SubLinkType,
)
from pglast.parser import ParseError

from django_dbperf.explain.tokens import TokenError, numbered_placeholders, tokenize

__all__ = ["Constant", "ParsedQuery", "TableAccess", "UnparsableQuery", "parse_query"]


class UnparsableQuery(ValueError):
    """The statement cannot be read; str() says why, for a person (include the parser's message)."""


@dataclass(frozen=True)
class Constant:
    """A predicate whose other side is a literal: what a partial index's WHERE could say."""

    column: str
    operator: str  # "=", "<>", "<", "<=", ">", ">=", "IN", "IS NULL", "IS NOT NULL", "IS TRUE"...
    values: tuple[Any, ...]  # the literals as Python values; empty for IS NULL and the like


@dataclass(frozen=True)
class TableAccess:
    """How one occurrence of a relation is used (a self-join gives two of these)."""

    table: str
    schema: str | None
    alias: str | None
    equality: tuple[str, ...]
    in_lists: tuple[str, ...]
    ranges: tuple[str, ...]
    null_tests: tuple[tuple[str, bool], ...]  # (column, True for IS NULL)
    joins: tuple[str, ...]
    order_by: tuple[tuple[str, bool], ...]  # (column, descending)
    limit: bool
    constants: tuple[Constant, ...]
    parameters: tuple[tuple[str, int], ...]  # (column, placeholder number)
    referenced: tuple[str, ...] | None  # None: the statement reads * (or alias.*) of it


@dataclass(frozen=True)
class ParsedQuery:
    kind: str  # "select", "update", "delete", "insert", "other"
    tables: tuple[TableAccess, ...]
    written: str | None
    placeholders: int


def parse_query(sql: str) -> ParsedQuery:
    """The tables ``sql`` reads and how it filters, joins and sorts each one.

    Raises UnparsableQuery for text pglast cannot parse, for more than one statement, or an
    empty string.
    """
    statement = _only_statement(_postgres_text(sql))
    reader = _Reader()
    reader.statement(statement, None)
    return ParsedQuery(
        kind=_KINDS.get(type(statement), "other"),
        tables=tuple(table.freeze() for table in reader.tables),
        written=_written(statement),
        placeholders=len(_placeholders(statement)),
    )


# Reading the text.


def _postgres_text(sql: str) -> str:
    """``sql`` in PostgreSQL's form: Django's ``%s`` and ``%%`` converted.

    Text already numbered ``$n`` (pg_stat_statements) and without ``%s`` is left as it is:
    there ``%%`` is no escape.
    """
    try:
        tokens = tokenize(sql, "postgresql")
    except TokenError:
        return sql  # pglast will say what is wrong, in PostgreSQL's words
    placeholders = {token.text[0] for token in tokens if token.kind == "placeholder"}
    return sql if placeholders == {"$"} else numbered_placeholders(tokens)[0]


def _only_statement(text: str) -> ast.Node:
    try:
        statements = parse_sql(text)
    except ParseError as error:
        raise UnparsableQuery(_parser_message(error, text)) from error
    if not statements:
        raise UnparsableQuery("there is no statement: the text is empty, or only comments")
    if len(statements) > 1:
        raise UnparsableQuery(
            f"the text holds {len(statements)} statements; pass them one at a time"
        )
    statement = statements[0].stmt
    if statement is None:  # a RawStmt always wraps one; this keeps the types honest
        raise UnparsableQuery("the parser returned no statement")
    return statement


def _parser_message(error: ParseError, text: str) -> str:
    message = str(error.args[0]) if error.args else str(error)
    location = error.args[1] if len(error.args) > 1 else None
    if not isinstance(location, int) or not 0 <= location <= len(text):
        return f"PostgreSQL's parser cannot read the statement: {message}"
    near = text[location : location + 30]
    return (
        f"PostgreSQL's parser cannot read the statement: {message} "
        f"(at character {location + 1}: {near!r})"
    )


_KINDS: dict[type[ast.Node], str] = {
    ast.SelectStmt: "select",
    ast.DeclareCursorStmt: "select",  # a server-side cursor (QuerySet.iterator()): its SELECT
    ast.UpdateStmt: "update",
    ast.DeleteStmt: "delete",
    ast.InsertStmt: "insert",
}


def _written(statement: ast.Node) -> str | None:
    if isinstance(statement, ast.UpdateStmt | ast.DeleteStmt | ast.InsertStmt):
        relation = statement.relation
        return relation.relname if relation is not None else None
    return None


def _nodes(node: object) -> Iterator[ast.Node]:
    """Every node under ``node``, itself included."""
    if isinstance(node, tuple):
        for item in node:
            yield from _nodes(item)
    elif isinstance(node, ast.Node):
        yield node
        for attribute in node:
            yield from _nodes(getattr(node, attribute))


def _placeholders(statement: ast.Node) -> set[int]:
    return {
        node.number for node in _nodes(statement) if isinstance(node, ast.ParamRef) and node.number
    }


# Values: a parameter or a literal, through casts on that side (`$1::timestamptz`, `'x'::text`).


@dataclass(frozen=True)
class _Param:
    number: int


@dataclass(frozen=True)
class _Literal:
    value: bool | int | float | str


type _Value = _Param | _Literal


def _value(node: object) -> _Value | None:
    while isinstance(node, ast.TypeCast):
        node = node.arg
    if isinstance(node, ast.ParamRef) and node.number:
        return _Param(node.number)
    if isinstance(node, ast.A_Const) and not node.isnull:  # `col = NULL` is never true
        return _Literal(_python(node.val))
    return None


def _values(nodes: object) -> list[_Value] | None:
    """The values of a list (``IN (...)``, ``ARRAY[...]``), or None if any item is not one."""
    if not isinstance(nodes, tuple):
        return None
    values = [_value(node) for node in nodes]
    return None if None in values else [value for value in values if value is not None]


def _python(node: object) -> bool | int | float | str:
    if isinstance(node, ast.Integer):
        return node.ival or 0  # pglast leaves a zero out
    if isinstance(node, ast.Float):
        return _number(node.fval or "0")
    if isinstance(node, ast.Boolean):
        return bool(node.boolval)
    if isinstance(node, ast.String):
        return node.sval or ""
    if isinstance(node, ast.BitString):
        return node.bsval or ""
    return str(node)


def _number(text: str) -> int | float:
    # PostgreSQL gives integers beyond int4 (and hex ones beyond it) as Float nodes.
    for base in (10, 0):
        try:
            return int(text, base)
        except ValueError:
            pass
    return float(text)


# Relation occurrences and the scopes that name them.


@dataclass(eq=False)
class _Table:
    """One relation occurrence, filled in while reading, frozen into a TableAccess at the end."""

    table: str
    schema: str | None
    alias: str | None
    equality: dict[str, None] = field(default_factory=dict)  # dicts: ordered sets
    in_lists: dict[str, None] = field(default_factory=dict)
    ranges: dict[str, None] = field(default_factory=dict)
    null_tests: dict[tuple[str, bool], None] = field(default_factory=dict)
    joins: dict[str, None] = field(default_factory=dict)
    order_by: tuple[tuple[str, bool], ...] = ()
    limit: bool = False
    # Keyed with the values' types too: 1 and True are equal in Python, not in SQL.
    constants: dict[tuple[object, ...], Constant] = field(default_factory=dict)
    parameters: dict[tuple[str, int], None] = field(default_factory=dict)
    referenced: dict[str, None] = field(default_factory=dict)
    star: bool = False

    @property
    def name(self) -> str:
        return self.alias or self.table

    def compare(self, column: str, operator: str, value: _Value) -> None:
        """``column <operator> value``, for =, <>, <, <=, > and >=."""
        if operator == "=":
            self.equality[column] = None
        elif operator != "<>":
            self.ranges[column] = None
        if isinstance(value, _Literal):
            self.constant(column, operator, (value.value,))
        elif operator != "<>":  # `col <> $1` helps no index
            self.parameters[(column, value.number)] = None

    def in_list(self, column: str, values: list[_Value]) -> None:
        self.in_lists[column] = None
        for value in values:
            if isinstance(value, _Param):
                self.parameters[(column, value.number)] = None
        literals = [value.value for value in values if isinstance(value, _Literal)]
        if values and len(literals) == len(values):
            self.constant(column, "IN", tuple(literals))

    def constant(self, column: str, operator: str, values: tuple[Any, ...]) -> None:
        key = (column, operator, tuple((type(value), value) for value in values))
        self.constants.setdefault(key, Constant(column, operator, values))

    def freeze(self) -> TableAccess:
        return TableAccess(
            table=self.table,
            schema=self.schema,
            alias=self.alias,
            equality=tuple(self.equality),
            in_lists=tuple(self.in_lists),
            ranges=tuple(self.ranges),
            null_tests=tuple(self.null_tests),
            joins=tuple(self.joins),
            order_by=self.order_by,
            limit=self.limit,
            constants=tuple(self.constants.values()),
            parameters=tuple(self.parameters),
            referenced=None if self.star else tuple(self.referenced),
        )


@dataclass(eq=False)
class _Derived:
    """A subquery, CTE or function in FROM: it hides names, but its columns are no table's."""

    name: str | None


type _Entry = _Table | _Derived
type _Column = tuple[_Entry, str]


@dataclass(eq=False)
class _Scope:
    """The FROM of one SELECT (or UPDATE/DELETE), inside the scopes of the enclosing ones."""

    parent: _Scope | None
    entries: list[_Entry] = field(default_factory=list)
    ctes: set[str] = field(default_factory=set)
    join_quals: list[ast.Node] = field(default_factory=list)

    def is_cte(self, name: str) -> bool:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.ctes:
                return True
            scope = scope.parent
        return False

    def qualified(self, qualifier: tuple[str, ...]) -> _Entry | None:
        """The entry ``qualifier`` (alias, table or schema.table) names, innermost scope first."""
        scope: _Scope | None = self
        while scope is not None:
            found = [entry for entry in scope.entries if _names(entry, qualifier)]
            if found:
                return found[0] if len(found) == 1 else None  # ambiguous: PostgreSQL refuses
            scope = scope.parent
        return None

    def unqualified(self) -> _Entry | None:
        # Without the tables' columns, a bare name is only certain when one relation is read.
        return self.entries[0] if len(self.entries) == 1 else None


def _names(entry: _Entry, qualifier: tuple[str, ...]) -> bool:
    if isinstance(entry, _Derived):
        return len(qualifier) == 1 and entry.name == qualifier[0]
    if entry.name != qualifier[-1]:
        return False
    # "schema"."table"."column": only a relation without an alias, in that schema.
    return len(qualifier) == 1 or (entry.alias is None and entry.schema in (None, qualifier[-2]))


def _conjuncts(node: object) -> Iterator[ast.Node]:
    """The predicates AND-ed at the top of ``node``, through nested ANDs."""
    if isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.AND_EXPR:
        for argument in node.args or ():
            yield from _conjuncts(argument)
    elif isinstance(node, ast.Node):
        yield node


def _operator(node: ast.A_Expr | ast.SubLink) -> str | None:
    names = node.name if isinstance(node, ast.A_Expr) else node.operName
    if not names or len(names) != 1 or not isinstance(names[0], ast.String):
        return None  # absent, or schema-qualified: OPERATOR(myschema.=)
    return names[0].sval


_BOOLEAN_TESTS = {BoolTestType.IS_TRUE: "IS TRUE", BoolTestType.IS_FALSE: "IS FALSE"}
_FLIPPED = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


class _Reader:
    """Walks one statement, creating a _Table per relation occurrence in the order found."""

    def __init__(self) -> None:
        self.tables: list[_Table] = []
        # The single plain column an `IN (SELECT col ...)` subquery returns, by id(SubLink).
        self.sublink_outputs: dict[int, _Column] = {}

    # Statements.

    def statement(self, node: object, parent: _Scope | None) -> _Scope | None:
        if isinstance(node, ast.SelectStmt):
            return self.select(node, parent)
        if isinstance(node, ast.DeclareCursorStmt):
            return self.statement(node.query, parent)
        if isinstance(node, ast.UpdateStmt):
            self.update(node, parent)
        elif isinstance(node, ast.DeleteStmt):
            self.delete(node, parent)
        elif isinstance(node, ast.InsertStmt):
            scope = _Scope(parent)
            self.with_clause(node.withClause, scope)
            self.statement(node.selectStmt, scope)  # the target itself is only written
        return None

    def select(self, node: ast.SelectStmt, parent: _Scope | None) -> _Scope:
        scope = _Scope(parent)
        self.with_clause(node.withClause, scope)
        if node.op != SetOperation.SETOP_NONE:
            # UNION and the like: each arm is a SELECT of its own; the outer ORDER BY sorts
            # the combined rows, no table's.
            self.statement(node.larg, scope)
            self.statement(node.rarg, scope)
            return scope
        self.from_clause(node.fromClause, scope)
        targets = node.targetList or ()
        sort_nodes = tuple(_sort_node(sort, targets) for sort in node.sortClause or ())
        self.walk((node.valuesLists, targets), scope)
        self.join_conditions(scope)
        for part in (node.whereClause, node.groupClause):
            self.walk(part, scope)
        for part in (node.havingClause, node.windowClause, sort_nodes, node.distinctClause):
            self.walk(part, scope)
        self.walk((node.limitCount, node.limitOffset), scope)
        self.predicates(node.whereClause, scope)
        self.order(node, sort_nodes, scope)
        return scope

    def update(self, node: ast.UpdateStmt, parent: _Scope | None) -> None:
        scope = _Scope(parent)
        self.with_clause(node.withClause, scope)
        self.from_clause((node.relation, *(node.fromClause or ())), scope)
        # The values read; the columns set are written, not read.
        self.walk(tuple(target.val for target in node.targetList or ()), scope)
        self.join_conditions(scope)
        self.walk((node.whereClause, node.returningClause), scope)
        self.predicates(node.whereClause, scope)

    def delete(self, node: ast.DeleteStmt, parent: _Scope | None) -> None:
        scope = _Scope(parent)
        self.with_clause(node.withClause, scope)
        self.from_clause((node.relation, *(node.usingClause or ())), scope)
        self.join_conditions(scope)
        self.walk((node.whereClause, node.returningClause), scope)
        self.predicates(node.whereClause, scope)

    def with_clause(self, node: ast.WithClause | None, scope: _Scope) -> None:
        ctes = node.ctes if node is not None else None
        for cte in ctes or ():
            if isinstance(cte, ast.CommonTableExpr) and cte.ctename:
                scope.ctes.add(cte.ctename)  # before its query: a recursive one names itself
                self.statement(cte.ctequery, scope)

    # FROM.

    def from_clause(self, items: tuple[Any, ...] | None, scope: _Scope) -> None:
        # The joins' ON is read later (join_conditions): it may name any relation of the FROM.
        for item in items or ():
            self.from_item(item, scope)

    def join_conditions(self, scope: _Scope) -> None:
        for quals in scope.join_quals:
            self.walk(quals, scope)
            self.predicates(quals, scope)

    def from_item(self, item: object, scope: _Scope) -> None:
        if isinstance(item, ast.RangeVar):
            self.relation(item, scope)
        elif isinstance(item, ast.JoinExpr):
            self.join_expr(item, scope)
        elif isinstance(item, ast.RangeTableSample):  # t TABLESAMPLE ...: still the table
            self.from_item(item.relation, scope)
            self.walk((item.args, item.repeatable), scope)
        elif isinstance(item, ast.RangeSubselect):
            self.statement(item.subquery, scope)
            scope.entries.append(_Derived(_alias(item.alias)))
        elif isinstance(item, ast.Node):  # functions, VALUES, XMLTABLE...
            self.walk(item, scope)
            scope.entries.append(_Derived(_alias(getattr(item, "alias", None))))

    def relation(self, node: ast.RangeVar, scope: _Scope) -> None:
        name, alias = node.relname or "", _alias(node.alias)
        if node.schemaname is None and scope.is_cte(name):
            scope.entries.append(_Derived(alias or name))
            return
        table = _Table(name, node.schemaname, alias)
        self.tables.append(table)
        scope.entries.append(table)

    def join_expr(self, node: ast.JoinExpr, scope: _Scope) -> None:
        start = len(scope.entries)
        self.from_item(node.larg, scope)
        middle = len(scope.entries)
        self.from_item(node.rarg, scope)
        if node.quals is not None:
            scope.join_quals.append(node.quals)
        left, right = scope.entries[start:middle], scope.entries[middle:]
        # USING (col): certain only when each side is one relation.
        if len(left) == 1 and len(right) == 1:
            for name in node.usingClause or ():
                if isinstance(name, ast.String) and name.sval:
                    self.reference((left[0], name.sval))
                    self.reference((right[0], name.sval))
                    self.join((left[0], name.sval), (right[0], name.sval))

    # Expressions: every column read, and every subquery met.

    def walk(self, node: object, scope: _Scope) -> None:
        if isinstance(node, tuple):
            for item in node:
                self.walk(item, scope)
        elif isinstance(node, ast.ColumnRef):
            self.column_ref(node, scope)
        elif isinstance(node, ast.SubLink):
            self.walk(node.testexpr, scope)
            self.sublink(node, scope)
        elif isinstance(node, ast.SelectStmt):
            self.select(node, scope)
        elif isinstance(node, ast.Node):
            for attribute in node:
                self.walk(getattr(node, attribute), scope)

    def column_ref(self, node: ast.ColumnRef, scope: _Scope) -> None:
        fields = node.fields or ()
        if fields and isinstance(fields[-1], ast.A_Star):
            self.star(_strings(fields[:-1]), scope)
        elif (column := self.column(node, scope)) is not None:
            self.reference(column)

    def star(self, qualifier: tuple[str, ...] | None, scope: _Scope) -> None:
        if qualifier is None:
            return
        entries = [scope.qualified(qualifier)] if qualifier else list(scope.entries)
        for entry in entries:
            if isinstance(entry, _Table):
                entry.star = True

    def reference(self, column: _Column) -> None:
        entry, name = column
        if isinstance(entry, _Table):
            entry.referenced[name] = None

    def sublink(self, node: ast.SubLink, scope: _Scope) -> None:
        inner = self.statement(node.subselect, scope)
        subselect = node.subselect
        if inner is None or not isinstance(subselect, ast.SelectStmt):
            return
        targets = subselect.targetList or ()
        if len(targets) == 1 and isinstance(targets[0], ast.ResTarget):
            output = self.column(targets[0].val, inner)
            if output is not None:
                self.sublink_outputs[id(node)] = output

    def column(self, node: object, scope: _Scope) -> _Column | None:
        """The relation occurrence and column a plain column reference names, if certain."""
        if not isinstance(node, ast.ColumnRef):
            return None
        names = _strings(node.fields or ())
        if not names:
            return None
        *qualifier, name = names
        entry = scope.qualified(tuple(qualifier)) if qualifier else scope.unqualified()
        return (entry, name) if entry is not None else None

    def table_column(self, node: object, scope: _Scope) -> tuple[_Table, str] | None:
        column = self.column(node, scope)
        if column is None or not isinstance(column[0], _Table):
            return None
        return column[0], column[1]

    # Predicates (WHERE, JOIN ... ON): only those AND-ed at the top.

    def predicates(self, node: object, scope: _Scope) -> None:
        for predicate in _conjuncts(node):
            self.predicate(predicate, scope)

    def predicate(self, node: ast.Node, scope: _Scope) -> None:
        if isinstance(node, ast.ColumnRef):  # WHERE "t"."is_active"
            self.boolean(node, True, scope)
        elif isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.NOT_EXPR:
            arguments = node.args or ()
            if len(arguments) == 1:  # NOT "t"."is_active"; any other NOT is ignored
                self.boolean(arguments[0], False, scope)
        elif isinstance(node, ast.NullTest):
            self.null_test(node, scope)
        elif isinstance(node, ast.BooleanTest):
            self.boolean_test(node, scope)
        elif isinstance(node, ast.A_Expr):
            self.a_expr(node, scope)
        elif isinstance(node, ast.SubLink):
            self.semi_join(node, scope)

    def boolean(self, node: object, value: bool, scope: _Scope) -> None:
        if (found := self.table_column(node, scope)) is not None:
            found[0].compare(found[1], "=", _Literal(value))

    def null_test(self, node: ast.NullTest, scope: _Scope) -> None:
        if (found := self.table_column(node.arg, scope)) is not None:
            table, column = found
            is_null = node.nulltesttype == NullTestType.IS_NULL
            table.null_tests[(column, is_null)] = None
            table.constant(column, "IS NULL" if is_null else "IS NOT NULL", ())

    def boolean_test(self, node: ast.BooleanTest, scope: _Scope) -> None:
        operator = _BOOLEAN_TESTS.get(node.booltesttype) if node.booltesttype is not None else None
        if operator and (found := self.table_column(node.arg, scope)) is not None:
            found[0].constant(found[1], operator, ())

    def a_expr(self, node: ast.A_Expr, scope: _Scope) -> None:
        operator, kind = _operator(node), node.kind
        if kind == A_Expr_Kind.AEXPR_OP and operator == "=" and (pairs := _rows(node)):
            # (a, b) = ($1, $2), as Django writes composite keys: a = $1 AND b = $2.
            for left, right in pairs:
                self.comparison(left, "=", right, scope)
        elif kind == A_Expr_Kind.AEXPR_OP and operator in _FLIPPED:
            self.comparison(node.lexpr, operator, node.rexpr, scope)
        elif kind == A_Expr_Kind.AEXPR_IN and operator == "=":  # "<>" is NOT IN
            self.in_list(node.lexpr, _values(node.rexpr), scope)
        elif kind == A_Expr_Kind.AEXPR_OP_ANY and operator == "=":
            self.in_list(node.lexpr, _array_values(node.rexpr), scope)
        elif kind == A_Expr_Kind.AEXPR_BETWEEN:
            self.between(node, scope)

    def comparison(self, left: object, operator: str, right: object, scope: _Scope) -> None:
        left_column, right_column = self.column(left, scope), self.column(right, scope)
        if left_column is not None and right_column is not None:
            if operator == "=":
                self.join(left_column, right_column)
            return
        if left_column is None:  # `$1 < col` is `col > $1`
            left_column, right, operator = right_column, left, _FLIPPED[operator]
        value = _value(right)
        if left_column is not None and isinstance(left_column[0], _Table) and value is not None:
            left_column[0].compare(left_column[1], operator, value)

    def in_list(self, node: object, values: list[_Value] | None, scope: _Scope) -> None:
        found = self.table_column(node, scope)
        if found is not None and values is not None:
            found[0].in_list(found[1], values)

    def between(self, node: ast.A_Expr, scope: _Scope) -> None:
        found = self.table_column(node.lexpr, scope)
        bounds = _values(node.rexpr)
        if found is not None and bounds is not None and len(bounds) == 2:
            found[0].compare(found[1], ">=", bounds[0])
            found[0].compare(found[1], "<=", bounds[1])

    def semi_join(self, node: ast.SubLink, scope: _Scope) -> None:
        """``col IN (SELECT other.col ...)``: PostgreSQL plans it as a join of the two columns."""
        if node.subLinkType != SubLinkType.ANY_SUBLINK or _operator(node) not in (None, "="):
            return
        outer = self.column(node.testexpr, scope)
        inner = self.sublink_outputs.get(id(node))
        if outer is not None and inner is not None:
            self.join(outer, inner)

    def join(self, left: _Column, right: _Column) -> None:
        if left[0] is right[0]:
            return  # t.a = t.b compares two columns of the same row: no join
        for entry, column in (left, right):
            if isinstance(entry, _Table):
                entry.joins[column] = None

    # ORDER BY and LIMIT.

    def order(self, node: ast.SelectStmt, sort_nodes: tuple[Any, ...], scope: _Scope) -> None:
        keys = self.sort_keys(node.sortClause or (), sort_nodes, scope)
        if keys and len({id(table) for table, _, _ in keys}) == 1:
            keys[0][0].order_by = tuple(
                dict.fromkeys((column, descending) for _, column, descending in keys)
            )
        limited = _has_limit(node)
        for entry in scope.entries:
            if isinstance(entry, _Table):
                entry.limit = limited and (bool(entry.order_by) or not node.sortClause)

    def sort_keys(
        self, sorts: tuple[Any, ...], sort_nodes: tuple[Any, ...], scope: _Scope
    ) -> list[tuple[_Table, str, bool]]:
        """The sort keys as (table, column, descending); empty unless every one is a column."""
        keys = []
        for sort, target in zip(sorts, sort_nodes, strict=True):
            found = self.table_column(target, scope)
            if found is None or sort.sortby_dir == SortByDir.SORTBY_USING:
                return []  # a position, an expression, or a column of an outer query
            if not any(found[0] is entry for entry in scope.entries):
                return []
            keys.append((found[0], found[1], sort.sortby_dir == SortByDir.SORTBY_DESC))
        return keys


def _sort_node(sort: object, targets: tuple[Any, ...]) -> object:
    """What a sort key sorts by: an output name (ORDER BY "total") stands for its expression."""
    node = sort.node if isinstance(sort, ast.SortBy) else None
    names = _strings(node.fields or ()) if isinstance(node, ast.ColumnRef) else None
    if names is not None and len(names) == 1:
        for target in targets:
            if isinstance(target, ast.ResTarget) and target.name == names[0]:
                return target.val
    return node


def _rows(node: ast.A_Expr) -> list[tuple[Any, Any]]:
    """The pairs of a comparison of two rows of the same length, else []."""
    left, right = node.lexpr, node.rexpr
    if not isinstance(left, ast.RowExpr) or not isinstance(right, ast.RowExpr):
        return []
    lefts, rights = left.args or (), right.args or ()
    return list(zip(lefts, rights, strict=True)) if len(lefts) == len(rights) else []


def _has_limit(node: ast.SelectStmt) -> bool:
    count = node.limitCount
    return count is not None and not (isinstance(count, ast.A_Const) and count.isnull)


def _array_values(node: object) -> list[_Value] | None:
    """``= ANY($1)`` (psycopg's list parameter) or ``= ANY(ARRAY[...])``."""
    while isinstance(node, ast.TypeCast):
        node = node.arg
    if isinstance(node, ast.ParamRef):
        value = _value(node)
        return [value] if value is not None else None
    if isinstance(node, ast.A_ArrayExpr):
        return _values(node.elements or ())
    return None


def _strings(fields: tuple[Any, ...]) -> tuple[str, ...] | None:
    """The names of a column reference's fields, or None when one is not a name (a ``*``)."""
    names = tuple(item.sval for item in fields if isinstance(item, ast.String) and item.sval)
    return names if len(names) == len(fields) else None


def _alias(node: object) -> str | None:
    return node.aliasname if isinstance(node, ast.Alias) else None
