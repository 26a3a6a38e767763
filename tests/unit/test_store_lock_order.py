"""Every row-locking write takes its rows in one order, ascending id (PostgreSQL).

Two writers that lock the same rows in different orders can deadlock. Each test holds one row's
lock in a second connection, runs a store write over ten rows in a thread until it waits for that
row, and reads which rows are locked then (``FOR UPDATE SKIP LOCKED`` from a third connection):
in id order, exactly the rows before the held one. The items are inserted one at a time in
descending dedupe-hash order, so that hash order (what ``improve_depth`` used to follow) is the
reverse of id order.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from holocron_scrapy.model import NewWorkItem, Outcome, Status
from holocron_scrapy.store.sql import dedupe_hash, utcnow
from tests.conftest import open_test_store

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from holocron_scrapy.store.state_store import StateStore

pytestmark = pytest.mark.postgres

SYSTEM, NAME = "mediawiki", "wookieepedia"
HELD = 4  # the index (in id order) of the row the other connection holds


@pytest.fixture
def pg_store(tmp_path: Path) -> Iterator[StateStore]:
    with open_test_store("postgresql", tmp_path) as store:
        yield store


def _items(store: StateStore, depth: int) -> tuple[list[NewWorkItem], list[int]]:
    items = [NewWorkItem(SYSTEM, NAME, "page", f"P{i}", depth=depth) for i in range(10)]
    items.sort(key=lambda item: dedupe_hash(item.dedupe_key), reverse=True)
    for item in items:  # one at a time: ids ascend as the hashes descend
        assert store.add_work_items([item]) == 1
    wi = store.tables.work_items
    with store.engine.connect() as conn:
        ids = {row.dedupe_hash: int(row.id) for row in conn.execute(sa.select(wi))}
    return items, [ids[dedupe_hash(item.dedupe_key)] for item in items]


def _claim_all(store: StateStore) -> None:
    claimed = store.claim(
        source_system=SYSTEM, source_name=NAME, owner="o", run_id="r", limit=10, lease_seconds=60
    )
    assert len(claimed) == 10


def _locked_rows_while_waiting(store: StateStore, held: int, write: Callable[[], Any]) -> set[int]:
    """The rows locked while ``write`` waits for ``held``, which another connection locks."""
    wi = store.tables.work_items
    engine = store.engine
    with engine.connect() as holder, ThreadPoolExecutor(1) as pool:
        holder.execute(sa.select(wi.c.id).where(wi.c.id == held).with_for_update())
        holder_pid = holder.execute(sa.select(sa.func.pg_backend_pid())).scalar_one()
        future = pool.submit(write)
        try:
            _wait_until_blocked_by(engine, holder_pid, future)
            with engine.connect() as observer:
                every = set(observer.scalars(sa.select(wi.c.id)))
                free = set(observer.scalars(sa.select(wi.c.id).with_for_update(skip_locked=True)))
                observer.rollback()
        finally:
            holder.rollback()
        future.result(timeout=30)
    return every - free


def _wait_until_blocked_by(engine: sa.Engine, pid: int, future: Any) -> None:
    query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    deadline = time.monotonic() + 30
    with engine.connect() as conn:
        while not conn.execute(query, {"pid": pid}).scalar_one():
            assert not future.done(), future.result()
            assert time.monotonic() < deadline, "the write never waited for the held row"
            conn.rollback()
            time.sleep(0.01)


def test_improve_depth_locks_in_id_order(pg_store: StateStore) -> None:
    items, ids = _items(pg_store, depth=5)
    closer = [NewWorkItem(SYSTEM, NAME, "page", item.resource_id, depth=1) for item in items]
    locked = _locked_rows_while_waiting(
        pg_store, ids[HELD], lambda: pg_store.add_work_items(closer)
    )
    assert locked == set(sorted(ids)[: HELD + 1])
    assert {pg_store.work_item(i)["depth"] for i in ids} == {1}  # type: ignore[index]


def test_outcomes_lock_in_id_order(pg_store: StateStore) -> None:
    _, ids = _items(pg_store, depth=0)
    _claim_all(pg_store)
    outcomes = [Outcome(i, Status.COMPLETED) for i in reversed(ids)]
    locked = _locked_rows_while_waiting(
        pg_store, ids[HELD], lambda: pg_store.finish_items(outcomes, owner="o")
    )
    assert locked == set(ids[: HELD + 1])
    assert pg_store.counts(source_system=SYSTEM, source_name=NAME)["completed"] == 10


def test_renewals_lock_in_id_order(pg_store: StateStore) -> None:
    _, ids = _items(pg_store, depth=0)
    _claim_all(pg_store)

    def renew() -> None:
        claims = dict.fromkeys(reversed(ids), 1)
        assert pg_store.renew_leases(owner="o", claims=claims, lease_seconds=60) == 10

    assert _locked_rows_while_waiting(pg_store, ids[HELD], renew) == set(ids[: HELD + 1])


def test_renewals_of_claims_of_several_attempts_lock_in_id_order(pg_store: StateStore) -> None:
    _, ids = _items(pg_store, depth=0)
    wi = pg_store.tables.work_items
    with pg_store.engine.begin() as conn:  # every other item tried once before
        conn.execute(sa.update(wi).where(wi.c.id.in_(ids[1::2])).values(attempt=1))
    _claim_all(pg_store)
    claims = {i: 2 if n % 2 else 1 for n, i in enumerate(ids)}

    def renew() -> None:
        assert pg_store.renew_leases(owner="o", claims=claims, lease_seconds=60) == 10

    assert _locked_rows_while_waiting(pg_store, ids[HELD], renew) == set(ids[: HELD + 1])


def test_releasing_all_claims_locks_in_id_order(pg_store: StateStore) -> None:
    _, ids = _items(pg_store, depth=0)
    _claim_all(pg_store)
    wi = pg_store.tables.work_items
    with pg_store.engine.begin() as conn:  # heap order no longer id order
        conn.execute(sa.update(wi).where(wi.c.id.in_(ids[::2])).values(priority=1))

    def release() -> None:
        assert pg_store.release(owner="o") == 10

    assert _locked_rows_while_waiting(pg_store, ids[HELD], release) == set(ids[: HELD + 1])


def test_new_items_commit_before_known_ones_are_improved(pg_store: StateStore) -> None:
    """Workers discover the same links: a worker inserting a key another worker's
    ``add_work_items`` inserted must not wait while that call waits for row locks to improve
    known items (the frontier's lock waits with 2 and 4 workers, benchmarks/workers_scale.py)."""
    items, ids = _items(pg_store, depth=5)
    new = NewWorkItem(SYSTEM, NAME, "page", "New", depth=1)
    closer = NewWorkItem(SYSTEM, NAME, "page", items[HELD].resource_id, depth=1)
    wi = pg_store.tables.work_items
    engine = pg_store.engine
    with engine.connect() as holder, ThreadPoolExecutor(1) as pool:
        holder.execute(sa.select(wi.c.id).where(wi.c.id == ids[HELD]).with_for_update())
        holder_pid = holder.execute(sa.select(sa.func.pg_backend_pid())).scalar_one()
        future = pool.submit(pg_store.add_work_items, [new, closer])
        try:
            _wait_until_blocked_by(engine, holder_pid, future)
            with engine.connect() as other:  # another worker inserting the same key
                other.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                again = other.execute(
                    pg_insert(wi)
                    .values(
                        dedupe_hash=dedupe_hash(new.dedupe_key),
                        dedupe_key=new.dedupe_key,
                        source_system=SYSTEM,
                        source_name=NAME,
                        resource_type="page",
                        resource_id="New",
                        status=Status.PENDING.value,
                        priority=0,
                        depth=1,
                        attempt=0,
                        created_at=utcnow(),
                        updated_at=utcnow(),
                    )
                    .on_conflict_do_nothing(index_elements=[wi.c.dedupe_hash])
                    .returning(wi.c.id)
                ).all()
                other.rollback()
        finally:
            holder.rollback()
        assert future.result(timeout=30) == 1
    assert again == []  # known already: committed, so the insert neither waited nor inserted
    assert pg_store.work_item(ids[HELD])["depth"] == 1  # type: ignore[index]
