"""The store's dialect differences and the small SQL helpers its modules share.

Insert styles, chunked ``IN`` lists, row counts across an executemany, serialized DDL and the
SQLite engine set-up (WAL, busy timeout, ``BEGIN IMMEDIATE``): everything that differs between
SQLite, PostgreSQL and SQL Server lives here, so the statements elsewhere stay one code path.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from sqlalchemy.engine import URL, Connection, Engine
    from sqlalchemy.types import TypeEngine

InsertStyle = Literal["on_conflict", "not_exists"]
_T = TypeVar("_T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
# SQLite's page cache per connection (its default is 2 MiB): the claim, the outcomes and the
# sweep touch a few pages of each of work_items' indexes per item, which at a million items no
# longer fit in 2 MiB (the drain then reads them back from the OS for every batch).
SQLITE_CACHE_KIB = 65_536
# SQL Server takes at most 2100 parameters per statement: chunk long IN lists well below that.
IN_LIST_CHUNK = 1000
# The parameters a set-based write puts in one statement's VALUES table (below SQL Server's 2,100,
# leaving room for the statement's own).
MAX_VALUES_PARAMETERS = 2000
# pg_advisory_xact_lock key serializing concurrent create_tables() ("holocron" in ASCII).
_PG_DDL_LOCK_KEY = 0x686F6C6F63726F6E


def utcnow() -> datetime:
    """Now as a naive UTC datetime, the form every timestamp column holds."""
    return datetime.now(UTC).replace(tzinfo=None)


def dedupe_hash(dedupe_key: str) -> str:
    """``work_items.dedupe_hash``: sha256 hex of the UTF-8 dedupe key."""
    return hashlib.sha256(dedupe_key.encode("utf-8")).hexdigest()


def chunks(values: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def update_in(
    conn: Connection, stmt: sa.Update, column: sa.ColumnElement[Any], values: Sequence[Any]
) -> int:
    """Run ``stmt`` for rows whose ``column`` is in ``values``, in chunks of IN lists (SQL
    Server takes at most 2,100 parameters a statement); return how many rows changed.

    The rows are locked in id order (see :func:`locked_ids`) before they are changed.
    """
    table = stmt.table
    assert isinstance(table, sa.Table)
    total = 0
    for chunk in chunks(sorted(values), IN_LIST_CHUNK):
        where = sa.and_(column.in_(chunk), *stmt._where_criteria)
        total += conn.execute(stmt.where(table.c.id.in_(locked_ids(table, where)))).rowcount
    return total


def locked_ids(table: sa.Table, where: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """``SELECT id ... ORDER BY id FOR UPDATE``: the rows a write is about to change, locked in
    ascending id order, the one order of every row-locking statement of the store (two writers
    that lock the same rows in different orders can deadlock). SQL Server takes an update lock
    (``UPDLOCK, ROWLOCK``) as it reads them, by the ascending clustered key; its mssql compiler
    drops an ORDER BY from a subquery without TOP. SQLite locks the whole database."""
    return (
        sa.select(table.c.id)
        .where(where)
        .order_by(table.c.id)
        .with_for_update()
        .with_hint(table, "WITH (UPDLOCK, ROWLOCK)", dialect_name="mssql")
    )


def ids_of(dialect_name: str, column: sa.ColumnElement[Any], ids: sa.Select[Any]) -> Any:
    """``column IN (ids)``; on PostgreSQL ``column = ANY(ARRAY(ids))``, which its planner
    answers by the primary key for just the rows ``ids`` returns (an ``IN`` semi-join may be
    planned as a hash join over a scan of the whole table)."""
    if dialect_name == "postgresql":
        return column == sa.any_(sa.func.array(ids.scalar_subquery()))
    return column.in_(ids)


def rows_per_statement(columns: int) -> int:
    """How many rows of ``columns`` values one statement's VALUES table holds."""
    return max(1, MAX_VALUES_PARAMETERS // columns)


class RowsTable(sa.Values):
    """``(VALUES (?, ?), ...) AS name (a, b)``; on SQLite, which names a VALUES table's columns
    ``column1, column2...`` and takes no column aliases, ``(SELECT column1 AS a, ... FROM
    (VALUES ...)) AS name``. Decided when compiled, so a statement built on SQLite compiles to
    the T-SQL that SQL Server gets.

    Unlike :class:`sqlalchemy.sql.Values` (whose rows are "not cacheable right now") it has a
    cache key: its rows are bound parameters, so a statement of the same shape (rows, types) is
    compiled once, not once a batch (compiling 2,000 parameters costs tens of milliseconds).
    Its key is its shape (name, columns, number of rows), not a walk of its thousands of
    parameters (which cost more than the statement's execution on SQLite): a table is built
    only by :func:`_rows_table`, whose parameters are named after that shape and are never
    given values in the statement (they come with its execution).
    """

    inherit_cache = True
    _cache_key_traversal = [
        ("_shape", InternalTraversal.dp_string),
        ("literal_binds", InternalTraversal.dp_boolean),
    ]
    _shape: str


class SentAs(sa.Cast[Any]):
    """``CAST(? AS type)`` (SQL Server cannot infer a bare NULL's type in a VALUES table), but
    the bare value on SQLite, whose CAST to a date type would turn the text into a number."""

    inherit_cache = True


@compiles(RowsTable, "sqlite")
def _rows_table_on_sqlite(
    element: RowsTable, compiler: Any, asfrom: bool = False, from_linter: Any = None, **kw: Any
) -> str:
    values = compiler.visit_values(element, **kw)
    if not asfrom:
        return str(values)
    if from_linter is not None:
        from_linter.froms[element._de_clone()] = element.name  # type: ignore[no-untyped-call]
    quote = compiler.preparer.quote
    names = ", ".join(
        f"column{i} AS {quote(column.name)}" for i, column in enumerate(element.columns, 1)
    )
    return f"(SELECT {names} FROM ({values})) AS {quote(element.name)}"


@compiles(SentAs, "sqlite")
def _sent_as_on_sqlite(element: SentAs, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clause, **kw))


Columns = tuple[tuple[str, "TypeEngine[Any]", bool], ...]


def values_table(
    name: str, columns: Columns, rows: Sequence[Sequence[Any]]
) -> tuple[sa.Values, dict[str, Any]]:
    """``rows`` (at most :func:`rows_per_statement` of them) as a derived table ``name`` (a
    :class:`RowsTable`) of ``columns``, and the parameters to execute its statement with.

    ``columns`` are ``(name, type, cast)``: a value of a ``cast`` column (one that may be NULL)
    is sent as :class:`SentAs` ``CAST(? AS type)``. The table is of named parameters
    (``{name}_{row}_{column}``), built once per shape: building thousands of bound parameters a
    batch would cost more than the round trips it saves. Its rows are padded to a power of two
    with rows of NULLs, so that a statement has a few shapes, not one per batch size (each
    shape is a compiled statement in SQLAlchemy's cache, and a plan in the server's): the
    statements join on the first column, which is never NULL in a real row.
    """
    cap = rows_per_statement(len(columns))
    if len(rows) > cap:
        raise ValueError(f"{len(rows)} rows of {len(columns)} values: at most {cap}")
    size = min(cap, 1 << max(0, len(rows) - 1).bit_length())
    table = _rows_table(name, columns, size)
    params = {
        f"{name}_{i}_{column}": value
        for i, row in enumerate(rows)
        for (column, _, _), value in zip(columns, row, strict=True)
    }
    params.update(
        {f"{name}_{i}_{column}": None for i in range(len(rows), size) for column, _, _ in columns}
    )
    return table, params


@functools.lru_cache(maxsize=64)
def _rows_table(name: str, columns: Columns, n: int) -> sa.Values:
    def bind(i: int, column: str, type_: TypeEngine[Any], cast: bool) -> Any:
        param = sa.bindparam(f"{name}_{i}_{column}", type_=type_)
        return SentAs(param, _unbounded(type_)) if cast else param

    data = [tuple(bind(i, *column) for column in columns) for i in range(n)]
    table = RowsTable(*(sa.column(c, type_) for c, type_, _ in columns), name=name).data(data)
    table._shape = f"{name}/{n}/" + ",".join(f"{c}:{t!r}:{cast}" for c, t, cast in columns)
    return table


def _unbounded(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    """``type_`` without its length: ``CAST(? AS NVARCHAR(64))`` would cut a longer value
    silently (on SQL Server and PostgreSQL alike), where assigning it to the column refuses it
    (SQL Server's Msg 2628, PostgreSQL's ``value too long``), for the batch split to find."""
    if isinstance(type_, sa.String) and type_.length is not None:
        unbounded = copy.copy(type_)
        unbounded.length = None
        return unbounded
    return type_


def as_datetime(value: Any) -> datetime | None:
    """A MIN() of a timestamp column: a datetime (SQLite may hand back its text form)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


# -- dialect differences ------------------------------------------------------------------------


def default_insert_style(dialect_name: str) -> InsertStyle:
    return "on_conflict" if dialect_name in ("sqlite", "postgresql") else "not_exists"


def dialect_insert(dialect_name: str, table: sa.Table) -> Any:
    """The dialect's own ``insert()`` (the one with ``on_conflict_do_nothing``)."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    if dialect_name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    raise NotImplementedError(f"No INSERT ... ON CONFLICT on {dialect_name}")


def serialize_ddl(conn: Connection) -> None:
    """Make concurrent ``create_tables`` calls (several crawl processes) take turns."""
    name = conn.dialect.name
    if name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_DDL_LOCK_KEY)))
    elif name == "mssql":
        conn.execute(
            sa.text(
                "EXEC sp_getapplock @Resource = N'holocron_scrapy.create_tables', "
                "@LockMode = 'Exclusive', @LockOwner = 'Transaction', @LockTimeout = 60000"
            )
        )
    # SQLite: every transaction begins IMMEDIATE, which already serializes writers.


def sqlite_engine(url: URL) -> Engine:
    """A SQLite engine: file in a created directory, WAL, busy timeout, BEGIN IMMEDIATE."""
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False})
    sa.event.listen(engine, "connect", _sqlite_on_connect)
    sa.event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _connection_record: Any) -> None:
    # Let SQLAlchemy's "begin" event (below) emit BEGIN, not pysqlite.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front (waiting up to busy_timeout): a deferred
    # transaction that reads then writes can fail at once with SQLITE_BUSY under concurrency.
    conn.exec_driver_sql("BEGIN IMMEDIATE")
