"""The statements the crawl repeats read their index, never the frontier: their query plans.

A frontier of 20,000 items of the source (most pending, some completed, in flight under two
owners, waiting for a retry) next to 40,000 completed items of another source, inserted in one
statement, then ANALYZEd (PostgreSQL: VACUUM ANALYZE, as autovacuum does) so that PostgreSQL's
planner weighs a real table. Each store operation is run once with its statements recorded,
then each statement is explained (SQLite's ``EXPLAIN QUERY PLAN``, PostgreSQL's ``EXPLAIN``):
it must name its index and neither scan ``work_items`` nor sort (SQLite: no ``SCAN
work_items``, no ``USE TEMP B-TREE``; PostgreSQL: no ``Seq Scan on work_items``, no ``Sort``).
Plans, not timings: a regression changes the plan on any machine.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from holocron_scrapy.model import Outcome
from holocron_scrapy.store.sql import utcnow
from tests.conftest import open_test_store

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from holocron_scrapy.store.state_store import StateStore

SYSTEM, NAME, OTHER = "mediawiki", "bench", "other"
ITEMS, OTHER_ITEMS = 20_000, 40_000

# Of every 100 items of the source: 2 in flight (one of "mine", one of "theirs", half of them
# expired), 1 waiting for a retry (half of them due), 10 completed, the rest pending.
_SEED = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO {table} (dedupe_hash, dedupe_key, source_system, source_name, resource_type,
    resource_id, status, priority, depth, attempt, lease_owner, lease_expires_at, next_retry_at,
    created_at, updated_at)
SELECT :name || CAST(i AS VARCHAR(12)), :name || CAST(i AS VARCHAR(12)), :system, :name,
    'page', CAST(i AS VARCHAR(12)),
    CASE WHEN i % 100 IN (0, 1) THEN 'in_progress' WHEN i % 100 < 13 AND i % 100 > 2
        THEN 'completed' WHEN :done = 1 THEN 'completed' ELSE 'pending' END,
    -(i % 3), i % 3, CASE WHEN i % 100 IN (0, 1, 2) THEN 1 ELSE 0 END,
    CASE WHEN i % 100 = 0 THEN 'mine' WHEN i % 100 = 1 THEN 'theirs' END,
    CASE WHEN i % 100 IN (0, 1) THEN CASE WHEN i % 200 < 100 THEN :past ELSE :future END END,
    CASE WHEN i % 100 = 2 THEN CASE WHEN i % 200 < 100 THEN :past ELSE :future END END,
    :past, :past
FROM n
"""


def _seed(store: StateStore) -> None:
    now = utcnow()
    table = store.tables.work_items
    name = table.name if table.schema is None else f'"{table.schema}".{table.name}'
    times = {"past": now - timedelta(minutes=5), "future": now + timedelta(hours=1)}
    with store.engine.begin() as conn:
        for source, count, done in ((NAME, ITEMS, 0), (OTHER, OTHER_ITEMS, 1)):
            conn.execute(
                sa.text(_SEED.format(table=name)),
                {"count": count, "system": SYSTEM, "name": source, "done": done, **times},
            )
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if store.dialect_name == "postgresql" else "ANALYZE")


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def frontier(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StateStore]:
    with open_test_store(request.param, tmp_path_factory.mktemp("plans")) as store:
        _seed(store)
        yield store


def _recorded(store: StateStore, call: Callable[[], Any]) -> list[tuple[str, Any]]:
    """The SELECT and UPDATE statements ``call`` sent, with their parameters."""
    sent: list[tuple[str, Any]] = []

    def record(_c: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, _many: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "SET")):
            sent.append((statement, params))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    assert sent
    return sent


def _plans(store: StateStore, sent: list[tuple[str, Any]]) -> str:
    """The plans of ``sent``, explained in one transaction (in which a ``SET`` is run)."""
    plans = []
    with store.engine.connect() as conn:
        for statement, params in sent:
            if statement.upper().startswith("SET"):
                conn.exec_driver_sql(statement, params)
            elif store.dialect_name == "sqlite":
                rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
                plans.append("\n".join(str(row[-1]) for row in rows))
            else:
                rows = conn.exec_driver_sql("EXPLAIN " + statement, params).all()
                plans.append("\n".join(str(row[0]) for row in rows))
        conn.rollback()
    return "\n\n".join(plans)


def _assert_indexed(
    store: StateStore, call: Callable[[], Any], *indexes: str | tuple[str, ...]
) -> tuple[list[tuple[str, Any]], str]:
    """``call``'s statements read ``indexes`` (a tuple: one of them) and neither scan nor sort;
    returns the statements and their plans."""
    sent = _recorded(store, call)
    text = _plans(store, sent)
    if store.dialect_name == "sqlite":
        forbidden = ("SCAN work_items", "USE TEMP B-TREE")
    else:
        forbidden = ("Seq Scan on work_items", "Sort")
    for word in forbidden:
        assert word not in text, text
    for index in indexes:
        assert any(name in text for name in ((index,) if isinstance(index, str) else index)), text
    return sent, text


def _claim(store: StateStore, owner: str = "mine", limit: int = 500) -> list[Any]:
    return store.claim(
        source_system=SYSTEM,
        source_name=NAME,
        owner=owner,
        run_id="r",
        limit=limit,
        lease_seconds=600,
    )


def test_the_claim_and_its_sweep_read_their_indexes(frontier: StateStore) -> None:
    claimed: list[Any] = []
    _assert_indexed(
        frontier,
        lambda: claimed.extend(_claim(frontier)),
        "ix_work_items_ready",
        "ix_work_items_lease_expiry",
        "ix_work_items_retry_at",
    )
    assert len(claimed) == 500
    frontier.finish_items([Outcome.completed(item, "0" * 64) for item in claimed], owner="mine")


def test_a_resumed_claim_reads_on_from_its_point(frontier: StateStore) -> None:
    """A claim after a claim reads on in ``ix_work_items_ready`` from the last item taken (the
    rest of its priority by id, then the lower priorities), not from the head of the range,
    whose entries (of items already claimed) PostgreSQL keeps until a vacuum."""
    last = _claim(frontier, limit=100)[-1]  # the point
    wi = frontier.tables.work_items
    rest_of_priority = sa.select(sa.func.count()).where(
        wi.c.source_name == NAME,
        wi.c.status == "pending",
        wi.c.next_retry_at.is_(None),
        wi.c.priority == last.priority,
        wi.c.id > last.id,
    )
    with frontier.engine.connect() as conn:
        rest = int(conn.execute(rest_of_priority).scalar_one())
    claimed: list[Any] = []
    sent, _plans_text = _assert_indexed(
        frontier,
        lambda: claimed.extend(_claim(frontier, limit=rest + 10)),
        "ix_work_items_ready",
        "ix_work_items_lease_expiry",  # the sweep
        "ix_work_items_retry_at",
    )
    assert len(claimed) == rest + 10
    takes = [s for s, _ in sent if s.lstrip().upper().startswith("UPDATE") and "claimed_at" in s]
    assert len(takes) == 2, sent  # the rest of the point's priority, then the lower ones
    assert {w.priority for w in claimed[-10:]} == {last.priority - 1}
    frontier.finish_items([Outcome.completed(item, "0" * 64) for item in claimed], owner="mine")


def test_counts_read_the_ledger_not_the_frontier(frontier: StateStore) -> None:
    """Counts read the source's rows of the counts the database keeps (a few per type and
    status), never ``work_items``; SQLite by the ledger's key, PostgreSQL by its index or (a
    ledger this small) a scan of it."""
    sent = _recorded(frontier, lambda: frontier.counts(source_system=SYSTEM, source_name=NAME))
    text = _plans(frontier, sent)
    assert "work_items" not in text, text
    if frontier.dialect_name == "sqlite":
        assert "SEARCH work_item_counts USING INDEX uq_work_item_counts_key" in text, text
    else:
        assert "work_item_counts" in text, text


def test_an_owners_leases_and_their_release_read_the_owner_index(frontier: StateStore) -> None:
    _assert_indexed(frontier, lambda: frontier.leased_ids(owner="theirs"), "lease_owner")
    _assert_indexed(
        frontier,
        lambda: frontier.release(owner="nobody", source=(SYSTEM, NAME)),
        "ix_work_items_lease_owner",
    )


def test_the_outlook_reads_the_lease_and_retry_indexes(frontier: StateStore) -> None:
    _assert_indexed(
        frontier,
        lambda: frontier.outlook(source_system=SYSTEM, source_name=NAME, owner="mine"),
        "ix_work_items_lease_expiry",
        "ix_work_items_retry_at",
        "ix_work_items_ready",  # claimable: the claim's range, first entry
    )


def test_the_recrawl_pages_through_completed_items_by_the_type_index(
    frontier: StateStore,
) -> None:
    source = {"source_system": SYSTEM, "source_name": NAME, "resource_type": "page"}
    _assert_indexed(
        frontier,
        lambda: frontier.completed_versions(**source, after_id=100, limit=1000),
        "ix_work_items_type_id",
    )
    _assert_indexed(
        frontier,
        lambda: frontier.completed_pages(**source, after_id=100, limit=1000),
        "ix_work_items_type_id",
    )


def test_a_claim_at_the_end_of_the_frontier_finds_nothing_without_a_scan(
    tmp_path: Path,
) -> None:
    """Nothing pending: the claim is an empty index range, as fast as at the start."""
    with open_test_store("sqlite", tmp_path) as store:
        _seed(store)
        wi = store.tables.work_items
        with store.engine.begin() as conn:
            conn.execute(sa.update(wi).where(wi.c.status == "pending").values(status="completed"))
        _assert_indexed(store, lambda: _claim(store, owner="late"), "ix_work_items_ready")
