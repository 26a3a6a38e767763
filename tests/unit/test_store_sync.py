"""The store's change-feed operations (``holocron_scrapy.store.sync``) on every backend: the sync
point per source, the items a batch of changed titles names, the pages of the ``prop=info``
pass; and their statements compiled for SQL Server."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import mssql

from holocron_scrapy.model import NewWorkItem, Outcome, dedupe_key
from holocron_scrapy.store.sql import utcnow
from holocron_scrapy.store.sync import Reach, SyncPoint

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from holocron_scrapy.store.state_store import StateStore

SYSTEM, NAME = "mediawiki", "wookieepedia"
SOURCE = {"source_system": SYSTEM, "source_name": NAME}


def test_sync_point_is_written_then_moved_per_source(store: StateStore) -> None:
    assert store.sync_point(**SOURCE) is None
    first = SyncPoint(datetime(2026, 1, 2, 3, 4, 5))
    assert store.set_sync_point(first, **SOURCE, run_id="r1", only_if_absent=True)
    # A crawl that finds one leaves it alone; another source has its own.
    later = SyncPoint(datetime(2026, 2, 1), rc_id=9_000_000_000, log_id=77)
    assert not store.set_sync_point(later, **SOURCE, run_id="r2", only_if_absent=True)
    assert store.sync_point(**SOURCE) == first
    other = {"source_system": SYSTEM, "source_name": "wikipedia"}
    assert store.set_sync_point(later, **other, run_id="r2")
    # A refresh moves it (update), big ids intact.
    assert store.set_sync_point(later, **SOURCE, run_id="r3")
    assert store.sync_point(**SOURCE) == later
    assert store.sync_point(**other) == later
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(store.tables.sync_points.c.run_id)).scalars().all()
    assert sorted(rows) == ["r2", "r3"]


def _complete(store: StateStore, titles: list[str], version: str) -> dict[str, int]:
    store.add_work_items([NewWorkItem(SYSTEM, NAME, "page", t, depth=1) for t in titles])
    claimed = store.claim(**SOURCE, owner="o", run_id="r", limit=len(titles), lease_seconds=60)
    store.finish_items([Outcome.completed(w, "a" * 64, version) for w in claimed])
    return {w.resource_id: w.id for w in claimed}


def test_items_by_keys_answers_the_known_titles_only(store: StateStore) -> None:
    ids = _complete(store, ["Yoda", "Ahsoka Tano"], "42")
    store.add_work_items([NewWorkItem(SYSTEM, NAME, "html", "Yoda", depth=1)])
    keys = [dedupe_key(SYSTEM, NAME, "page", t) for t in ("Yoda", "Ahsoka Tano", "Nobody")]
    found = {(i.resource_type, i.resource_id): i for i in store.items_by_keys(keys)}
    assert set(found) == {("page", "Yoda"), ("page", "Ahsoka Tano")}
    yoda = found[("page", "Yoda")]
    assert (yoda.id, yoda.status, yoda.version, yoda.depth) == (ids["Yoda"], "completed", "42", 1)
    assert store.items_by_keys([]) == []


def test_completed_pages_are_paged_by_id_with_their_completion_time(store: StateStore) -> None:
    ids = _complete(store, [f"P{i}" for i in range(5)], "7")
    rows = store.completed_pages(**SOURCE, resource_type="page", after_id=0, limit=3)
    assert [r[0] for r in rows] == sorted(ids.values())[:3]
    assert all(isinstance(r[3], datetime) and r[2] == "7" for r in rows)
    rest = store.completed_pages(**SOURCE, resource_type="page", after_id=rows[-1][0], limit=3)
    assert [r[0] for r in rest] == sorted(ids.values())[3:]


def test_first_run_started_is_the_sources_first_run(store: StateStore) -> None:
    assert store.first_run_started(**SOURCE) is None
    before = utcnow()
    store.start_run(**SOURCE, worker_id="w", hostname="h", pid=1)
    after_first = utcnow()
    store.start_run(**SOURCE, worker_id="w", hostname="h", pid=2)
    first = store.first_run_started(**SOURCE)
    assert first is not None
    assert before.replace(microsecond=0) <= first <= after_first


def test_sync_statements_compile_for_sql_server(sqlite_store: StateStore) -> None:
    store = sqlite_store
    statements: list[Any] = []

    def before_execute(_conn: Connection, clause: Any, *_args: Any) -> None:
        if isinstance(clause, sa.ClauseElement):
            statements.append(clause)

    sa.event.listen(store.engine, "before_execute", before_execute)
    store.set_sync_point(SyncPoint(datetime(2026, 1, 1)), **SOURCE, run_id="r")
    store.set_sync_point(SyncPoint(datetime(2026, 1, 2), 5, 6), **SOURCE, run_id="r")
    store.sync_point(**SOURCE)
    store.items_by_keys([dedupe_key(SYSTEM, NAME, "page", "Yoda")])
    store.completed_pages(**SOURCE, resource_type="page")
    store.first_run_started(**SOURCE)
    compiled = [str(s.compile(dialect=mssql.dialect())) for s in statements]
    assert len(compiled) >= 6
    assert sum("sync_points" in sql for sql in compiled) >= 4
    paged = next(sql for sql in compiled if "finished_at" in sql)
    assert "TOP" in paged or "FETCH" in paged


def test_widen_requeues_what_the_wider_settings_expand_further(store: StateStore) -> None:
    store.set_sync_point(SyncPoint(datetime(2026, 1, 1)), **SOURCE, run_id="r")
    types = ("page", "category")
    by_depth = {}
    for depth in range(4):
        store.add_work_items([NewWorkItem(SYSTEM, NAME, "page", f"D{depth}", depth=depth)])
        claimed = store.claim(**SOURCE, owner="o", run_id="r", limit=1, lease_seconds=60)
        store.finish_items([Outcome.completed(w, "a" * 64, "1") for w in claimed])
        by_depth[depth] = claimed[0].id
    links = frozenset({"links"})
    assert store.widen(Reach(1, links), **SOURCE, resource_types=types) == 0  # recorded
    assert store.widen(Reach(1, links), **SOURCE, resource_types=types) == 0  # the same
    assert store.widen(Reach(3, links), **SOURCE, resource_types=types) == 2  # depths 1, 2
    pending = {
        i.resource_id
        for i in store.items_by_keys([dedupe_key(SYSTEM, NAME, "page", f"D{d}") for d in range(4)])
        if i.status == "pending"
    }
    assert pending == {"D1", "D2"}
    assert store.widen(Reach(2, links), **SOURCE, resource_types=types) == 0  # narrower
    # Categories on: every completed item below max_depth.
    assert store.widen(Reach(2, links | {"categories"}), **SOURCE, resource_types=types) == 1
