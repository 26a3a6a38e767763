"""The counts of a source's work items per resource type and status, kept by the database itself
so that reading them costs O(statuses x types), whatever the size of the frontier.

Every change of ``work_items`` (the store's statements, an operator's command, a DBA's manual
``UPDATE`` or ``DELETE``) is counted by the database, per dialect:

* PostgreSQL: statement-level triggers with transition tables append one row per (source,
  type, status) a statement changed to the ledger ``work_item_counts``, its ``delta`` the
  statement's net change (rows whose delta is 0, e.g. an update of lease columns only, are not
  written). Insert-only, so concurrent workers never wait on a counter; :func:`compact` folds a
  source's rows into one per (type, status) once it has more than :data:`COMPACT_ABOVE`.
* SQLite (row-level triggers, one writer at a time): an UPSERT of the one ledger row per
  (source, type, status), so the ledger never needs compacting.
* SQL Server: an indexed view (``work_item_counts_v``: ``COUNT_BIG(*)`` grouped by source, type
  and status), which the engine maintains in the statement that changes ``work_items``. Not a
  trigger: a table with an enabled trigger refuses ``OUTPUT`` without ``INTO`` (error 334),
  which the claim and the insert of new items use.

A count is ``SUM(delta)`` over the ledger rows of its (source, type, status). A database made
before the ledger gets it, its triggers and its initial counts once, in the transaction of
``create_tables`` that first finds the triggers missing, with writers of ``work_items`` blocked
(PostgreSQL: ``SHARE ROW EXCLUSIVE``; SQLite: the transaction is ``BEGIN IMMEDIATE``), so no
change is lost or counted twice. ``TRUNCATE`` fires no trigger: empty the table with ``DELETE``.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from holocron_scrapy.store.schema import Tables

#: a source with more ledger rows than this is compacted by the next read (PostgreSQL)
COMPACT_ABOVE = 1000
VIEW = "work_item_counts_v"  # SQL Server
_KEY = ("source_system", "source_name", "resource_type", "status")
_TRIGGER = "work_item_counts_update"  # the one whose presence says the ledger is installed

Counts = dict[tuple[str, str], int]  # (resource_type, status) -> items


def _name(schema: str | None, name: str, quote: str = '"') -> str:
    close = "]" if quote == "[" else quote
    return name if schema is None else f"{quote}{schema}{close}.{name}"


def _aggregated(sign: str, table: str) -> str:
    return f"SELECT {', '.join(_KEY)}, {sign}count(*) FROM {table} GROUP BY {', '.join(_KEY)}"


def postgresql_ddl(schema: str | None) -> list[str]:
    """The trigger function and its three statement-level triggers on ``work_items``."""
    counts, items = _name(schema, "work_item_counts"), _name(schema, "work_items")
    function = _name(schema, "work_item_counts_apply")
    insert = f"INSERT INTO {counts} ({', '.join(_KEY)}, delta)"
    key = ", ".join(_KEY)
    body = f"""\
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {insert} {_aggregated("", "n")};
    ELSIF TG_OP = 'DELETE' THEN
        {insert} {_aggregated("-", "o")};
    ELSE
        {insert}
        SELECT {key}, sum(delta) FROM (
            SELECT {key}, 1 AS delta FROM n
            UNION ALL
            SELECT {key}, -1 AS delta FROM o
        ) AS changed
        GROUP BY {key}
        HAVING sum(delta) <> 0;
    END IF;
    RETURN NULL;
END
$$"""
    triggers = [
        ("work_item_counts_insert", "INSERT", "NEW TABLE AS n"),
        (_TRIGGER, "UPDATE", "OLD TABLE AS o NEW TABLE AS n"),
        ("work_item_counts_delete", "DELETE", "OLD TABLE AS o"),
    ]
    return [body] + [
        f"CREATE TRIGGER {name} AFTER {event} ON {items} REFERENCING {tables} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        for name, event, tables in triggers
    ]


def _sqlite_upsert(row: str, delta: str) -> str:
    values = ", ".join(f"{row}.{column}" for column in _KEY)
    return (
        f"INSERT INTO work_item_counts ({', '.join(_KEY)}, delta) VALUES ({values}, {delta}) "
        f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET delta = delta + excluded.delta;"
    )


def sqlite_ddl() -> list[str]:
    """The unique key of the UPSERT and the three row-level triggers on ``work_items``."""
    changed = " OR ".join(f"OLD.{column} IS NOT NEW.{column}" for column in _KEY)
    return [
        f"CREATE UNIQUE INDEX uq_work_item_counts_key ON work_item_counts ({', '.join(_KEY)})",
        "CREATE TRIGGER work_item_counts_insert AFTER INSERT ON work_items BEGIN "
        f"{_sqlite_upsert('NEW', '1')} END",
        f"CREATE TRIGGER {_TRIGGER} AFTER UPDATE ON work_items WHEN {changed} BEGIN "
        f"{_sqlite_upsert('OLD', '-1')} {_sqlite_upsert('NEW', '1')} END",
        "CREATE TRIGGER work_item_counts_delete AFTER DELETE ON work_items BEGIN "
        f"{_sqlite_upsert('OLD', '-1')} END",
    ]


def mssql_ddl(schema: str) -> list[str]:
    """The indexed view of the counts (its unique clustered index materializes it)."""
    view = f"[{schema}].[{VIEW}]"
    key = ", ".join(_KEY)
    return [
        f"CREATE VIEW {view} WITH SCHEMABINDING AS\n"
        f"SELECT {key}, COUNT_BIG(*) AS items\nFROM [{schema}].[work_items]\nGROUP BY {key}",
        f"CREATE UNIQUE CLUSTERED INDEX [ix_{VIEW}] ON {view} ({key})",
    ]


def _installed(conn: Connection, tables: Tables) -> bool:
    schema = tables.metadata.schema
    name = conn.dialect.name
    if name == "sqlite":
        query = "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = :name"
        params = {"name": _TRIGGER}
    elif name == "postgresql":
        query = "SELECT 1 FROM pg_trigger WHERE tgname = :name AND tgrelid = to_regclass(:table)"
        params = {"name": _TRIGGER, "table": _name(schema, "work_items")}
    else:
        query = "SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(:view) AND index_id = 1"
        params = {"view": _name(schema, VIEW, "[")}
    return conn.execute(sa.text(query), params).first() is not None


def install(conn: Connection, tables: Tables) -> bool:
    """Create the triggers (SQL Server: the indexed view) and the initial counts if missing, in
    ``conn``'s transaction, writers of ``work_items`` blocked; return whether it did."""
    if _installed(conn, tables):
        return False
    name = conn.dialect.name
    schema = tables.metadata.schema
    if name == "mssql":
        for statement in mssql_ddl(schema or "dbo"):
            conn.exec_driver_sql(statement)  # the index build counts the rows there
        return True
    wi, ledger = tables.work_items, tables.work_item_counts
    if name == "postgresql":
        conn.exec_driver_sql(
            f"LOCK TABLE {_name(schema, 'work_items')} IN SHARE ROW EXCLUSIVE MODE"
        )
    conn.execute(sa.delete(ledger))  # rows written without the triggers mean nothing
    for statement in postgresql_ddl(schema) if name == "postgresql" else sqlite_ddl():
        conn.exec_driver_sql(statement)
    key = [wi.c[column] for column in _KEY]
    initial = sa.select(*key, sa.func.count()).group_by(*key)
    conn.execute(sa.insert(ledger).from_select([*_KEY, "delta"], initial))
    return True


def _source(table: sa.Table, system: str, name: str) -> list[sa.ColumnElement[bool]]:
    return [table.c.source_system == system, table.c.source_name == name]


def view_table(schema: str | None) -> sa.Table:
    """The SQL Server indexed view as a table, to read it."""
    return sa.Table(
        VIEW,
        sa.MetaData(schema=schema),
        *(sa.Column(column, sa.Unicode()) for column in _KEY),
        sa.Column("items", sa.BigInteger()),
    )


def read_statement(tables: Tables, dialect: str, system: str, name: str) -> sa.Select[Any]:
    """(resource_type, status, items, ledger rows) of the source, from its ledger rows (SQL
    Server: from the indexed view, read as such, ``NOEXPAND``)."""
    if dialect == "mssql":
        view = view_table(tables.metadata.schema)
        amount, table = view.c["items"], view
    else:
        table = tables.work_item_counts
        amount = table.c.delta
    stmt = (
        sa.select(table.c.resource_type, table.c.status, sa.func.sum(amount), sa.func.count())
        .where(*_source(table, system, name))
        .group_by(table.c.resource_type, table.c.status)
    )
    return stmt.with_hint(table, "WITH (NOEXPAND)", "mssql")


def read(conn: Connection, tables: Tables, system: str, name: str) -> tuple[Counts, int]:
    """The source's items per (resource_type, status), none of 0, and its ledger rows."""
    counts: Counts = {}
    rows = 0
    stmt = read_statement(tables, conn.dialect.name, system, name)
    for resource_type, status, items, ledger_rows in conn.execute(stmt):
        rows += int(ledger_rows)
        if int(items):
            counts[(resource_type, status)] = int(items)
    return counts, rows


def needs_compaction(dialect: str, rows: int) -> bool:
    return dialect == "postgresql" and rows > COMPACT_ABOVE


def compact(conn: Connection, tables: Tables, system: str, name: str) -> int:
    """Fold the source's ledger rows into one per (type, status) with a non-zero count: sums
    exactly the rows this statement deleted (``DELETE ... RETURNING``), then inserts the sums;
    return how many rows it deleted. Rows another compaction holds are skipped (``SKIP
    LOCKED``: compactions never wait on each other), rows that writers append meanwhile are
    deleted and summed here or left for the next compaction: never lost, never counted twice."""
    ledger = tables.work_item_counts
    mine = (
        sa.select(ledger.c.id)
        .where(*_source(ledger, system, name))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    deleted = conn.execute(
        sa.delete(ledger)
        .where(ledger.c.id.in_(mine))
        .returning(ledger.c.resource_type, ledger.c.status, ledger.c.delta)
    ).all()
    sums: Counter[tuple[str, str]] = Counter()
    for resource_type, status, delta in deleted:
        sums[(resource_type, status)] += int(delta)
    rows = [
        {
            "source_system": system,
            "source_name": name,
            "resource_type": kind,
            "status": status,
            "delta": delta,
        }
        for (kind, status), delta in sorted(sums.items())
        if delta
    ]
    if rows:
        conn.execute(sa.insert(ledger), rows)
    return len(deleted)
