"""The set-based writes (VALUES tables, chunked below SQL Server's 2,100 parameters) on every
backend, with batches that cross their chunk boundaries (see tests/conftest.py for the backends:
``sqlite-not-exists`` runs the SQL Server insert path)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from holocron_scrapy.model import IngestRow, NewWorkItem, Outcome, RetryPolicy, Status
from holocron_scrapy.store import records as store_records
from holocron_scrapy.store import sql as store_sql

if TYPE_CHECKING:
    from holocron_scrapy.store.state_store import StateStore

SYSTEM, NAME = "mediawiki", "wookieepedia"
# Chunks of 120 parameters (2,000 in the crawl) and IN lists of 20 (1,000): 55 rows make more
# than one chunk of every set-based write (discoveries: 12 rows a statement, improvements: 24,
# outcomes: 15, ingest rows: 6).
N = 55


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_sql, "MAX_VALUES_PARAMETERS", 120)
    monkeypatch.setattr(store_sql, "IN_LIST_CHUNK", 20)
    monkeypatch.setattr(store_records, "IN_LIST_CHUNK", 20)
    assert store_sql.rows_per_statement(5) < N // 2  # the improved half


def _row(resource_id: str, work_item_id: int, n: int) -> IngestRow:
    return IngestRow(
        SYSTEM,
        NAME,
        "page",
        resource_id,
        f"https://example.org/api.php?title={resource_id}",
        "GET",
        {"n": n},
        200,
        {},
        {"title": resource_id},
        datetime(2024, 1, 1) + timedelta(seconds=n),
        f"{n:064x}",
        "run1",
        work_item_id,
        1,
        duration_ms=None if n % 2 else n,
        error_message="partial" if n % 3 == 0 else None,
    )


def test_large_batches_cross_every_chunk_boundary(store: StateStore) -> None:
    items = [NewWorkItem(SYSTEM, NAME, "page", f"Page {i}", depth=3) for i in range(N)]
    items += [dataclasses.replace(items[0], depth=4)]  # a duplicate: the smaller depth is kept
    assert store.add_work_items(items) == N
    assert store.add_work_items(items) == 0
    # Half reached closer (improved), the rest not (left alone).
    closer = [
        dataclasses.replace(item, depth=1 if i % 2 else 5, discovered_from=i)
        for i, item in enumerate(items[:N])
    ]
    assert store.add_work_items(closer) == 0
    wi = store.tables.work_items
    with store.engine.connect() as conn:
        depths = {r.resource_id: r.depth for r in conn.execute(sa.select(wi))}
        sources = {r.resource_id: r.discovered_from for r in conn.execute(sa.select(wi))}
    assert depths == {f"Page {i}": 1 if i % 2 else 3 for i in range(N)}
    assert sources == {f"Page {i}": i if i % 2 else None for i in range(N)}

    claimed = store.claim(
        source_system=SYSTEM, source_name=NAME, owner="o", run_id="run1", limit=N, lease_seconds=60
    )
    assert len(claimed) == N
    rows = [_row(c.resource_id, c.id, n) for n, c in enumerate(claimed)]
    outcomes = [
        Outcome(c.id, Status.COMPLETED, content_hash=f"{n:064x}", version=f"r{n}")
        for n, c in enumerate(claimed)
    ]
    applied = store.commit_records(rows, outcomes, owner="o")
    assert applied.statuses["completed"] == N
    assert applied.stale == []
    records = store.tables.ingest_records
    with store.engine.connect() as conn:
        stored = {
            row.ingest_id: row
            for row in conn.execute(
                sa.select(
                    records.c.ingest_id,
                    records.c.resource_id,
                    records.c.work_item_id,
                    records.c.hash_sha256,
                    records.c.duration_ms,
                    records.c.error_message,
                )
            )
        }
    # The ids come back in the order of the rows given.
    assert len(applied.ingest_ids) == N == len(set(applied.ingest_ids))
    for ingest_id, row in zip(applied.ingest_ids, rows, strict=True):
        got = stored[ingest_id]
        assert (got.resource_id, got.work_item_id, got.hash_sha256) == (
            row.resource_id,
            row.work_item_id,
            row.hash_sha256,
        )
        assert (got.duration_ms, got.error_message) == (row.duration_ms, row.error_message)
    done = store.work_item(claimed[-1].id)
    assert done is not None
    assert (done["status"], done["version"]) == ("completed", f"r{N - 1}")
    assert done["lease_owner"] is None
    assert done["content_hash"] == f"{N - 1:064x}"
    assert store.counts(source_system=SYSTEM, source_name=NAME)["completed"] == N


def test_large_outcome_batches_keep_a_retried_listing_cursor(store: StateStore) -> None:
    """Failures retried keep their cursor (CASE WHEN next_retry_at IS NOT NULL), those that end
    lose it."""
    store.add_work_items([NewWorkItem(SYSTEM, NAME, "listing", f"L{i}") for i in range(N)])
    claimed = store.claim(
        source_system=SYSTEM, source_name=NAME, owner="o", run_id="run1", limit=N, lease_seconds=60
    )
    wi = store.tables.work_items
    with store.engine.begin() as conn:  # as save_cursor leaves it, for all at once
        conn.execute(sa.update(wi).values(cursor='{"c": ' + sa.cast(wi.c.id, sa.String) + "}"))
    retried, ended = claimed[: N // 2], claimed[N // 2 :]
    applied = store.finish_items(
        [Outcome(c.id, Status.FAILED, "boom") for c in retried], owner="o", retry=RetryPolicy()
    )
    assert applied.retried == len(retried)
    applied = store.finish_items([Outcome(c.id, Status.SKIPPED, "done") for c in ended], owner="o")
    assert applied.statuses["skipped"] == len(ended)
    for c in retried[:3] + retried[-3:]:
        row = store.work_item(c.id)
        assert row is not None
        assert (row["status"], row["cursor"]) == ("pending", f'{{"c": {c.id}}}')
        assert row["next_retry_at"] is not None
        assert row["finished_at"] is None
    for c in ended[:3] + ended[-3:]:
        row = store.work_item(c.id)
        assert row is not None
        assert (row["status"], row["cursor"], row["error_message"]) == ("skipped", None, "done")
        assert row["finished_at"] is not None


def test_a_values_table_has_a_few_shapes_and_its_statements_are_compiled_once(
    sqlite_store: StateStore,
) -> None:
    columns = (("id", sa.BigInteger(), False), ("note", sa.Unicode(10), True))
    tables = {
        n: store_sql.values_table("t", columns, [(i, "x") for i in range(n)]) for n in (5, 7, 8)
    }
    assert len({id(table) for table, _ in tables.values()}) == 1  # all padded to 8 rows
    _, params = tables[5]
    assert params["t_4_id"] == 4
    assert params["t_5_id"] is params["t_7_note"] is None  # padding, joined by no real row
    with pytest.raises(ValueError, match="at most 60"):
        store_sql.values_table("t", columns, [(i, "x") for i in range(61)])

    hits: list[Any] = []

    def after_cursor_execute(*args: Any) -> None:
        context = args[4]
        if "outcome" in args[2]:
            hits.append(context.cache_hit)

    sa.event.listen(sqlite_store.engine, "after_cursor_execute", after_cursor_execute)
    sqlite_store.add_work_items([NewWorkItem(SYSTEM, NAME, "page", f"P{i}") for i in range(9)])
    claimed = sqlite_store.claim(
        source_system=SYSTEM, source_name=NAME, owner="o", run_id="r", limit=9, lease_seconds=60
    )
    for batch in (claimed[:3], claimed[3:7], claimed[7:]):  # 3 and 4 rows: one shape; 2 rows
        sqlite_store.finish_items([Outcome(c.id, Status.COMPLETED) for c in batch], owner="o")
    assert [hit.name for hit in hits] == ["CACHE_MISS", "CACHE_HIT", "CACHE_MISS"]
    assert sqlite_store.counts(source_system=SYSTEM, source_name=NAME)["completed"] == 9


def test_a_values_tables_cache_key_is_its_shape() -> None:
    """The key names the table's shape (name, columns, types, casts, rows), not its 2,000
    parameters: tables of one shape share a compiled statement, any other shape has its own."""
    columns = (("id", sa.BigInteger(), False), ("note", sa.Unicode(10), True))

    def key(name: str, cols: store_sql.Columns, n: int) -> Any:
        table, _ = store_sql.values_table(name, cols, [(i, "x") for i in range(n)])
        stmt = sa.select(table.c.id)
        cache_key = stmt._generate_cache_key()
        assert cache_key is not None
        return cache_key.key

    same = key("t", columns, 5)
    assert key("t", columns, 7) == same  # both padded to 8 rows
    others = [
        key("t", columns, 9),  # 16 rows
        key("u", columns, 5),
        key("t", (columns[0], ("note", sa.Integer(), True)), 5),
        key("t", (columns[0], ("note", sa.Unicode(10), False)), 5),  # sent bare, not CAST
        key("t", (columns[0], ("other", sa.Unicode(10), True)), 5),
    ]
    assert same not in others
    assert len(set(others)) == len(others)
