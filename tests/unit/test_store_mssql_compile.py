"""Every statement the store runs compiles for SQL Server (no server needed), with the lock hints.

The contract operations run on SQLite with the SQL Server insert path (``insert_style=
"not_exists"``); each statement the store executes is captured and compiled with the mssql
dialect. The PostgreSQL claim is checked for ``FOR UPDATE SKIP LOCKED`` the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, postgresql
from sqlalchemy.sql.ddl import ExecutableDDLElement

from holocron_scrapy.model import IngestRow, NewWorkItem, Outcome, RetryPolicy, Status
from holocron_scrapy.store import StateStore

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Connection

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Captured:
    """A statement the store executed, and the parameter names it was executed with."""

    statement: sa.ClauseElement | ExecutableDDLElement
    keys: list[str]


SYSTEM, NAME = "mediawiki", "wookieepedia"


@pytest.fixture
def captured(tmp_path: Path) -> Iterator[list[Captured]]:
    """The statements of a full round of store operations (SQLite, SQL Server insert path)."""
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    store.insert_style = "not_exists"
    statements: list[Captured] = []

    def before_execute(
        _conn: Connection, clauseelement: Any, multiparams: Any, params: Any, _options: Any
    ) -> None:
        if isinstance(clauseelement, sa.ClauseElement | ExecutableDDLElement):
            first = multiparams[0] if multiparams else params
            statements.append(Captured(clauseelement, list(first or ())))
        else:
            assert clauseelement == "BEGIN IMMEDIATE"

    sa.event.listen(store.engine, "before_execute", before_execute)
    try:
        _exercise(store)
        yield statements
    finally:
        store.dispose()


def _exercise(store: StateStore) -> None:
    store.create_tables()
    run_id = store.start_run(
        source_system=SYSTEM, source_name=NAME, worker_id="w", hostname="h", pid=1
    )
    items = [NewWorkItem(SYSTEM, NAME, "page", f"P{i}", depth=2) for i in range(6)]
    assert store.add_work_items(items) == 6
    assert store.add_work_items([NewWorkItem(SYSTEM, NAME, "page", "P0", depth=0)]) == 0
    claimed = store.claim(
        source_system=SYSTEM, source_name=NAME, owner="o", run_id=run_id, limit=5, lease_seconds=60
    )
    first, second, third, *_ = claimed
    row = IngestRow(
        SYSTEM,
        NAME,
        "page",
        first.resource_id,
        "https://example.org/api.php",
        "GET",
        {},
        200,
        {},
        {"x": 1},
        datetime(2024, 1, 1),
        "0" * 64,
        run_id,
        first.id,
        first.attempt,
    )
    claims = {first.id: 1, second.id: 1}
    assert store.renew_leases(owner="o", claims=claims, lease_seconds=60, run_id=run_id) == 2
    assert [run.run_id for run in store.run_states([run_id])] == [run_id]
    assert store.save_cursor(first.id, "{}", owner="o", lease_seconds=60, attempt=1)
    assert len(store.leased_ids(owner="o")) == 5
    committed = store.commit_records([row], [Outcome(first.id, Status.COMPLETED)], owner="o")
    assert len(committed.ingest_ids) == 1
    retried = store.finish_items(
        [Outcome(second.id, Status.FAILED, "boom")], owner="o", retry=RetryPolicy()
    )
    assert retried.retried == 1
    outlook = store.outlook(source_system=SYSTEM, source_name=NAME, owner="o")
    assert (outlook.scheduled, outlook.in_flight_elsewhere) == (1, 0)
    assert store.release(owner="o", work_item_ids=[third.id]) == 1
    assert store.release(owner="o", source=(SYSTEM, "other")) == 0
    assert store.release(owner="o") == 2
    assert store.requeue(source_system=SYSTEM, source_name=NAME, statuses=[Status.PENDING]) == 5
    assert store.counts(source_system=SYSTEM, source_name=NAME)["pending"] == 5
    assert store.work_item(first.id) is not None
    assert store.reserve_request(source_system=SYSTEM, source_name=NAME, interval_seconds=1) == 0
    assert store.reserve_request(source_system=SYSTEM, source_name=NAME, interval_seconds=1) > 0
    store.finish_run(run_id, status="finished", reason="done", counts={"items_completed": 1})


def _compile(captured: Captured, dialect: sa.Dialect) -> str:
    """Compile as the store executed it (only the columns it gave values for)."""
    statement = captured.statement
    if isinstance(statement, ExecutableDDLElement):
        return str(statement.compile(dialect=dialect))
    return str(statement.compile(dialect=dialect, column_keys=captured.keys))


def _postgresql() -> sa.Dialect:
    return postgresql.dialect()  # type: ignore[no-untyped-call]


def _mssql() -> sa.Dialect:
    return mssql.dialect()  # type: ignore[no-untyped-call]


def test_every_statement_compiles_for_sql_server(captured: list[Captured]) -> None:
    kinds = {type(c.statement).__name__ for c in captured}
    assert {"CreateTable", "CreateIndex", "Insert", "Update", "Select"} <= kinds
    for statement in captured:
        sql = _compile(statement, _mssql())
        assert "ON CONFLICT" not in sql
        assert "LIMIT" not in sql


def test_claim_compiles_to_top_readpast_output(captured: list[Captured]) -> None:
    claims = [sql for sql in (_compile(s, _mssql()) for s in captured) if "READPAST" in sql]
    assert len(claims) == 1
    (sql,) = claims
    assert sql.startswith("UPDATE work_items SET")
    assert "OUTPUT inserted.id" in sql
    assert "WHERE work_items.id IN (SELECT TOP __[POSTCOMPILE_param_1] work_items.id" in sql
    assert "FROM work_items WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)" in sql
    assert "ORDER BY work_items.priority DESC, work_items.id" in sql
    assert "FOR UPDATE" not in sql


def test_add_work_items_compiles_to_not_exists_under_updlock_holdlock(
    captured: list[Captured],
) -> None:
    inserts = [
        sql
        for sql in (_compile(s, _mssql()) for s in captured)
        if sql.startswith("INSERT INTO work_items")
    ]
    assert inserts
    for sql in inserts:
        assert "SELECT" in sql
        assert "WHERE NOT (EXISTS (SELECT 1" in sql
        assert "FROM work_items AS existing WITH (UPDLOCK, HOLDLOCK)" in sql


def test_claim_compiles_to_for_update_skip_locked_on_postgresql(
    captured: list[Captured],
) -> None:
    (claim,) = [
        s
        for s in captured
        if isinstance(s.statement, sa.Update) and "READPAST" in _compile(s, _mssql())
    ]
    sql = _compile(claim, _postgresql())
    assert "FOR UPDATE SKIP LOCKED" in sql
    assert "RETURNING work_items.id" in sql
    assert "WITH (UPDLOCK" not in sql


def test_outcomes_lock_the_leased_rows_first(captured: list[Captured]) -> None:
    """The outcome writers read the items still leased to them under an update lock, so that a
    concurrent claim of an expired lease waits (or skips them) until the outcome is written."""
    selects = [s for s in captured if "lease_owner" in _compile(s, _mssql())]
    locking = [s for s in selects if "UPDLOCK, ROWLOCK)" in _compile(s, _mssql())]
    assert len(locking) == 2  # commit_records and finish_items
    budget = [
        s for s in captured if "source_budget WITH (UPDLOCK, ROWLOCK)" in _compile(s, _mssql())
    ]
    assert len(budget) == 2  # one per reservation
    assert "FOR UPDATE" in _compile(budget[0], _postgresql())
    for statement in locking:
        sql = _compile(statement, _mssql())
        assert sql.startswith("SELECT work_items.id, work_items.attempt, work_items.depth")
        assert "work_items.lease_owner = " in sql
        assert "FOR UPDATE" in _compile(statement, _postgresql())


def test_sqlite_and_postgresql_users_never_import_pyodbc(tmp_path: Path) -> None:
    code = f"""
import sys
from holocron_scrapy.ddl import mssql_ddl
from holocron_scrapy.dburl import resolve_db_url
from holocron_scrapy.store import StateStore
assert resolve_db_url(None, {{}}).get_backend_name() == "sqlite"
store = StateStore.from_url("sqlite:///" + {str(tmp_path / "s.db")!r})
store.create_tables()
store.counts(source_system="a", source_name="b")
store.dispose()
mssql_ddl()
loaded = [m for m in ("pyodbc", "psycopg") if m in sys.modules]
assert not loaded, loaded
StateStore.from_url("postgresql+psycopg://u:p@127.0.0.1:1/db", "ingest").dispose()
assert "psycopg" in sys.modules
assert "pyodbc" not in sys.modules
"""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
