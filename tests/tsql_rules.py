"""What SQL Server refuses, checked on a statement's SQLAlchemy expression tree (no server needed).

:func:`check` walks a statement (``sqlalchemy.sql.visitors.iterate``) and returns a
:class:`Violation` per rule it breaks:

``condition_is_a_value``
    T-SQL has no boolean values: ``CASE WHEN <bind or column>`` is Msg 4145. SQLAlchemy's mssql
    compiler rewrites a Boolean value in WHERE, AND/OR and NOT to ``= 1``, not in CASE WHEN.
``predicate_as_value``
    A comparison (``a = b``, ``EXISTS``, ``AND``...) where a value goes: a SELECT column, a SET
    or VALUES value, a CASE result, a function argument.
``limit_without_top``
    A LIMIT/OFFSET that the mssql dialect does not turn into ``TOP`` or ``OFFSET ... FETCH``
    (OFFSET needs an ORDER BY), or ``LIMIT`` in the compiled text.
``on_conflict``
    A PostgreSQL or SQLite ``INSERT`` construct (``ON CONFLICT``): no such clause in T-SQL.
``output_with_triggers``
    ``RETURNING`` becomes ``OUTPUT inserted...`` without ``INTO``, which SQL Server refuses on a
    table with an enabled trigger (Msg 334); or ``RETURNING`` in the compiled text.
``too_many_parameters``
    More than 2,100 parameters in one statement once compiled for mssql, IN lists expanded.
``unchunked_in``
    An ``IN`` list (expanding bind or literal list) longer than the chunk limit.
``not_compilable``
    The mssql dialect refuses to compile it at all.
``locking_top_off_index``
    A row-locking ``SELECT TOP (n)`` (``FOR UPDATE`` / ``WITH (UPDLOCK ...)``: the claim, the
    sweep) that no index serves in its exact order: SQL Server would read and sort every row
    the WHERE admits under update locks (and escalate to a table lock past ~5,000). Served: an
    index whose leading columns the WHERE binds by equality, whose next columns are the ORDER
    BY's (same directions), and whose filter (``mssql_where``) the WHERE states; no ``OR`` in
    the WHERE (a seek takes one range).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mssql
from sqlalchemy.dialects.postgresql.dml import Insert as PgInsert
from sqlalchemy.dialects.sqlite.dml import Insert as SqliteInsert
from sqlalchemy.sql import elements, operators, visitors
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.sql.dml import Insert, UpdateBase, ValuesBase
from sqlalchemy.sql.functions import FunctionElement

from holocron_scrapy.store.sql import IN_LIST_CHUNK

MSSQL_MAX_PARAMETERS = 2100

RULES = (
    "condition_is_a_value",
    "predicate_as_value",
    "limit_without_top",
    "on_conflict",
    "output_with_triggers",
    "too_many_parameters",
    "unchunked_in",
    "not_compilable",
    "locking_top_off_index",
)


@dataclass(frozen=True)
class Violation:
    rule: str
    detail: str


def mssql_dialect() -> sa.Dialect:
    """The mssql dialect with pyodbc's positional ``?`` parameters."""
    return mssql.dialect(paramstyle="qmark")  # type: ignore[no-untyped-call]


def column_keys(statement: Any, keys: Sequence[str]) -> list[str] | None:
    """The execution's parameter names that are columns of an INSERT's or UPDATE's table (the
    ``column_keys`` to compile it as executed); others name bound parameters."""
    if not isinstance(statement, ValuesBase | sa.Update):
        return None
    columns = statement.table.c
    return [key for key in keys if key in columns]


def check(
    statement: sa.ClauseElement,
    params: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
    *,
    trigger_tables: frozenset[str] = frozenset(),
    in_list_limit: int = IN_LIST_CHUNK,
) -> list[Violation]:
    """The rules ``statement`` breaks, executed with ``params`` (one execution or many)."""
    if isinstance(statement, ExecutableDDLElement):
        return []  # the DDL is checked against sql/ (tests/unit/test_ddl.py)
    executions: list[Mapping[str, Any]] = (
        [params] if isinstance(params, Mapping) else list(params or ()) or [{}]
    )
    found: list[Violation] = []
    for element in visitors.iterate(statement):
        found.extend(_element_rules(element, executions[0], in_list_limit))
    found.extend(_statement_rules(statement, executions, trigger_tables))
    return sorted(set(found), key=lambda v: (v.rule, v.detail))


# -- positions in the tree ----------------------------------------------------------------------


def _unwrap(element: Any) -> Any:
    while isinstance(element, elements.Label | elements.Grouping):
        element = element.element
    return element


def _is_predicate(element: Any) -> bool:
    """A truth-valued expression T-SQL accepts where a condition goes."""
    element = _unwrap(element)
    if isinstance(element, elements.BinaryExpression):
        return operators.is_comparison(element.operator)
    if isinstance(element, elements.UnaryExpression):  # EXISTS, AsBoolean (x = 1), NOT
        return isinstance(element, sa.Exists | elements.AsBoolean) or (
            element.operator is operators.inv
        )
    return isinstance(element, elements.BooleanClauseList | elements.True_ | elements.False_)


def _values_of(element: Any) -> list[Any]:
    """The sub-expressions of ``element`` that T-SQL evaluates as values."""
    values: list[Any] = []
    if isinstance(element, sa.Select):
        values.extend(element._raw_columns)
    elif isinstance(element, ValuesBase | sa.Update):
        values.extend(element._values.values() if element._values else ())
        for rows in getattr(element, "_multi_values", ()):
            for row in rows:
                values.extend(row.values() if isinstance(row, Mapping) else row)
    elif isinstance(element, sa.Values):
        for rows in element._data:
            for row in rows:
                values.extend(row)
    elif isinstance(element, elements.Case):
        values.extend(result for _, result in element.whens)
        values.append(element.else_)
    elif isinstance(element, FunctionElement):
        values.extend(element.clauses)
    elif isinstance(element, elements.Cast):
        values.append(element.clause)
    return [value for value in values if isinstance(value, sa.ClauseElement)]


def _element_rules(element: Any, params: Mapping[str, Any], limit: int) -> list[Violation]:
    found: list[Violation] = []
    if isinstance(element, elements.Case):
        for condition, _ in element.whens:
            if not _is_predicate(condition):
                found.append(Violation("condition_is_a_value", f"CASE WHEN {_text(condition)}"))
    for value in _values_of(element):
        if _is_predicate(value):
            where = type(element).__name__
            found.append(Violation("predicate_as_value", f"{_text(value)} as a value in {where}"))
    if isinstance(element, sa.Select):
        found.extend(_limit_rules(element))
        found.extend(_locking_top_rules(element))
    if isinstance(element, elements.BinaryExpression) and element.operator in (
        operators.in_op,
        operators.not_in_op,
    ):
        size = _in_list_size(element.right, params)
        if size > limit:
            found.append(Violation("unchunked_in", f"IN list of {size} values (limit {limit})"))
    return found


def _limit_rules(select: sa.Select[Any]) -> list[Violation]:
    if select._limit_clause is None and select._offset_clause is None:
        return []
    if select._offset_clause is not None and not select._order_by_clauses:
        return [Violation("limit_without_top", "OFFSET without ORDER BY")]
    sql = str(select.compile(dialect=mssql_dialect()))
    if not re.search(r"\bTOP\b|\bFETCH\b|\bROW_NUMBER\(\)", sql):
        return [Violation("limit_without_top", f"no TOP/FETCH/ROW_NUMBER in {sql[:80]!r}")]
    return []


def _conjuncts(criteria: Sequence[Any]) -> list[Any]:
    """The AND-ed terms of a WHERE (nested ANDs flattened)."""
    terms: list[Any] = []
    for criterion in criteria:
        term = _unwrap(criterion)
        if isinstance(term, elements.BooleanClauseList) and term.operator is operators.and_:
            terms.extend(_conjuncts(term.clauses))
        else:
            terms.append(term)
    return terms


def _key(element: Any) -> tuple[str, bool] | None:
    """``(column name, descending)`` of an index or ORDER BY element."""
    element = _unwrap(element)
    descending = False
    if isinstance(element, elements.UnaryExpression) and element.modifier in (
        operators.desc_op,
        operators.asc_op,
    ):
        descending = element.modifier is operators.desc_op
        element = element.element
    name = getattr(element, "name", None)
    return None if name is None else (str(name), descending)


def _equalities(terms: Sequence[Any]) -> set[str]:
    """The columns a WHERE binds to one value (``= value``, ``IS NULL``)."""
    bound: set[str] = set()
    for term in terms:
        if (
            isinstance(term, elements.BinaryExpression)
            and term.operator in (operators.eq, operators.is_)
            and isinstance(term.left, sa.Column)
            and not isinstance(term.right, sa.Column)
        ):
            bound.add(term.left.name)
    return bound


def _serves(index: sa.Index, order: list[tuple[str, bool]], terms: list[Any]) -> bool:
    keys = [_key(expression) for expression in index.expressions]
    equal = _equalities(terms)
    start = 0
    while start < len(keys) and keys[start] is not None and keys[start][0] in equal:  # type: ignore[index]
        if order and keys[start] == order[0]:
            break
        start += 1
    if keys[start : start + len(order)] != order:
        return False
    condition = index.dialect_options["mssql"].get("where")
    if condition is None:
        return True
    stated = {_text(term) for term in terms}
    return all(_text(part) in stated for part in _conjuncts([condition]))


def _locking_top_rules(select: sa.Select[Any]) -> list[Violation]:
    if select._limit_clause is None:
        return []
    hints = " ".join(str(hint) for hint in select._hints.values())
    if select._for_update_arg is None and "UPDLOCK" not in hints:
        return []
    terms = _conjuncts(select._where_criteria)
    sql = _text(select)[:80]
    if any(
        isinstance(term, elements.BooleanClauseList) and term.operator is operators.or_
        for term in terms
    ):
        return [Violation("locking_top_off_index", f"OR in the WHERE of {sql!r}")]
    order = [_key(clause) for clause in select._order_by_clauses]
    if None in order:
        return [Violation("locking_top_off_index", f"ORDER BY an expression in {sql!r}")]
    tables = [f for f in select.columns_clause_froms if isinstance(f, sa.Table)]
    if not any(
        _serves(index, order, terms)  # type: ignore[arg-type]
        for table in tables
        for index in table.indexes
    ):
        return [Violation("locking_top_off_index", f"no index in the order of {sql!r}")]
    return []


def _in_list_size(right: Any, params: Mapping[str, Any]) -> int:
    right = _unwrap(right)
    if isinstance(right, elements.BindParameter) and right.expanding:
        value = params.get(right.key, right.value)
        return len(value) if isinstance(value, Sequence) and not isinstance(value, str) else 0
    if isinstance(right, elements.ClauseList | elements.Tuple):
        return len(right.clauses)
    return 0


# -- whole statements ---------------------------------------------------------------------------


def _statement_rules(
    statement: sa.ClauseElement,
    executions: Sequence[Mapping[str, Any]],
    trigger_tables: frozenset[str],
) -> list[Violation]:
    found: list[Violation] = []
    if isinstance(statement, PgInsert | SqliteInsert):
        found.append(Violation("on_conflict", f"a {statement.__module__} insert construct"))
    if isinstance(statement, UpdateBase) and statement._returning:
        table = getattr(statement.table, "name", None)
        if table in trigger_tables:
            found.append(
                Violation("output_with_triggers", f"OUTPUT on {table}, which has triggers")
            )
    if isinstance(statement, PgInsert | SqliteInsert):
        return found  # the mssql compiler cannot compile those
    keys = sorted({key for execution in executions for key in execution})
    try:
        compiled = statement.compile(
            dialect=mssql_dialect(), column_keys=column_keys(statement, keys)
        )
    except sa.exc.CompileError as exc:
        return [*found, Violation("not_compilable", str(exc))]
    sql = str(compiled)
    for word in ("LIMIT", "RETURNING", "ON CONFLICT"):
        if re.search(rf"\b{word}\b", sql):
            rule = {"LIMIT": "limit_without_top", "RETURNING": "output_with_triggers"}.get(
                word, "on_conflict"
            )
            found.append(Violation(rule, f"{word} in the compiled T-SQL"))
    n = _parameter_count(statement, compiled, executions)
    if n > MSSQL_MAX_PARAMETERS:
        found.append(Violation("too_many_parameters", f"{n} parameters (SQL Server takes 2100)"))
    return found


def _parameter_count(
    statement: sa.ClauseElement, compiled: Any, executions: Sequence[Mapping[str, Any]]
) -> int:
    """Parameters of one round trip, IN lists expanded: an INSERT executed with many rows is
    batched by SQLAlchemy's insertmanyvalues under the dialect's limit; anything else sends
    each row's."""
    per_row = 0
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        value = executions[0].get(name, bind.value) if bind.expanding else None
        per_row += len(value) if isinstance(value, Sequence) and not isinstance(value, str) else 1
    if isinstance(statement, Insert) and len(executions) > 1 and statement.select is None:
        return min(per_row * len(executions), mssql_dialect().insertmanyvalues_max_parameters)
    return per_row


def _text(element: Any) -> str:
    try:
        return str(element.compile(dialect=mssql_dialect()))
    except sa.exc.CompileError:  # pragma: no cover - a fragment without its statement
        return type(element).__name__
