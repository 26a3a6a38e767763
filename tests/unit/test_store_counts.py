"""The counts the database keeps (holocron_scrapy.store.counts) stay exactly a GROUP BY over
``work_items``: after every store operation that changes a status, under concurrent writers
and compactions (PostgreSQL), and in a database made before the counts existed."""

from __future__ import annotations

import random
import threading
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from holocron_scrapy.model import NewWorkItem, Outcome, RetryPolicy, Status, WorkItem
from holocron_scrapy.store import counts as store_counts
from holocron_scrapy.store import operations
from holocron_scrapy.store.state_store import StateStore
from tests.conftest import open_test_store

if TYPE_CHECKING:
    from pathlib import Path

SYSTEM = "mediawiki"
SOURCES = ("a", "b")
TYPES = ("page", "html")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _grouped(store: StateStore, name: str) -> dict[tuple[str, str], int]:
    wi = store.tables.work_items
    stmt = (
        sa.select(wi.c.resource_type, wi.c.status, sa.func.count())
        .where(wi.c.source_system == SYSTEM, wi.c.source_name == name)
        .group_by(wi.c.resource_type, wi.c.status)
    )
    with store.engine.connect() as conn:
        return {(kind, status): int(n) for kind, status, n in conn.execute(stmt)}


def _kept(store: StateStore, name: str) -> dict[tuple[str, str], int]:
    with store.engine.connect() as conn:
        return store_counts.read(conn, store.tables, SYSTEM, name)[0]


def _assert_exact(store: StateStore) -> set[str]:
    """Check the counts of both sources; return the statuses they hold."""
    seen: set[str] = set()
    for name in SOURCES:
        grouped = _grouped(store, name)
        assert _kept(store, name) == grouped
        seen |= {status for _kind, status in grouped}
        by_status = {status.value: 0 for status in Status}
        for (_kind, status), n in grouped.items():
            by_status[status] += n
        assert store.counts(source_system=SYSTEM, source_name=name) == by_status
    return seen


class Sequence:
    """Random store operations on two sources, each followed by an exact check."""

    def __init__(self, store: StateStore, seed: int) -> None:
        self.store = store
        self.random = random.Random(seed)
        self.claimed: list[WorkItem] = []
        self.next_title = 0

    def add(self) -> None:
        items = []
        for _ in range(self.random.randint(1, 30)):
            title = self.random.randint(0, self.next_title + 20)  # some known: a smaller depth
            self.next_title = max(self.next_title, title + 1)
            items.append(
                NewWorkItem(
                    SYSTEM,
                    self.random.choice(SOURCES),
                    self.random.choice(TYPES),
                    f"T{title}",
                    depth=self.random.randint(0, 3),
                )
            )
        self.store.add_work_items(items)

    def claim(self) -> None:
        self.claimed += self.store.claim(
            source_system=SYSTEM,
            source_name=self.random.choice(SOURCES),
            owner=self.random.choice(("w1", "w2")),
            run_id="r",
            limit=self.random.randint(1, 20),
            lease_seconds=self.random.choice((600, -1)),  # -1: expired, swept by a later claim
        )

    def finish(self) -> None:
        self.random.shuffle(self.claimed)
        taken, self.claimed = self.claimed[:10], self.claimed[10:]
        outcomes = []
        for item in taken:
            kind = self.random.randrange(4)
            if kind == 0:
                outcomes.append(Outcome.completed(item, "0" * 64))
            elif kind == 1:
                outcomes.append(Outcome.skipped(item, "not wanted"))
            else:
                outcomes.append(Outcome.failed(item, "HTTP 503", final=kind == 3))
        retry = RetryPolicy(max_attempts=3, base_seconds=0, cap_seconds=0)  # due at once
        if self.random.random() < 0.5:
            self.store.finish_items(outcomes, retry=retry)
        else:
            self.store.commit_records([], outcomes, retry=retry)

    def release(self) -> None:
        self.store.release(owner=self.random.choice(("w1", "w2")))

    def requeue(self) -> None:
        name = self.random.choice(SOURCES)
        choice = self.random.randrange(4)
        wi = self.store.tables.work_items
        if choice == 0:
            statuses = [self.random.choice((Status.FAILED, Status.SKIPPED, Status.COMPLETED))]
            self.store.requeue(source_system=SYSTEM, source_name=name, statuses=statuses)
        elif choice == 1:
            operations.requeue(
                self.store.engine,
                self.store.tables,
                SYSTEM,
                name,
                statuses=[Status.FAILED, Status.SKIPPED],
                batch_size=3,
            )
        else:
            with self.store.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(wi.c.id, wi.c.dedupe_key).where(wi.c.status == "completed")
                ).all()
            picked = self.random.sample(rows, min(len(rows), 5))
            if choice == 2:
                self.store.requeue_ids([row.id for row in picked])
            else:
                self.store.requeue_keys([row.dedupe_key for row in picked])

    def by_hand(self) -> None:
        """What a DBA might do: a manual UPDATE of many rows, a DELETE."""
        wi = self.store.tables.work_items
        with self.store.engine.begin() as conn:
            if self.random.random() < 0.5:
                conn.execute(
                    sa.update(wi)
                    .where(wi.c.status == "failed", wi.c.resource_type == "html")
                    .values(status="skipped", resource_type="page")
                )
            else:
                doomed = sa.select(wi.c.id).where(wi.c.status != "in_progress").limit(3)
                conn.execute(sa.delete(wi).where(wi.c.id.in_(doomed.scalar_subquery())))

    def run(self, steps: int) -> set[str]:
        """Run ``steps`` random operations; return the statuses the items went through."""
        actions = [self.add, self.claim, self.claim, self.finish, self.finish, self.release]
        actions += [self.requeue, self.by_hand]
        seen: set[str] = set()
        for _ in range(steps):
            self.random.choice(actions)()
            seen |= _assert_exact(self.store)
        return seen


@pytest.mark.parametrize("backend", BACKENDS)
def test_counts_equal_a_group_by_after_every_operation(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_counts, "COMPACT_ABOVE", 5)  # compacted often (PostgreSQL)
    with open_test_store(backend, tmp_path) as store:
        assert Sequence(store, seed=13).run(50) == {status.value for status in Status}
        if backend == "postgresql":
            with store.engine.connect() as conn:
                rows = store_counts.read(conn, store.tables, SYSTEM, "a")[1]
            assert rows <= 5 + 30  # compacted: bounded, not one row per statement


@pytest.mark.postgres
def test_concurrent_writers_and_compactions_conserve_the_counts(tmp_path: Path) -> None:
    """Workers claiming and finishing while others compact: the totals stay exact."""
    with open_test_store("postgresql", tmp_path) as store:
        store.add_work_items([NewWorkItem(SYSTEM, "a", "page", f"P{i}") for i in range(1200)])
        errors: list[BaseException] = []
        stop = threading.Event()

        def worker(owner: str) -> None:
            try:
                while True:
                    items = store.claim(
                        source_system=SYSTEM,
                        source_name="a",
                        owner=owner,
                        run_id="r",
                        limit=25,
                        lease_seconds=600,
                    )
                    if not items:
                        return
                    half = len(items) // 2
                    store.finish_items(
                        [Outcome.completed(item, "0" * 64) for item in items[:half]]
                        + [Outcome.failed(item, "x", final=True) for item in items[half:]],
                        owner=owner,
                    )
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        def compactor() -> None:
            try:
                while not stop.is_set():
                    with store.engine.begin() as conn:
                        store_counts.compact(conn, store.tables, SYSTEM, "a")
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(3)]
        compactors = [threading.Thread(target=compactor) for _ in range(2)]
        for thread in workers + compactors:
            thread.start()
        for thread in workers:
            thread.join()
        stop.set()
        for thread in compactors:
            thread.join()
        assert not errors, errors
        grouped = _grouped(store, "a")
        assert sum(grouped.values()) == 1200
        assert set(grouped) == {("page", "completed"), ("page", "failed")}
        assert _kept(store, "a") == grouped


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_database_made_before_the_counts_gets_them_once(backend: str, tmp_path: Path) -> None:
    with open_test_store(backend, tmp_path) as store:
        with store.engine.begin() as conn:  # as an older version left it: no ledger
            if backend == "postgresql":
                schema = store.tables.metadata.schema
                conn.exec_driver_sql(f'DROP FUNCTION "{schema}".work_item_counts_apply CASCADE')
            else:
                for trigger in ("insert", "update", "delete"):
                    conn.exec_driver_sql(f"DROP TRIGGER work_item_counts_{trigger}")
            store.tables.work_item_counts.drop(conn)
        store.add_work_items([NewWorkItem(SYSTEM, "a", "page", f"P{i}") for i in range(40)])
        store.claim(
            source_system=SYSTEM, source_name="a", owner="w", run_id="r", limit=7, lease_seconds=60
        )
        opened = StateStore(store.engine, store.tables)
        opened.create_tables()
        opened.create_tables()  # the second open finds them and counts nothing again
        assert _kept(opened, "a") == {("page", "pending"): 33, ("page", "in_progress"): 7}
        opened.add_work_items([NewWorkItem(SYSTEM, "a", "page", "new")])
        assert opened.counts(source_system=SYSTEM, source_name="a")["pending"] == 34
