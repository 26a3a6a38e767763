"""SQL Server DDL for the state tables, generated from :mod:`holocron_scrapy.store.schema`.

``python -m holocron_scrapy.store.ddl > sql/001_ingest_schema.sql`` writes the committed script
that a
DBA runs with sqlcmd; a test checks the committed file still equals this output.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from sqlalchemy.dialects.mssql.base import MSDialect
from sqlalchemy.schema import CreateColumn, CreateIndex, CreateTable

from holocron_scrapy.store import counts as store_counts
from holocron_scrapy.store.dburl import DEFAULT_SCHEMA, validate_schema_name
from holocron_scrapy.store.schema import ADDED_COLUMNS, build_tables

if TYPE_CHECKING:
    from sqlalchemy import Index, Table
    from sqlalchemy.engine import Dialect

SQL_FILE = "sql/001_ingest_schema.sql"

_HEADER = """\
-- holocron-scrapy state tables for SQL Server (schema [{schema}]).
--
-- GENERATED FILE, do not edit: regenerate with
--     python -m holocron_scrapy.store.ddl > {sql_file}
-- (tests/unit/test_ddl.py fails when this file and holocron_scrapy/store/schema.py disagree).
--
-- Idempotent: it creates only the schema, tables and indexes that are missing. Run it with
--     sqlcmd -S <host>,<port> -d <database> -U <user> -C -b -i {sql_file}
-- (-C trusts the server certificate, -b stops at the first error; use -G or -E for Entra ID or
-- Windows authentication). The crawler can also create the tables itself (create_tables()).
"""


def _quoted(text: str) -> str:
    """A T-SQL N'...' literal."""
    return "N'" + text.replace("'", "''") + "'"


def _bracketed(schema: str, name: str) -> str:
    return f"[{schema}].[{name}]"


def _compiled(element: CreateTable | CreateIndex, dialect: Dialect) -> str:
    text = str(element.compile(dialect=dialect)).strip()
    return "\n".join(line.rstrip() for line in text.splitlines())


def _create_table(table: Table, schema: str, dialect: Dialect) -> str:
    create = _compiled(CreateTable(table), dialect)
    object_name = _quoted(_bracketed(schema, table.name))
    return f"IF OBJECT_ID({object_name}, N'U') IS NULL\nBEGIN\n{create};\nEND\nGO\n"


def _add_columns(table: Table, schema: str, dialect: Dialect) -> list[str]:
    """``ALTER TABLE ... ADD`` for the columns a table created by an older script lacks."""
    object_name = _quoted(_bracketed(schema, table.name))
    return [
        f"IF COL_LENGTH({object_name}, {_quoted(name)}) IS NULL\n"
        f"    ALTER TABLE {_bracketed(schema, table.name)} "
        f"ADD {CreateColumn(table.c[name]).compile(dialect=dialect)};\nGO\n"
        for name in ADDED_COLUMNS.get(table.name, ())
    ]


def _create_index(index: Index, table: Table, schema: str, dialect: Dialect) -> str:
    create = _compiled(CreateIndex(index), dialect)
    object_name = _quoted(_bracketed(schema, table.name))
    return (
        "IF NOT EXISTS (SELECT 1 FROM sys.indexes "
        f"WHERE name = {_quoted(str(index.name))} AND object_id = OBJECT_ID({object_name}))\n"
        f"    {create};\nGO\n"
    )


def mssql_ddl(schema: str = DEFAULT_SCHEMA) -> str:
    """The idempotent sqlcmd script creating the state tables in ``schema`` on SQL Server."""
    validate_schema_name(schema)
    tables = build_tables(schema)
    dialect = MSDialect()  # type: ignore[no-untyped-call]
    parts = [
        _HEADER.format(schema=schema, sql_file=SQL_FILE),
        "SET ANSI_NULLS ON;\nSET QUOTED_IDENTIFIER ON;\nGO\n",
        f"IF SCHEMA_ID({_quoted(schema)}) IS NULL "
        f"EXEC({_quoted(f'CREATE SCHEMA [{schema}]')});\nGO\n",
    ]
    for table in tables.created_on("mssql"):
        parts.append(_create_table(table, schema, dialect))
        parts.extend(_add_columns(table, schema, dialect))
        parts.extend(
            _create_index(index, table, schema, dialect)
            for index in sorted(table.indexes, key=lambda index: str(index.name))
        )
    parts.extend(_counts_view(schema))
    return "\n".join(parts)


def _counts_view(schema: str) -> list[str]:
    """The indexed view of the queue's counts; building its clustered index counts the rows
    already there (holocron_scrapy.store.counts)."""
    create_view, create_index = store_counts.mssql_ddl(schema)
    view = _quoted(_bracketed(schema, store_counts.VIEW))
    index = _quoted(f"ix_{store_counts.VIEW}")
    return [
        "-- The counts of the queue by source, resource type and status, kept by the engine in\n"
        "-- every statement changing work_items: an indexed view, which leaves the OUTPUT\n"
        "-- clause of the claim and of the insert of new items allowed (store/counts.py).\n"
        f"IF OBJECT_ID({view}, N'V') IS NULL\n    EXEC({_quoted(create_view)});\nGO\n",
        "IF NOT EXISTS (SELECT 1 FROM sys.indexes "
        f"WHERE name = {index} AND object_id = OBJECT_ID({view}))\n    {create_index};\nGO\n",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m holocron_scrapy.store.ddl",
        description="Print the SQL Server DDL of the state tables.",
    )
    parser.add_argument(
        "--schema", default=DEFAULT_SCHEMA, help="schema name (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    sys.stdout.write(mssql_ddl(args.schema))


if __name__ == "__main__":
    main()
