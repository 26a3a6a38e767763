"""Every statement the store runs is valid T-SQL (no server needed), with the lock hints.

The store operations run on SQLite with the SQL Server statement path (tests/mssql_operations.py);
each statement is checked by the structural rules of tests/tsql_rules.py, compiled with the mssql
dialect and compared with the committed snapshot. Each rule is shown to flag a known-bad
statement. The PostgreSQL claim is checked for ``FOR UPDATE SKIP LOCKED`` the same way.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql import visitors
from sqlalchemy.sql.ddl import ExecutableDDLElement

from holocron_scrapy.store.schema import build_tables
from tests.mssql_operations import (
    REGENERATE,
    SNAPSHOT,
    Captured,
    Recorder,
    compile_mssql,
    recorded_round,
    snapshot_text,
)
from tests.tsql_rules import RULES, Violation, check, column_keys

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorder]:
    """The statements of a full round of store operations (SQL Server statement path)."""
    with recorded_round(tmp_path_factory.mktemp("mssql-round")) as recorded:
        yield recorded


@pytest.fixture
def captured(recorder: Recorder) -> list[Captured]:
    return recorder.captured


def _postgresql(captured: Captured) -> str:
    statement = captured.statement
    keys = column_keys(statement, captured.keys)
    return str(statement.compile(dialect=postgresql.dialect(), column_keys=keys))  # type: ignore[no-untyped-call]


# -- the rules, on the store's statements -------------------------------------------------------


def test_every_statement_passes_the_tsql_rules(captured: list[Captured]) -> None:
    kinds = {type(c.statement).__name__ for c in captured}
    assert {"CreateTable", "CreateIndex", "Insert", "Update", "Select"} <= kinds
    violations = {
        (c.operation, compile_mssql(c)): check(c.statement, c.params)
        for c in captured
        if not isinstance(c.statement, ExecutableDDLElement)
    }
    assert {key: found for key, found in violations.items() if found} == {}


def test_the_ddl_has_no_triggers_so_output_is_allowed() -> None:
    """``OUTPUT inserted...`` without ``INTO`` (claims, inserts) needs trigger-free tables."""
    scripts = sorted((REPO_ROOT / "sql").glob("*.sql"))
    assert scripts
    for script in scripts:
        assert not re.search(r"\bTRIGGER\b", script.read_text(), re.I), script


# -- each rule can fail ------------------------------------------------------------------------

_T = build_tables(None)
_WI = _T.work_items


def _bad_statements() -> dict[str, tuple[sa.ClauseElement, Any]]:
    wi = _WI
    flag = sa.bindparam("b_keep_cursor", type_=sa.Boolean)
    return {
        # The outcome statement before the fix (Msg 4145).
        "condition_is_a_value": (
            sa.update(wi).values(cursor=sa.case((flag, wi.c.cursor), else_=sa.null())),
            {"b_keep_cursor": True},
        ),
        "predicate_as_value": (sa.select(wi.c.depth > 2), None),
        "limit_without_top": (sa.select(wi.c.id).offset(5), None),
        "on_conflict": (pg_insert(wi).on_conflict_do_nothing(), [{"dedupe_hash": "h"}]),
        "output_with_triggers": (sa.insert(wi).returning(wi.c.id), [{"dedupe_hash": "h"}]),
        "too_many_parameters": (
            sa.insert(wi).values([{"dedupe_hash": str(i), "depth": i} for i in range(1051)]),
            None,
        ),
        "unchunked_in": (sa.select(wi.c.id).where(wi.c.id.in_(range(1001))), None),
        "not_compilable": (sa.select(wi.c.id).offset(5), None),
        # The claim before issue 13: pending-and-due OR expired, which no index range serves.
        "locking_top_off_index": (
            sa.select(wi.c.id)
            .where(
                wi.c.source_system == "s",
                sa.or_(wi.c.status == "pending", wi.c.lease_expires_at < sa.func.now()),
            )
            .order_by(wi.c.priority.desc(), wi.c.id)
            .limit(5)
            .with_for_update(skip_locked=True),
            None,
        ),
    }


@pytest.mark.parametrize("rule", RULES)
def test_each_rule_flags_a_known_bad_statement(rule: str) -> None:
    statement, params = _bad_statements()[rule]
    found = check(statement, params, trigger_tables=frozenset({"work_items"}))
    assert rule in {v.rule for v in found}, found


@pytest.mark.parametrize(
    ("statement", "rule"),
    [
        (sa.select(sa.exists(sa.select(_WI.c.id))), "predicate_as_value"),
        (sa.update(_WI).values(depth=sa.case((_WI.c.depth, 1), else_=2)), "condition_is_a_value"),
        (sqlite_insert(_WI).on_conflict_do_nothing(), "on_conflict"),
        (sa.update(_WI).values(status=sa.func.coalesce(_WI.c.id == 1, 0)), "predicate_as_value"),
    ],
)
def test_more_shapes_sql_server_refuses(statement: sa.ClauseElement, rule: str) -> None:
    assert rule in {v.rule for v in check(statement)}


def test_shapes_sql_server_accepts_pass() -> None:
    wi = _WI
    fine = [
        sa.select(wi.c.id).where(sa.bindparam("b", type_=sa.Boolean)),  # rendered "? = 1"
        sa.select(sa.case((sa.bindparam("b", type_=sa.Integer) == 1, wi.c.cursor))),
        sa.select(wi.c.id).order_by(wi.c.id).limit(5).offset(5),
        sa.select(wi.c.id).where(wi.c.id.in_(range(1000))),
        sa.insert(wi).returning(wi.c.id),
    ]
    for statement in fine:
        assert check(statement) == [], statement
    assert check(sa.insert(wi).returning(wi.c.id), trigger_tables=frozenset({"runs"})) == []
    assert Violation("x", "y") != Violation("x", "z")


# -- the snapshot -------------------------------------------------------------------------------


def test_the_compiled_tsql_snapshot_is_current(captured: list[Captured]) -> None:
    expected = snapshot_text(captured)
    committed = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    assert committed == expected, (
        f"{SNAPSHOT.relative_to(REPO_ROOT)} differs from the statements the store issues: "
        f"review the change, then regenerate it with  .venv/bin/{REGENERATE}"
    )


def test_the_snapshot_names_every_store_operation() -> None:
    text = SNAPSHOT.read_text()
    for operation in (
        "claim",
        "add_work_items",
        "add_work_items (improve_depth)",
        "finish_items",
        "commit_records",
        "renew_leases",
        "release (ids)",
        "counts",
        "reserve_request",
    ):
        assert f"-- == {operation} =" in text, operation


# -- statement shapes ---------------------------------------------------------------------------


def test_claim_compiles_to_top_readpast_output(recorder: Recorder) -> None:
    *sweeps, claim = recorder.of("claim")
    assert len(sweeps) == 2  # expired leases, due retries (store/sweep.py)
    for sweep in sweeps:
        sql = compile_mssql(sweep)
        assert "WHERE work_items.id IN (SELECT TOP __[POSTCOMPILE_param_1] work_items.id" in sql
        assert "WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)" in sql
    sql = compile_mssql(claim)
    assert sql.startswith("UPDATE work_items SET")
    assert "OUTPUT inserted.id" in sql
    assert "WHERE work_items.id IN (SELECT TOP __[POSTCOMPILE_param_1] work_items.id" in sql
    assert "FROM work_items WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)" in sql
    assert "ORDER BY work_items.priority DESC, work_items.id" in sql
    assert "work_items.next_retry_at IS NULL" in sql  # the filtered index ix_work_items_ready
    assert " OR " not in sql
    assert "FOR UPDATE" not in sql
    pg = _postgresql(claim)
    assert "FOR UPDATE SKIP LOCKED" in pg
    assert "RETURNING work_items.id" in pg
    assert "WITH (UPDLOCK" not in pg


def test_add_work_items_compiles_to_not_exists_under_updlock_holdlock(recorder: Recorder) -> None:
    inserts = [
        compile_mssql(c)
        for c in recorder.of("add_work_items")
        if isinstance(c.statement, sa.Insert)
    ]
    assert inserts
    for sql in inserts:
        assert "SELECT" in sql
        assert "WHERE discovered.dedupe_hash IS NOT NULL AND NOT (EXISTS (SELECT 1" in sql
        assert "FROM work_items AS existing WITH (UPDLOCK, HOLDLOCK)" in sql


def test_outcomes_lock_the_leased_rows_first(recorder: Recorder) -> None:
    """The outcome writers read the items still leased to them under an update lock, so that a
    concurrent claim of an expired lease waits (or skips them) until the outcome is written."""
    for operation in ("commit_records", "finish_items"):
        first = recorder.of(operation)[0]
        sql = compile_mssql(first)
        assert sql.startswith("SELECT work_items.id, work_items.attempt, work_items.depth")
        assert "FROM work_items WITH (UPDLOCK, ROWLOCK)" in sql
        assert "work_items.lease_owner = " in sql
        assert "FOR UPDATE" in _postgresql(first)
    budget = [compile_mssql(c) for c in recorder.of("reserve_request")]
    assert sum("source_budget WITH (UPDLOCK, ROWLOCK)" in sql for sql in budget) == 2


def test_every_row_locking_select_takes_work_items_in_id_order(recorder: Recorder) -> None:
    """``FOR UPDATE`` on ``work_items`` always with ``ORDER BY id`` (the claim skips locked rows
    instead of waiting for them, so its priority order cannot deadlock)."""
    locking: list[str] = []
    for captured in recorder.captured:
        if isinstance(captured.statement, ExecutableDDLElement):
            continue
        for element in visitors.iterate(captured.statement):
            lock = getattr(element, "_for_update_arg", None)
            if not isinstance(element, sa.Select) or lock is None or lock.skip_locked:
                continue
            if "work_items" not in {getattr(f, "name", None) for f in element.columns_clause_froms}:
                continue
            order = [str(c) for c in element._order_by_clauses]
            assert order == ["work_items.id"], (captured.operation, order)
            locking.append(captured.operation)
    assert {
        "add_work_items (improve_depth)",
        "commit_records",
        "finish_items",
        "renew_leases",
        "release (ids)",
        "release (source)",
        "release (all)",
        "requeue_ids",
        "requeue_keys",
    } <= set(locking)


def test_sqlite_and_postgresql_users_never_import_pyodbc(tmp_path: Path) -> None:
    code = f"""
import sys
from holocron_scrapy.store.ddl import mssql_ddl
from holocron_scrapy.store.dburl import resolve_db_url
from holocron_scrapy.store.state_store import StateStore
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


# -- set-based writes: round trips per 1,000 rows on the SQL Server path -------------------------

#: Statements sent to SQL Server per 1,000 rows (see Recorder.sql_server_round_trips); before
#: the set-based writes: 1,000, 2,000, 1,001 and 9.
ROUND_TRIPS_PER_1000 = {"discoveries": 6, "depth improvements": 10, "outcomes": 5, "ingest rows": 9}


def _thousand_of_each(tmp_path: Path) -> Recorder:
    from holocron_scrapy.model import NewWorkItem, Outcome, Status
    from tests.mssql_operations import NAME, SYSTEM, ingest_row, sql_server_path_store

    store = sql_server_path_store(tmp_path / "state.db")
    recorder = Recorder(store)
    store.create_tables()
    items = [NewWorkItem(SYSTEM, NAME, "page", f"Page {i}", depth=3) for i in range(1000)]
    with recorder.op("discoveries"):
        assert store.add_work_items(items) == 1000
    closer = [dataclasses_replace(item, depth=1) for item in items]
    with recorder.op("depth improvements"):
        assert store.add_work_items(closer) == 0
    claimed = store.claim(
        source_system=SYSTEM, source_name=NAME, owner="o", run_id="r", limit=1000, lease_seconds=60
    )
    assert len(claimed) == 1000
    with recorder.op("outcomes"):
        applied = store.finish_items(
            [Outcome(c.id, Status.COMPLETED, version=f"v{c.id}") for c in claimed], owner="o"
        )
    assert applied.statuses["completed"] == 1000
    rows = [ingest_row(c.resource_id, "r", c.id) for c in claimed]
    with recorder.op("ingest rows"):
        assert len(store.commit_records(rows, []).ingest_ids) == 1000
    store.dispose()
    return recorder


def dataclasses_replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_sql_server_writes_take_a_few_round_trips_per_thousand_rows(tmp_path: Path) -> None:
    recorder = _thousand_of_each(tmp_path)
    trips = {op: recorder.sql_server_round_trips(op) for op in ROUND_TRIPS_PER_1000}
    assert trips == ROUND_TRIPS_PER_1000
    for captured in recorder.captured:  # the real batch sizes stay within what SQL Server takes
        assert check(captured.statement, captured.params) == [], compile_mssql(captured)[:300]
