"""The statements of every store operation on the SQL Server statement path, and their snapshot.

A store on SQLite with the SQL Server insert path (``insert_style="not_exists"``) and pyodbc's
missing multi-row rowcount runs a full round of operations; a ``before_execute`` listener
records each statement with the operation that issued it and the parameters it ran with. The
compiled T-SQL of that round is committed in :data:`SNAPSHOT`; regenerate it with

    .venv/bin/python -m tests.mssql_operations > sql/compiled/mssql_store_operations.sql
"""

from __future__ import annotations

import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.sql.ddl import ExecutableDDLElement

from holocron_scrapy.model import IngestRow, NewWorkItem, Outcome, RetryPolicy, Status
from holocron_scrapy.store import counts as store_counts
from holocron_scrapy.store.state_store import StateStore

from .tsql_rules import column_keys, mssql_dialect

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from sqlalchemy.engine import Connection

REPO_ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = REPO_ROOT / "sql" / "compiled" / "mssql_store_operations.sql"
REGENERATE = "python -m tests.mssql_operations > sql/compiled/mssql_store_operations.sql"
SYSTEM, NAME = "mediawiki", "wookieepedia"


@dataclass(frozen=True)
class Captured:
    """A statement the store executed, the operation that issued it, and its parameters."""

    operation: str
    statement: sa.ClauseElement | ExecutableDDLElement
    params: list[Mapping[str, Any]]

    @property
    def keys(self) -> list[str]:
        return list(self.params[0]) if self.params else []


@dataclass
class Recorder:
    """Records what a store executes, labelled with the operation under way."""

    store: StateStore
    captured: list[Captured] = field(default_factory=list)
    operation: str = "setup"

    def __post_init__(self) -> None:
        sa.event.listen(self.store.engine, "before_execute", self._before_execute)

    @contextmanager
    def op(self, name: str) -> Iterator[None]:
        self.operation = name
        try:
            yield
        finally:
            self.operation = "other"

    def of(self, operation: str) -> list[Captured]:
        return [c for c in self.captured if c.operation == operation]

    def _before_execute(
        self, _conn: Connection, element: Any, multiparams: Any, params: Any, _options: Any
    ) -> None:
        if isinstance(element, sa.ClauseElement | ExecutableDDLElement):
            executions = list(multiparams) if multiparams else ([params] if params else [])
            self.captured.append(Captured(self.operation, element, executions))
        else:
            assert element == "BEGIN IMMEDIATE", element

    def sql_server_round_trips(self, operation: str) -> int:
        """The statements ``operation`` sends to SQL Server: pyodbc sends an executemany one row
        at a time; an INSERT of many rows is sent by SQLAlchemy's insertmanyvalues in batches
        of at most 2,099 parameters (and 1,000 rows)."""
        dialect = mssql_dialect()
        total = 0
        for captured in self.of(operation):
            rows = max(1, len(captured.params))
            statement = captured.statement
            if rows > 1 and isinstance(statement, sa.Insert) and statement.select is None:
                keys = column_keys(statement, captured.keys)
                compiled = statement.compile(dialect=dialect, column_keys=keys)
                per_row = len(compiled.positiontup or ())
                batch = min(
                    dialect.insertmanyvalues_page_size,
                    dialect.insertmanyvalues_max_parameters // per_row,
                )
                total += -(-rows // batch)
            else:
                total += rows
        return total


def sql_server_path_store(path: Path) -> StateStore:
    """A SQLite store that takes the SQL Server statement path, with pyodbc's rowcounts."""
    store = StateStore.from_url(f"sqlite:///{path}")
    store.insert_style = "not_exists"
    store.engine.dialect.supports_sane_multi_rowcount = False  # as pyodbc
    return store


def claim_of(run_id: str, limit: int) -> dict[str, Any]:
    """The arguments of a claim of ``limit`` items by the owner ``o``."""
    return {
        "source_system": SYSTEM,
        "source_name": NAME,
        "owner": "o",
        "run_id": run_id,
        "limit": limit,
        "lease_seconds": 60,
    }


def exercise(recorder: Recorder) -> None:
    """One of every store operation, each labelled."""
    store, op = recorder.store, recorder.op
    with op("create_tables"):
        store.create_tables()
    with op("start_run"):
        run_id = store.start_run(
            source_system=SYSTEM, source_name=NAME, worker_id="w", hostname="h", pid=1
        )
    items = [NewWorkItem(SYSTEM, NAME, "page", f"P{i}", depth=2) for i in range(6)]
    with op("add_work_items"):
        assert store.add_work_items(items) == 6
    with op("add_work_items (improve_depth)"):
        assert store.add_work_items([NewWorkItem(SYSTEM, NAME, "page", "P0", depth=0)]) == 0
    with op("claim"):
        claimed = store.claim(**claim_of(run_id, limit=5))
    first, second, third, *_ = claimed
    with op("claim (resumed)"):  # on from the last claim's point, short: the sweep, the head
        assert len(store.claim(**claim_of(run_id, limit=2))) == 1
    with op("renew_leases"):
        claims = {first.id: first.attempt, second.id: second.attempt}
        renewed = store.renew_leases(owner="o", claims=claims, lease_seconds=60, run_id=run_id)
        assert renewed == 2
    with op("run_states"):
        assert [run.run_id for run in store.run_states([run_id])] == [run_id]
    with op("leased_ids"):
        assert len(store.leased_ids(owner="o")) == 6
    with op("commit_records"):
        committed = store.commit_records(
            [ingest_row(first.resource_id, run_id, first.id)],
            [Outcome(first.id, Status.COMPLETED)],
            owner="o",
        )
    assert len(committed.ingest_ids) == 1
    with op("finish_items"):
        retried = store.finish_items(
            [Outcome(second.id, Status.FAILED, "boom")], owner="o", retry=RetryPolicy()
        )
    assert retried.retried == 1
    with op("save_cursor"):
        assert store.save_cursor(
            third.id, '{"c": 1}', owner="o", lease_seconds=60, attempt=third.attempt
        )
    with op("outlook"):
        outlook = store.outlook(source_system=SYSTEM, source_name=NAME, owner="o")
    assert (outlook.scheduled, outlook.in_flight_elsewhere) == (1, 0)
    with op("lease_owners"):
        assert store.lease_owners(source_system=SYSTEM, source_name=NAME) == ["o"]
    with op("release (ids)"):
        assert store.release(owner="o", work_item_ids=[third.id]) == 1
    with op("release (source)"):
        assert store.release(owner="o", source=(SYSTEM, "other")) == 0
    with op("release (all)"):
        assert store.release(owner="o") == 3
    with op("completed_versions"):
        assert (
            len(
                store.completed_versions(
                    source_system=SYSTEM, source_name=NAME, resource_type="page"
                )
            )
            == 1
        )
    with op("requeue_ids"):
        assert store.requeue_ids([first.id]) == 1
    with op("requeue_keys"):
        assert store.requeue_keys([items[1].dedupe_key]) == 0
    with op("requeue"):
        assert store.requeue(source_system=SYSTEM, source_name=NAME, statuses=[Status.PENDING]) == 6
    with op("counts"):
        assert store.counts(source_system=SYSTEM, source_name=NAME)["pending"] == 6
    _read_counts_as_sql_server(recorder)
    with op("work_item"):
        assert store.work_item(first.id) is not None
    with op("reserve_request"):
        assert (
            store.reserve_request(source_system=SYSTEM, source_name=NAME, interval_seconds=1) == 0
        )
        assert store.reserve_request(source_system=SYSTEM, source_name=NAME, interval_seconds=1) > 0
    with op("finish_run"):
        store.finish_run(run_id, status="finished", reason="done", counts={"items_completed": 1})


def _read_counts_as_sql_server(recorder: Recorder) -> None:
    """SQL Server reads the counts from its indexed view, not from the ledger SQLite keeps: the
    statement recorded for ``counts`` is the one the store sends on SQL Server, and the
    ledger's installation by ``create_tables`` (SQLite's, a view's DDL there) is left out."""
    recorder.captured = [
        c
        for c in recorder.captured
        if c.operation != "create_tables" or isinstance(c.statement, ExecutableDDLElement)
    ]
    at = next(i for i, c in enumerate(recorder.captured) if c.operation == "counts")
    sent = recorder.of("counts")
    assert len(sent) == 1, sent
    statement = store_counts.read_statement(recorder.store.tables, "mssql", SYSTEM, NAME)
    recorder.captured[at] = Captured("counts", statement, sent[0].params)


def ingest_row(resource_id: str, run_id: str, work_item_id: int) -> IngestRow:
    return IngestRow(
        SYSTEM,
        NAME,
        "page",
        resource_id,
        "https://example.org/api.php",
        "GET",
        {},
        200,
        {},
        {"x": 1},
        datetime(2024, 1, 1),
        "0" * 64,
        run_id,
        work_item_id,
        1,
    )


@contextmanager
def recorded_round(directory: Path) -> Iterator[Recorder]:
    store = sql_server_path_store(directory / "state.db")
    try:
        recorder = Recorder(store)
        exercise(recorder)
        yield recorder
    finally:
        store.dispose()


def compile_mssql(captured: Captured) -> str:
    """The T-SQL of a captured statement as the store executed it (IN lists unexpanded)."""
    statement = captured.statement
    dialect = mssql_dialect()
    if isinstance(statement, ExecutableDDLElement):
        sql = str(statement.compile(dialect=dialect))
    else:
        keys = column_keys(statement, captured.keys)
        sql = str(statement.compile(dialect=dialect, column_keys=keys))
    return "\n".join(line.rstrip() for line in sql.strip().splitlines())


def snapshot_text(captured: Sequence[Captured]) -> str:
    """One labelled block per operation, its statements in order, DDL left out (see sql/)."""
    out = [
        "-- The T-SQL of every holocron-scrapy store operation, compiled by SQLAlchemy's mssql",
        "-- dialect (pyodbc parameters: ?). GENERATED FILE, do not edit: regenerate with",
        f"--     {REGENERATE}",
        "-- (tests/unit/test_store_mssql_compile.py fails when it differs from the code).",
        "-- Batched operations show one chunk; IN lists show their __[POSTCOMPILE_x] expansion.",
    ]
    operation = None
    for statement in captured:
        if isinstance(statement.statement, ExecutableDDLElement):
            continue
        if statement.operation != operation:
            operation = statement.operation
            out += ["", f"-- == {operation} " + "=" * max(0, 90 - len(operation))]
        out += ["", compile_mssql(statement) + ";"]
    return "\n".join(out) + "\n"


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, recorded_round(Path(directory)) as rec:
        sys.stdout.write(snapshot_text(rec.captured))


if __name__ == "__main__":
    main()
