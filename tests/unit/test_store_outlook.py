"""The outlook says when an item is claimable although a claim just took none: another worker's
claim holds it locked (SKIP LOCKED passed it by), so the crawl must claim again, not end (seen as
a scrapyd job ending while the frontier still had work, issue 15)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from holocron_scrapy.model import NewWorkItem
from holocron_scrapy.store.sql import utcnow
from tests.conftest import open_test_store

if TYPE_CHECKING:
    from pathlib import Path

    from holocron_scrapy.store.state_store import StateStore

SYSTEM, NAME = "mediawiki", "outlook"


def _outlook(store: StateStore, owner: str = "me") -> bool:
    return store.outlook(source_system=SYSTEM, source_name=NAME, owner=owner).claimable


def _claim(store: StateStore, owner: str = "me", lease: float = 600) -> list[int]:
    claimed = store.claim(
        source_system=SYSTEM, source_name=NAME, owner=owner, run_id="r", limit=10,
        lease_seconds=lease,
    )  # fmt: skip
    return [item.id for item in claimed]


def test_claimable_follows_ready_due_and_expired_items(store: StateStore) -> None:
    assert not _outlook(store)  # an empty frontier
    store.add_work_items([NewWorkItem(SYSTEM, NAME, "page", "A")])
    assert _outlook(store)  # ready
    assert len(_claim(store, lease=600)) == 1
    assert not _outlook(store)  # in flight under a live lease
    wi = store.tables.work_items
    with store.engine.begin() as conn:  # the lease ran out
        conn.execute(sa.update(wi).values(lease_expires_at=utcnow() - timedelta(seconds=5)))
    assert _outlook(store)
    assert len(_claim(store, owner="other")) == 1  # the sweep gave it back: claimed again
    with store.engine.begin() as conn:  # failed, its retry due in an hour, then now
        conn.execute(
            sa.update(wi).values(
                status="pending", lease_owner=None, lease_expires_at=None,
                next_retry_at=utcnow() + timedelta(hours=1),
            )
        )  # fmt: skip
    assert not _outlook(store)
    with store.engine.begin() as conn:
        conn.execute(sa.update(wi).values(next_retry_at=utcnow() - timedelta(seconds=1)))
    assert _outlook(store)


def test_an_item_locked_by_another_claim_is_claimable_not_the_end(tmp_path: Path) -> None:
    """PostgreSQL: a row locked by another transaction is passed by (SKIP LOCKED): the claim
    gets nothing, and the outlook says to claim again."""
    with open_test_store("postgresql", tmp_path) as store:
        store.add_work_items([NewWorkItem(SYSTEM, NAME, "page", "A")])
        wi = store.tables.work_items
        with store.engine.connect() as other:
            other.execute(sa.select(wi.c.id).with_for_update())  # the other worker's claim
            assert _claim(store) == []
            outlook = store.outlook(source_system=SYSTEM, source_name=NAME, owner="me")
            assert outlook.claimable
            assert (outlook.scheduled, outlook.in_flight_elsewhere) == (0, 0)
            other.rollback()
        assert len(_claim(store)) == 1
        assert not _outlook(store)
