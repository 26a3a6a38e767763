"""A claim reads on from where the source's last claim ended (holocron_scrapy.store.resume),
on every backend, and still finds every item made ready behind that point: its own changes at
once, other workers' within RESTART_SECONDS or as soon as a claim comes up short."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from holocron_scrapy.model import Outcome
from holocron_scrapy.store import resume
from tests.unit.test_store_contract import claim, item, row_of, set_columns

if TYPE_CHECKING:
    import pytest

    from holocron_scrapy.model import WorkItem
    from holocron_scrapy.store.state_store import StateStore

TITLES = [f"T{i:02d}" for i in range(20)]


def _add(store: StateStore, titles: list[str], **fields: Any) -> None:
    """One insert each: ids in the order of ``titles`` (an insert's rows go in by key hash)."""
    for title in titles:
        store.add_work_items([item(title, **fields)])


def _ids(claimed: list[WorkItem]) -> list[str]:
    return [w.resource_id for w in claimed]


def test_a_claim_reads_on_and_from_the_head_when_short_or_after_the_sweep(
    store: StateStore,
) -> None:
    _add(store, TITLES[:12])
    assert _ids(claim(store, limit=3)) == TITLES[:3]
    store.release(owner="worker-1", work_item_ids=[])  # nothing released: the point stays
    assert _ids(claim(store, limit=3, lease_seconds=-1)) == TITLES[3:6]  # expired at once
    # The sweep brings T03..T05 back behind the point: this claim reads from the head.
    again = claim(store, limit=4, owner="worker-2")
    assert _ids(again) == [*TITLES[3:6], TITLES[6]]
    assert [w.attempt for w in again[:3]] == [2, 2, 2]
    assert _ids(claim(store, limit=3)) == TITLES[7:10]  # on from T06
    assert _ids(claim(store, limit=10)) == TITLES[10:12]  # short: the head finds no more
    assert claim(store) == []


def test_a_claim_reads_on_into_lower_priorities(store: StateStore) -> None:
    for i, title in enumerate(TITLES[:12]):
        _add(store, [title], priority=-(i // 4))
    assert _ids(claim(store, limit=3)) == TITLES[:3]
    assert _ids(claim(store, limit=3)) == TITLES[3:6]  # the rest of priority 0, then -1
    assert _ids(claim(store, limit=6)) == TITLES[6:12]


def test_an_item_added_here_before_the_point_is_claimed_next(store: StateStore) -> None:
    _add(store, TITLES[:10])
    assert _ids(claim(store, limit=3)) == TITLES[:3]
    _add(store, ["later"])
    store.add_work_items([item("urgent", priority=5)])
    assert _ids(claim(store, limit=2)) == ["urgent", "T03"]
    store.add_work_items([item("deep", priority=-1)])  # after the point: no read of the head
    assert _ids(claim(store, limit=20)) == [*TITLES[4:10], "later", "deep"]


def test_a_known_item_found_closer_is_claimed_again_at_its_new_priority(
    store: StateStore,
) -> None:
    _add(store, TITLES[:10], depth=3, priority=-3)
    (first,) = claim(store, limit=1)
    store.finish_items([Outcome.completed(first, "0" * 64)])
    assert _ids(claim(store, limit=2)) == TITLES[1:3]
    # Reopened behind the point at the priority it had: only the improvement says so.
    store.add_work_items([item(TITLES[0], depth=1, priority=-3)])
    assert _ids(claim(store, limit=1)) == [TITLES[0]]


def test_released_and_requeued_items_are_claimed_again_at_once(store: StateStore) -> None:
    _add(store, TITLES[:10])
    first = claim(store, limit=4)
    store.finish_items([Outcome.completed(first[0], "0" * 64)])
    assert store.release(owner="worker-1", work_item_ids=[first[2].id]) == 1
    assert _ids(claim(store, limit=1)) == [TITLES[2]]
    assert store.requeue_ids([first[0].id]) == 1
    assert _ids(claim(store, limit=1)) == [TITLES[0]]


def test_what_another_worker_readies_behind_the_point_is_claimed_within_restart_seconds(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(resume, "monotonic", lambda: clock[0])
    _add(store, TITLES)
    done = claim(store, limit=2)
    store.finish_items([Outcome.completed(w, "0" * 64) for w in done])
    # Another worker requeues T00 behind this store's point (no call of this store knows).
    set_columns(store, row_of(store, TITLES[0])["id"], status="pending")
    claims = []
    for _ in range(3):
        claims.append(_ids(claim(store, limit=1)))
        clock[0] += resume.RESTART_SECONDS / 2.5
    assert claims == [[TITLES[2]], [TITLES[3]], [TITLES[4]]]
    assert _ids(claim(store, limit=1)) == [TITLES[0]]  # 1.2 RESTART_SECONDS after the head
    assert _ids(claim(store, limit=1)) == [TITLES[5]]
