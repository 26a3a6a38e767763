"""The committed SQL Server DDL is exactly what the generator makes from
holocron_scrapy.store.schema."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from holocron_scrapy.store.dburl import DatabaseConfigError
from holocron_scrapy.store.ddl import SQL_FILE, mssql_ddl
from holocron_scrapy.store.schema import build_tables

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED = REPO_ROOT / SQL_FILE

CREATE_TABLE_RE = re.compile(r"^CREATE TABLE (?P<name>\S+) \(\n(?P<body>.*?)\n\);$", re.M | re.S)
CREATE_INDEX_RE = re.compile(r"^    CREATE INDEX (?P<name>\S+) ON (?P<table>\S+) ", re.M)
TABLE_CONSTRAINT_WORDS = ("CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN")


def _unquote(name: str) -> str:
    return name.rsplit(".", maxsplit=1)[-1].strip("[]")


def parse_tables(sql: str) -> dict[str, list[str]]:
    """Table name -> column names, from the script's CREATE TABLE blocks."""
    tables: dict[str, list[str]] = {}
    for match in CREATE_TABLE_RE.finditer(sql):
        columns = []
        for line in match["body"].splitlines():
            word = line.strip().split(" ", 1)[0]
            if word not in TABLE_CONSTRAINT_WORDS:
                columns.append(_unquote(word))
        tables[_unquote(match["name"])] = columns
    return tables


def test_committed_sql_is_generated_from_the_schema() -> None:
    expected = mssql_ddl().encode("utf-8")
    assert COMMITTED.read_bytes() == expected, (
        f"{SQL_FILE} is out of date with holocron_scrapy/store/schema.py; regenerate it with\n"
        f"    python -m holocron_scrapy.store.ddl > {SQL_FILE}"
    )


def test_main_prints_the_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "holocron_scrapy.store.ddl"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert result.stdout == COMMITTED.read_bytes()


def test_script_has_exactly_the_metadata_tables_and_columns() -> None:
    sql = COMMITTED.read_text(encoding="utf-8")
    tables = build_tables("ingest").created_on("mssql")  # the counts: an indexed view
    assert parse_tables(sql) == {
        table.name: [column.name for column in table.columns] for table in tables
    }
    indexes = {(m["name"], _unquote(m["table"])) for m in CREATE_INDEX_RE.finditer(sql)}
    assert indexes == {(str(index.name), table.name) for table in tables for index in table.indexes}


def test_script_is_idempotent_and_batched() -> None:
    sql = mssql_ddl()
    assert "IF SCHEMA_ID(N'ingest') IS NULL EXEC(N'CREATE SCHEMA [ingest]');\nGO\n" in sql
    assert "IF OBJECT_ID(N'[ingest].[work_items]', N'U') IS NULL\nBEGIN\n" in sql
    assert "IF OBJECT_ID(N'[ingest].[IngestRecords]', N'U') IS NULL\nBEGIN\n" in sql
    assert (
        "IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_work_items_claim' "
        "AND object_id = OBJECT_ID(N'[ingest].[work_items]'))\n"
        "    CREATE INDEX ix_work_items_claim ON ingest.work_items "
        "(source_system, source_name, status, priority, id);\nGO\n"
    ) in sql
    creates = sql.count("CREATE TABLE") + sql.count("CREATE INDEX") + sql.count("ALTER TABLE")
    # + SET options, CREATE SCHEMA, and the counts' view and its clustered index
    assert sql.count("\nGO\n") == creates + 4
    assert (
        "IF OBJECT_ID(N'[ingest].[work_item_counts_v]', N'V') IS NULL\n"
        "    EXEC(N'CREATE VIEW [ingest].[work_item_counts_v] WITH SCHEMABINDING AS\n"
    ) in sql
    assert "COUNT_BIG(*) AS items\nFROM [ingest].[work_items]\n" in sql
    assert (
        "    CREATE UNIQUE CLUSTERED INDEX [ix_work_item_counts_v] "
        "ON [ingest].[work_item_counts_v] "
        "(source_system, source_name, resource_type, status);\nGO\n"
    ) in sql
    assert "python -m holocron_scrapy.store.ddl > sql/001_ingest_schema.sql" in sql
    assert "sqlcmd" in sql
    # SQL Server types, not the deprecated or date-only ones.
    assert "DATETIME2" in sql
    assert "NVARCHAR(max)" in sql
    assert "NTEXT" not in sql
    assert " DATETIME " not in sql
    assert "BIGINT NOT NULL IDENTITY" in sql
    # Columns added since the first release are added to tables an older script created.
    assert (
        "IF COL_LENGTH(N'[ingest].[work_items]', N'version') IS NULL\n"
        "    ALTER TABLE [ingest].[work_items] ADD version NVARCHAR(64) NULL;\nGO\n"
    ) in sql


def test_other_schema_and_bad_schema() -> None:
    sql = mssql_ddl("crawl_state")
    assert "CREATE TABLE crawl_state.work_items" in sql
    assert "[ingest]" not in sql
    with pytest.raises(DatabaseConfigError):
        mssql_ddl("x]; DROP TABLE y--")
