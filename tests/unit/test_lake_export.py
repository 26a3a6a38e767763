"""``lake_export``: IngestRecords as Hive-partitioned Parquet, read back with DuckDB, exported
incrementally (a watermark and the gaps of transactions still open), exactly once after a crash."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from holocron_scrapy.lake.export import STATE_FILE, ParquetExport
from holocron_scrapy.model import IngestRow
from holocron_scrapy.store.records import ingest_params

if TYPE_CHECKING:
    from pathlib import Path

    from holocron_scrapy.store.state_store import StateStore

SYSTEM, NAME = "mediawiki", "wookieepedia"
PAYLOAD = '{"pageid": N, "big": 12345678901234567890.12345, "title": "Yoda \\u00e9"}'


def _row(run_id: str, n: int, *, resource_type: str = "page", day: int = 1) -> IngestRow:
    return IngestRow(
        SYSTEM,
        NAME,
        resource_type,
        f"Title {n}",
        f"https://example.org/api.php?page={n}",
        "GET",
        {"Accept": "application/json"},
        200,
        {"Content-Type": "application/json"},
        None,
        datetime(2026, 12, day, 10, 30, n % 60),
        f"{n:064x}",
        run_id,
        None,
        1,
        duration_ms=n,
        payload_json=PAYLOAD.replace("N", str(n)),
    )


def _insert(store: StateStore, rows: list[IngestRow], conn: sa.Connection | None = None) -> None:
    statement = sa.insert(store.tables.ingest_records)
    if conn is not None:
        conn.execute(statement, [ingest_params(r) for r in rows])
        return
    with store.engine.begin() as own:
        own.execute(statement, [ingest_params(r) for r in rows])


def _export(store: StateStore, out: Path, **kwargs: Any) -> Any:
    return ParquetExport(store.engine, store.tables, out, NAME, **kwargs).run()


def _read(out: Path) -> list[dict[str, Any]]:
    query = (
        "SELECT * FROM read_parquet(?, hive_partitioning = true, hive_types_autocast = false) "
        "ORDER BY ingest_id"
    )
    con = duckdb.connect()
    try:
        cursor = con.execute(query, [str(out / "**" / "*.parquet")])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    finally:
        con.close()


def _run(store: StateStore) -> str:
    return store.start_run(
        source_system=SYSTEM, source_name=NAME, worker_id="w", hostname="h", pid=1
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_on(backend: str, tmp_path: Path) -> Any:
    from tests.conftest import open_test_store

    with open_test_store(backend, tmp_path) as opened:
        yield opened


def test_export_is_partitioned_readable_by_duckdb_and_exact(store_on: StateStore, tmp_path: Path):
    run_id = _run(store_on)
    rows = [_row(run_id, n, day=1 + n % 2) for n in range(1, 41)]
    rows += [_row(run_id, n, resource_type="html") for n in range(41, 46)]
    _insert(store_on, rows)
    out = tmp_path / "parquet"
    result = _export(store_on, out, row_group_rows=8)
    assert result.rows == 45
    read = _read(out)
    with store_on.engine.connect() as conn:
        table = store_on.tables.ingest_records
        in_db = conn.execute(sa.select(table).order_by(table.c.ingest_id)).mappings().all()
    assert [r["ingest_id"] for r in read] == [r["ingest_id"] for r in in_db]
    for got, want in zip(read, in_db, strict=True):
        assert got["payload"] == want["payload"]  # the JSON text, byte for byte
        assert got["resource_type"] == want["resource_type"]
        assert got["source_name"] == NAME
        assert got["fetch_date"] == want["fetched_at_utc"].date().isoformat()
        assert got["fetched_at_utc"].replace(tzinfo=None) == want["fetched_at_utc"]
        assert got["hash_sha256"] == want["hash_sha256"]
    assert "12345678901234567890.12345" in read[0]["payload"]
    partitions = {p.parent.relative_to(out).as_posix() for p in out.rglob("*.parquet")}
    assert partitions == {
        f"source_name={NAME}/resource_type=page/fetch_date=2026-12-01",
        f"source_name={NAME}/resource_type=page/fetch_date=2026-12-02",
        f"source_name={NAME}/resource_type=html/fetch_date=2026-12-01",
    }
    # Three partitions, one file each (far below the file size): not one file per record.
    assert len(list(out.rglob("*.parquet"))) == 3


def test_second_export_writes_only_new_records(store_on: StateStore, tmp_path: Path):
    run_id = _run(store_on)
    _insert(store_on, [_row(run_id, n) for n in range(1, 11)])
    out = tmp_path / "parquet"
    assert _export(store_on, out).rows == 10
    assert _export(store_on, out).rows == 0  # nothing new
    _insert(store_on, [_row(run_id, n) for n in range(11, 14)])
    again = _export(store_on, out)
    assert again.rows == 3
    assert len(_read(out)) == 13
    assert [r["resource_id"] for r in _read(out)][-3:] == ["Title 11", "Title 12", "Title 13"]


@pytest.mark.postgres
def test_a_transaction_open_during_the_export_is_exported_the_next_time(tmp_path: Path):
    from tests.conftest import open_test_store

    with open_test_store("postgresql", tmp_path) as store:
        run_id = _run(store)
        _insert(store, [_row(run_id, 1)])
        out = tmp_path / "parquet"
        with store.engine.connect() as slow:
            slow_tx = slow.begin()
            _insert(store, [_row(run_id, 2)], conn=slow)  # takes an id, not committed yet
            _insert(store, [_row(run_id, 3)])  # a later id, committed
            first = _export(store, out)
            assert first.rows == 2
            assert first.gaps == 1
            slow_tx.commit()
        second = _export(store, out)
        assert second.rows == 1
        assert second.gaps == 0
        assert [r["resource_id"] for r in _read(out)] == ["Title 1", "Title 2", "Title 3"]


def test_an_export_killed_before_its_renames_is_completed_not_repeated(
    sqlite_store: StateStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    run_id = _run(sqlite_store)
    _insert(sqlite_store, [_row(run_id, n) for n in range(1, 6)])
    out = tmp_path / "parquet"

    def killed(self: ParquetExport, state: dict[str, Any]) -> None:
        raise KeyboardInterrupt  # the process dies after the state, before the renames

    with monkeypatch.context() as patch:
        patch.setattr(ParquetExport, "_finish_renames", killed)
        with pytest.raises(KeyboardInterrupt):
            _export(sqlite_store, out)
    assert list(out.rglob("*.parquet")) == []  # only hidden temporary parts so far
    state = json.loads((out / f"source_name={NAME}" / STATE_FILE).read_text())
    assert len(state["pending_renames"]) == 1
    assert _export(sqlite_store, out).rows == 0  # the interrupted export is completed instead
    assert [r["resource_id"] for r in _read(out)] == [f"Title {n}" for n in range(1, 6)]
    assert list(out.rglob("*.tmp")) == []


def test_an_export_killed_while_writing_leaves_nothing_and_is_redone(
    sqlite_store: StateStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    run_id = _run(sqlite_store)
    _insert(sqlite_store, [_row(run_id, n) for n in range(1, 6)])
    out = tmp_path / "parquet"

    def killed(self: ParquetExport, result: Any, gaps: Any) -> None:
        raise KeyboardInterrupt  # the process dies before its state is written

    with monkeypatch.context() as patch:
        patch.setattr(ParquetExport, "_commit", killed)
        with pytest.raises(KeyboardInterrupt):
            _export(sqlite_store, out)
    assert list(out.rglob("*.tmp")), "the dead export left its temporary parts"
    assert _export(sqlite_store, out).rows == 5
    assert len(_read(out)) == 5
    assert list(out.rglob("*.tmp")) == []


def test_files_roll_at_the_target_size(sqlite_store: StateStore, tmp_path: Path):
    run_id = _run(sqlite_store)
    _insert(sqlite_store, [_row(run_id, n) for n in range(1, 201)])
    out = tmp_path / "parquet"
    result = _export(sqlite_store, out, row_group_rows=20, target_file_bytes=1)
    assert len(result.files) == 10
    assert len(_read(out)) == 200


def test_buffered_rows_are_bounded_across_partitions(sqlite_store: StateStore, tmp_path: Path):
    run_id = _run(sqlite_store)
    _insert(sqlite_store, [_row(run_id, n, day=1 + n % 5) for n in range(1, 51)])
    out = tmp_path / "parquet"
    # A budget below one row: every row is written as soon as it is read.
    _export(sqlite_store, out, row_group_rows=1000, buffer_bytes=1)
    groups = sum(pq.ParquetFile(p).num_row_groups for p in out.rglob("*.parquet"))
    assert groups == 50
    assert len(_read(out)) == 50
