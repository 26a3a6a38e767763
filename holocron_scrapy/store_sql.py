"""The store's dialect differences and the small SQL helpers its modules share.

Insert styles, chunked ``IN`` lists, row counts across an executemany, serialized DDL and the
SQLite engine set-up (WAL, busy timeout, ``BEGIN IMMEDIATE``): everything that differs between
SQLite, PostgreSQL and SQL Server lives here, so the statements elsewhere stay one code path.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import sqlalchemy as sa

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from sqlalchemy.engine import URL, Connection, Engine

InsertStyle = Literal["on_conflict", "not_exists"]
_T = TypeVar("_T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
# SQL Server takes at most 2100 parameters per statement: chunk long IN lists well below that.
IN_LIST_CHUNK = 1000
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
    Server takes at most 2,100 parameters a statement); return how many rows changed."""
    return sum(
        conn.execute(stmt.where(column.in_(chunk))).rowcount
        for chunk in chunks(list(values), IN_LIST_CHUNK)
    )


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


def execute_counting(conn: Connection, stmt: sa.Update, params: list[dict[str, Any]]) -> int:
    """executemany ``stmt`` and return the rows it changed.

    Where the driver cannot count rows across an executemany (pyodbc), one execute per row.
    """
    if not params:
        return 0
    if len(params) == 1 or conn.dialect.supports_sane_multi_rowcount:
        return conn.execute(stmt, params).rowcount
    return sum(conn.execute(stmt, param).rowcount for param in params)


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
        cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front (waiting up to busy_timeout): a deferred
    # transaction that reads then writes can fail at once with SQLITE_BUSY under concurrency.
    conn.exec_driver_sql("BEGIN IMMEDIATE")
