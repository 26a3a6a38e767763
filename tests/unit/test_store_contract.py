"""The StateStore contract, proven on every backend (see tests/conftest.py for the backends)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import random
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from holocron_scrapy.model import IngestRow, NewWorkItem, Outcome, RetryPolicy, Status, WorkItem
from holocron_scrapy.store import leases as store_leases
from holocron_scrapy.store.state_store import StateStore, canonical_json, dedupe_hash, utcnow

SYSTEM = "mediawiki"
NAME = "wookieepedia"
REPO_ROOT = Path(__file__).resolve().parents[2]


def item(resource_id: str, **kwargs: Any) -> NewWorkItem:
    fields: dict[str, Any] = {
        "source_system": SYSTEM,
        "source_name": NAME,
        "resource_type": "page",
        "resource_id": resource_id,
    }
    fields.update(kwargs)
    return NewWorkItem(**fields)


def claim(store: StateStore, limit: int = 100, **kwargs: Any) -> list[WorkItem]:
    args: dict[str, Any] = {
        "source_system": SYSTEM,
        "source_name": NAME,
        "owner": "worker-1",
        "run_id": "run1",
        "limit": limit,
        "lease_seconds": 300,
    }
    args.update(kwargs)
    return store.claim(**args)


def row_of(store: StateStore, resource_id: str) -> dict[str, Any]:
    wi = store.tables.work_items
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(wi).where(wi.c.resource_id == resource_id)).one()
    return dict(row._mapping)


def row_by_key(store: StateStore, key: str) -> dict[str, Any]:
    wi = store.tables.work_items
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(wi).where(wi.c.dedupe_hash == dedupe_hash(key))).one()
    return dict(row._mapping)


def set_columns(store: StateStore, work_item_id: int, **values: Any) -> None:
    wi = store.tables.work_items
    with store.engine.begin() as conn:
        conn.execute(sa.update(wi).where(wi.c.id == work_item_id).values(**values))


def record_count(store: StateStore) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(store.tables.ingest_records)
            ).scalar_one()
        )


def ingest_row(work_item: WorkItem, **kwargs: Any) -> IngestRow:
    row = IngestRow(
        source_system=work_item.source_system,
        source_name=work_item.source_name,
        resource_type=work_item.resource_type,
        resource_id=work_item.resource_id,
        request_uri=f"https://example.org/api.php?titles={work_item.resource_id}",
        request_method="GET",
        request_headers={"User-Agent": "holocron", "Accept": "application/json"},
        status_code=200,
        response_headers={"Content-Type": ["application/json"]},
        payload={"title": work_item.resource_id, "text": "Ünïcödé ✓", "n": [3, 1, 2]},
        fetched_at_utc=datetime(2024, 5, 4, 12, 0, 0, 123456),
        hash_sha256=hashlib.sha256(work_item.resource_id.encode()).hexdigest(),
        run_id="run1",
        work_item_id=work_item.id,
        attempt=work_item.attempt,
        duration_ms=42,
    )
    return dataclasses.replace(row, **kwargs)


# -- add_work_items ---------------------------------------------------------------------------


def test_add_inserts_only_new_items(store: StateStore) -> None:
    assert store.add_work_items([item("A"), item("B")]) == 2
    assert store.add_work_items([item("B"), item("C"), item("A")]) == 1
    assert store.add_work_items([]) == 0
    row = row_of(store, "C")
    assert row["status"] == "pending"
    assert row["attempt"] == 0
    assert row["dedupe_key"] == f"{SYSTEM}:{NAME}:page:C"
    assert row["dedupe_hash"] == hashlib.sha256(row["dedupe_key"].encode()).hexdigest()
    assert row["dedupe_hash"] == dedupe_hash(item("C").dedupe_key)
    assert row["created_at"] == row["updated_at"]
    assert abs(row["created_at"] - utcnow()) < timedelta(minutes=1)
    assert store.counts(source_system=SYSTEM, source_name=NAME)["pending"] == 3


def test_add_same_id_other_type_or_source_is_new(store: StateStore) -> None:
    assert store.add_work_items([item("A"), item("A", resource_type="category")]) == 2
    assert store.add_work_items([item("A", source_name="other")]) == 1


def test_add_collapses_duplicates_in_batch_to_smallest_depth(store: StateStore) -> None:
    batch = [
        item("A", depth=3, priority=1),
        item("A", depth=1, priority=5, discovered_from=7),
        item("A", depth=2, priority=9),
        item("B", depth=0),
        item("B", depth=0, priority=4),
    ]
    assert store.add_work_items(batch) == 2
    a = row_of(store, "A")
    assert (a["depth"], a["priority"], a["discovered_from"]) == (1, 5, 7)
    b = row_of(store, "B")
    assert (b["depth"], b["priority"]) == (0, 0)  # first of equal depths


def test_add_large_batch_in_one_call(store: StateStore) -> None:
    assert store.add_work_items([item(f"P{i}", depth=1) for i in range(0, 1200, 2)]) == 600
    assert store.add_work_items([item(f"P{i}", depth=1) for i in range(1200)]) == 600
    assert store.counts(source_system=SYSTEM, source_name=NAME)["pending"] == 1200


def test_add_smaller_depth_improves_and_reopens_finished(store: StateStore) -> None:
    store.add_work_items(
        [
            item("done", depth=3, priority=1, run_id="run0"),
            item("skipped", depth=3, priority=1),
            item("failed", depth=3, priority=1),
            item("pending", depth=3),
            item("shallow", depth=1),
        ]
    )
    claimed = {w.resource_id: w for w in claim(store, limit=3)}  # done, skipped, failed
    assert set(claimed) == {"done", "skipped", "failed"}
    store.commit_records(
        [ingest_row(claimed["done"])],
        [Outcome(claimed["done"].id, Status.COMPLETED, content_hash="c" * 64)],
    )
    store.finish_items(
        [
            Outcome(claimed["skipped"].id, Status.SKIPPED),
            Outcome(claimed["failed"].id, Status.FAILED, "boom"),
        ]
    )

    again = [
        item("done", depth=1, priority=7, discovered_from=11, run_id="run2"),
        item("skipped", depth=2),
        item("failed", depth=0),
        item("pending", depth=2, priority=3),
        item("shallow", depth=2, priority=9),  # deeper: no change
    ]
    assert store.add_work_items(again) == 0

    done = row_of(store, "done")
    assert done["status"] == "pending"
    assert (done["depth"], done["priority"], done["discovered_from"]) == (1, 7, 11)
    assert done["content_hash"] == "c" * 64  # kept: an unchanged page is recognised
    assert done["attempt"] == 0
    assert done["finished_at"] is None
    assert done["run_id"] == "run2"
    assert row_of(store, "skipped")["status"] == "pending"
    failed = row_of(store, "failed")
    assert (failed["status"], failed["depth"]) == ("failed", 0)  # failed is not reopened
    pending = row_of(store, "pending")
    assert (pending["status"], pending["depth"], pending["priority"]) == ("pending", 2, 3)
    shallow = row_of(store, "shallow")
    assert (shallow["depth"], shallow["priority"]) == (1, 0)

    # Reopened items are claimable again, at their new depth.
    reclaimed = {w.resource_id: w for w in claim(store)}
    assert reclaimed["done"].depth == 1
    assert reclaimed["done"].content_hash == "c" * 64


def test_add_equal_depth_does_not_reopen(store: StateStore) -> None:
    store.add_work_items([item("A", depth=1)])
    (a,) = claim(store)
    store.finish_items([Outcome(a.id, Status.COMPLETED)])
    assert store.add_work_items([item("A", depth=1), item("A", depth=2)]) == 0
    assert row_of(store, "A")["status"] == "completed"


@pytest.mark.parametrize("how", ["finish_items", "commit_records"])
def test_an_item_found_closer_while_in_flight_is_reopened_when_it_ends(
    store: StateStore, how: str
) -> None:
    """Claimed at depth 2, found again at depth 1 while in flight: its outcome (processed at
    depth 2, links not expanded) must not close it; it goes back to pending at depth 1."""
    store.add_work_items([item("A", depth=2), item("B", depth=2), item("C", depth=2)])
    a, b, c = claim(store)
    store.add_work_items([item("A", depth=1), item("B", depth=1)])
    outcomes = [
        Outcome.completed(a, "a" * 64),
        Outcome.skipped(b, "redirect to 'X'"),
        Outcome.completed(c, "c" * 64),
    ]
    if how == "finish_items":
        store.finish_items(outcomes)
    else:
        store.commit_records([ingest_row(a)], outcomes)
    assert (row_of(store, "A")["status"], row_of(store, "A")["depth"]) == ("pending", 1)
    assert row_of(store, "A")["content_hash"] == "a" * 64  # unchanged content is recognised
    assert (row_of(store, "B")["status"], row_of(store, "B")["depth"]) == ("pending", 1)
    assert (row_of(store, "C")["status"], row_of(store, "C")["depth"]) == ("completed", 2)
    assert [i.resource_id for i in claim(store)] == ["A", "B"]


def test_failed_outcome_is_not_reopened(store: StateStore) -> None:
    store.add_work_items([item("A", depth=2)])
    (a,) = claim(store)
    store.add_work_items([item("A", depth=1)])
    store.finish_items([Outcome(a.id, Status.FAILED, "boom", depth=a.depth)])
    assert row_of(store, "A")["status"] == "failed"


def test_the_redirect_hops_of_an_item_are_stored_and_claimed(store: StateStore) -> None:
    """``work_items.hops`` (issue 10): what led to an item through redirects comes back with its
    claim; a table created before the column existed gets it (NULL: no hops)."""
    store.add_work_items([item("Target", hops=3), item("Plain")])
    assert row_of(store, "Plain")["hops"] is None
    assert {i.resource_id: i.hops for i in claim(store)} == {"Target": 3, "Plain": 0}
    wi = store.tables.work_items
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {wi.fullname} DROP COLUMN hops"))
    store.create_tables()
    store.add_work_items([item("After", hops=1)])
    assert row_of(store, "After")["hops"] == 1


def test_a_source_url_is_recorded_once_and_then_answered(store: StateStore) -> None:
    """``source_identities`` (issue 10): the first crawl of a name records its URL; later ones
    get that URL back, whatever they say."""
    args = {"source_system": SYSTEM, "source_name": NAME}
    assert store.source_url(**args, url="https://a.example.org/api.php") == (
        "https://a.example.org/api.php"
    )
    assert store.source_url(**args, url="https://b.example.org/api.php") == (
        "https://a.example.org/api.php"
    )
    other = {"source_system": "http", "source_name": NAME}
    assert store.source_url(**other, url="https://b.example.org/") == "https://b.example.org/"


def test_long_unicode_resource_ids(store: StateStore) -> None:
    # 2000 code points (the column limit); and 2000 UTF-16 units with astral characters
    # (what SQL Server's NVARCHAR(2000) counts).
    cjk = ("漢字ü·" * 600)[:2000]
    emoji = "🚀🪐👾✨🌌" + "é" * 1990
    odd = "Talk:Ω ≈ ç √ ∫ \t 'quoted' \"double\" ]; DROP TABLE work_items--"
    assert store.add_work_items([item(cjk), item(emoji), item(odd)]) == 3
    assert store.add_work_items([item(cjk), item(emoji), item(odd)]) == 0
    claimed = {w.resource_id for w in claim(store)}
    assert claimed == {cjk, emoji, odd}
    assert row_of(store, emoji)["dedupe_key"].endswith(emoji)


# -- claim --------------------------------------------------------------------------------------


def test_claim_orders_by_priority_then_id(store: StateStore) -> None:
    priorities = [0, 5, 1, 5, 0, 9, 5]
    store.add_work_items([item(f"P{i}", priority=p) for i, p in enumerate(priorities)])
    ids = {f"P{i}": row_of(store, f"P{i}")["id"] for i in range(len(priorities))}
    expected = sorted(ids, key=lambda r: (-priorities[int(r[1:])], ids[r]))
    first = claim(store, limit=4)
    assert [w.resource_id for w in first] == expected[:4]
    assert [w.resource_id for w in claim(store, limit=4)] == expected[4:]
    assert claim(store) == []


def test_claim_limit_and_source(store: StateStore) -> None:
    store.add_work_items([item(f"P{i}") for i in range(10)])
    store.add_work_items([item("other", source_name="elsewhere")])
    assert len(claim(store, limit=3)) == 3
    assert len(claim(store, limit=0)) == 0
    assert len(claim(store, limit=100)) == 7
    assert claim(store) == []
    assert [w.resource_id for w in claim(store, source_name="elsewhere")] == ["other"]


def test_claim_sets_the_lease(store: StateStore) -> None:
    store.add_work_items([item("A", depth=2, priority=3)])
    before = utcnow()
    (a,) = claim(store, owner="w-9", run_id="runX", lease_seconds=120)
    assert (a.resource_id, a.depth, a.priority, a.attempt, a.content_hash) == ("A", 2, 3, 1, None)
    row = row_of(store, "A")
    assert row["status"] == "in_progress"
    assert row["lease_owner"] == "w-9"
    assert row["run_id"] == "runX"
    assert row["attempt"] == 1
    assert before - timedelta(seconds=1) <= row["claimed_at"] <= utcnow()
    assert row["lease_expires_at"] - row["claimed_at"] == timedelta(seconds=120)


def test_claim_takes_expired_leases_only(store: StateStore) -> None:
    store.add_work_items([item("long")])
    store.add_work_items([item("short")])
    long = claim(store, limit=1, lease_seconds=3600)
    short = claim(store, limit=1, lease_seconds=-1)  # expired at once
    assert [w.resource_id for w in long + short] == ["long", "short"]
    (again,) = claim(store, owner="worker-2")
    assert again.resource_id == "short"
    assert again.attempt == 2
    assert row_of(store, "short")["lease_owner"] == "worker-2"
    assert row_of(store, "long")["lease_owner"] == "worker-1"


def test_claim_skips_items_not_yet_due(store: StateStore) -> None:
    store.add_work_items([item("later"), item("due"), item("now")])
    now = utcnow()
    set_columns(store, row_of(store, "later")["id"], next_retry_at=now + timedelta(hours=1))
    set_columns(store, row_of(store, "due")["id"], next_retry_at=now - timedelta(seconds=5))
    assert {w.resource_id for w in claim(store)} == {"due", "now"}
    set_columns(store, row_of(store, "later")["id"], next_retry_at=utcnow() - timedelta(seconds=1))
    assert [w.resource_id for w in claim(store)] == ["later"]


# -- finish_items, commit_records --------------------------------------------------------------


def test_finish_items_only_from_in_progress(store: StateStore) -> None:
    store.add_work_items([item("A"), item("B"), item("C")])
    a, b = claim(store, limit=2)
    c_id = row_of(store, "C")["id"]
    long_error = "x" * 5000
    changed = store.finish_items(
        [
            Outcome(a.id, Status.COMPLETED, content_hash="a" * 64),
            Outcome(b.id, Status.FAILED, long_error),
            Outcome(c_id, Status.COMPLETED),  # pending, not claimed: untouched
            Outcome(987654, Status.COMPLETED),  # no such item
        ]
    )
    assert changed.applied == 2
    assert changed.statuses == {"completed": 1, "failed": 1}
    assert changed.stale == [c_id, 987654]
    row_a = row_of(store, a.resource_id)
    assert (row_a["status"], row_a["content_hash"], row_a["error_message"]) == (
        "completed",
        "a" * 64,
        None,
    )
    assert row_a["lease_owner"] is None
    assert row_a["lease_expires_at"] is None
    assert row_a["finished_at"] is not None
    row_b = row_of(store, b.resource_id)
    assert row_b["status"] == "failed"
    assert len(row_b["error_message"]) == 4000
    assert row_of(store, "C")["status"] == "pending"
    # Finished already: a second outcome changes nothing.
    assert store.finish_items([Outcome(a.id, Status.FAILED, "late")]).stale == [a.id]
    assert row_of(store, a.resource_id)["status"] == "completed"
    assert store.finish_items([]).applied == 0


def test_finish_items_keeps_content_hash_when_none(store: StateStore) -> None:
    store.add_work_items([item("A")])
    (a,) = claim(store)
    store.finish_items([Outcome(a.id, Status.COMPLETED, content_hash="1" * 64)])
    store.requeue(source_system=SYSTEM, source_name=NAME, statuses=[Status.COMPLETED])
    (a,) = claim(store)
    assert a.content_hash == "1" * 64
    store.finish_items([Outcome(a.id, Status.SKIPPED)])
    assert row_of(store, "A")["content_hash"] == "1" * 64


def test_commit_records_writes_rows_and_outcomes(store: StateStore) -> None:
    store.add_work_items([item(f"P{i}") for i in range(5)])
    claimed = claim(store)
    rows = [ingest_row(w) for w in claimed]
    outcomes = [
        Outcome(w.id, Status.COMPLETED, content_hash=r.hash_sha256)
        for w, r in zip(claimed, rows, strict=True)
    ]
    ingest_ids = store.commit_records(rows, outcomes).ingest_ids
    assert len(ingest_ids) == 5
    assert len(set(ingest_ids)) == 5
    records = store.tables.ingest_records
    with store.engine.connect() as conn:
        stored = {
            r.ingest_id: r
            for r in conn.execute(sa.select(records).where(records.c.ingest_id.in_(ingest_ids)))
        }
    for ingest_id, work_item, row in zip(ingest_ids, claimed, rows, strict=True):
        got = stored[ingest_id]
        assert got.work_item_id == work_item.id  # ids come back in the order of the rows
        assert got.resource_id == work_item.resource_id
        assert got.payload == canonical_json(row.payload)
        assert json.loads(got.payload) == row.payload
        assert got.request_headers == '{"Accept":"application/json","User-Agent":"holocron"}'
        assert json.loads(got.response_headers) == row.response_headers
        assert got.fetched_at_utc == row.fetched_at_utc
        assert (got.status_code, got.duration_ms, got.attempt) == (200, 42, 1)
        assert got.hash_sha256 == row.hash_sha256
    assert store.counts(source_system=SYSTEM, source_name=NAME)["completed"] == 5
    for row in rows:
        assert row_of(store, row.resource_id)["content_hash"] == row.hash_sha256
    assert store.commit_records([], []).ingest_ids == []


def test_commit_records_is_atomic_when_a_row_fails(store: StateStore) -> None:
    store.add_work_items([item("A"), item("B")])
    a, b = claim(store)
    bad = ingest_row(b, resource_type=None)  # NOT NULL violation inside the transaction
    with pytest.raises(sa.exc.IntegrityError):
        store.commit_records(
            [ingest_row(a), bad],
            [Outcome(a.id, Status.COMPLETED), Outcome(b.id, Status.COMPLETED)],
        )
    assert record_count(store) == 0
    assert store.counts(source_system=SYSTEM, source_name=NAME)["in_progress"] == 2
    # The caller then fails the items separately.
    assert store.finish_items([Outcome(a.id, Status.FAILED, "write failed")]).applied == 1


def test_commit_records_is_atomic_when_an_outcome_fails(store: StateStore) -> None:
    store.add_work_items([item("A"), item("B")])
    a, b = claim(store)
    with pytest.raises(sa.exc.IntegrityError):  # CHECK constraint on status
        store.commit_records(
            [ingest_row(a), ingest_row(b)],
            [Outcome(a.id, Status.COMPLETED), Outcome(b.id, "bogus")],  # type: ignore[arg-type]
        )
    assert record_count(store) == 0  # rolled back with the outcomes
    assert row_of(store, "A")["status"] == "in_progress"


# -- bounded retries (HOLOCRON_MAX_ATTEMPTS) --------------------------------------------------


def test_a_failure_below_max_attempts_is_retried_later_with_growing_jittered_delays(
    store: StateStore,
) -> None:
    policy = RetryPolicy(max_attempts=3, base_seconds=100.0, cap_seconds=3600.0)
    store.add_work_items([item("A")])
    delays = []
    for attempt in (1, 2):
        [a] = claim(store)
        assert a.attempt == attempt
        before = utcnow()
        applied = store.finish_items(
            [Outcome(a.id, Status.FAILED, f"HTTP 500 (try {attempt})")],
            owner="worker-1",
            retry=policy,
        )
        after = utcnow()
        assert (applied.retried, dict(applied.statuses), applied.stale) == (1, {}, [])
        row = row_of(store, "A")
        assert (row["status"], row["attempt"], row["error_message"]) == (
            "pending",
            attempt,
            f"HTTP 500 (try {attempt})",
        )
        assert (row["lease_owner"], row["lease_expires_at"], row["finished_at"]) == (
            None,
            None,
            None,
        )
        nominal = 100.0 * 2 ** (attempt - 1)
        # Equal jitter: between half the nominal delay and all of it.
        low = before + timedelta(seconds=nominal / 2)
        high = after + timedelta(seconds=nominal)
        assert low <= row["next_retry_at"] <= high, (attempt, row["next_retry_at"])
        delays.append((row["next_retry_at"] - before).total_seconds())
        assert claim(store) == []  # not due yet
        set_columns(store, a.id, next_retry_at=utcnow() - timedelta(seconds=1))
    assert delays[0] <= delays[1]
    [a] = claim(store)
    assert a.attempt == 3
    applied = store.finish_items(
        [Outcome(a.id, Status.FAILED, "HTTP 500 (try 3)")], owner="worker-1", retry=policy
    )
    assert (applied.retried, dict(applied.statuses)) == (0, {"failed": 1})
    row = row_of(store, "A")
    assert (row["status"], row["attempt"], row["error_message"]) == (
        "failed",
        3,
        "HTTP 500 (try 3)",
    )
    assert row["next_retry_at"] is None
    assert row["finished_at"] is not None
    assert claim(store) == []  # never retried again


def test_retry_delay_is_capped() -> None:
    policy = RetryPolicy(max_attempts=20, base_seconds=30.0, cap_seconds=3600.0)
    rng = random.Random(7)
    assert [policy.nominal_delay(n) for n in (1, 2, 3, 8, 9, 19)] == [
        30.0,
        60.0,
        120.0,
        3600.0,
        3600.0,
        3600.0,
    ]
    for attempt in range(1, 20):
        nominal = policy.nominal_delay(attempt)
        assert nominal / 2 <= policy.delay(attempt, rng) <= nominal
    with pytest.raises(ValueError, match="max_attempts must be at least 1"):
        RetryPolicy(max_attempts=0)


def test_a_retried_listing_keeps_its_cursor_and_a_final_one_drops_it(store: StateStore) -> None:
    policy = RetryPolicy(max_attempts=2, base_seconds=0.0)
    store.add_work_items([item("allpages?apnamespace=0", resource_type="listing")])
    [listing] = claim(store)
    assert store.save_cursor(listing.id, '{"apcontinue":"M"}', owner="worker-1", lease_seconds=60)
    store.finish_items([Outcome(listing.id, Status.FAILED, "boom")], retry=policy)
    [again] = claim(store)
    assert again.cursor == '{"apcontinue":"M"}'
    store.finish_items([Outcome(again.id, Status.FAILED, "boom")], retry=policy)
    row = store.work_item(again.id)
    assert row is not None
    assert (row["status"], row["cursor"]) == ("failed", None)


def test_commit_records_retries_its_failed_outcomes_too(store: StateStore) -> None:
    store.add_work_items([item("A")])
    [a] = claim(store)
    applied = store.commit_records(
        [], [Outcome(a.id, Status.FAILED, "lake write failed")], retry=RetryPolicy()
    )
    assert applied.retried == 1
    assert row_of(store, "A")["status"] == "pending"


# -- lease ownership --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["finish_items", "commit_records"])
def test_an_outcome_for_a_lease_taken_over_is_dropped_with_its_row(
    store: StateStore, how: str
) -> None:
    store.add_work_items([item("A"), item("B")])
    a, b = claim(store, owner="old", lease_seconds=60)
    set_columns(store, a.id, lease_expires_at=utcnow() - timedelta(seconds=1))
    [taken] = claim(store, owner="new")  # the expired lease of A
    assert taken.id == a.id
    outcomes = [
        Outcome(a.id, Status.COMPLETED, content_hash="1" * 64),
        Outcome.completed(b, "2" * 64),
    ]
    if how == "finish_items":
        applied = store.finish_items(outcomes, owner="old")
    else:
        applied = store.commit_records([ingest_row(a), ingest_row(b)], outcomes, owner="old")
        assert len(applied.ingest_ids) == 1
        with store.engine.connect() as conn:
            ir = store.tables.ingest_records
            assert list(conn.execute(sa.select(ir.c.work_item_id)).scalars()) == [b.id]
    assert applied.stale == [a.id]
    assert dict(applied.statuses) == {"completed": 1}
    row = row_of(store, "A")
    assert (row["status"], row["lease_owner"], row["content_hash"]) == ("in_progress", "new", None)
    assert row_of(store, "B")["status"] == "completed"
    # The new holder's outcome counts.
    assert store.finish_items([Outcome.completed(taken, "3" * 64)], owner="new").applied == 1
    assert row_of(store, "A")["content_hash"] == "3" * 64


def test_a_repeated_commit_inserts_nothing_twice(store: StateStore) -> None:
    """A commit retried after its answer was lost (the connection died) finds its items ended."""
    store.add_work_items([item("A")])
    [a] = claim(store)
    outcome = Outcome.completed(a, "1" * 64)
    assert len(store.commit_records([ingest_row(a)], [outcome], owner="worker-1").ingest_ids) == 1
    again = store.commit_records([ingest_row(a)], [outcome], owner="worker-1")
    assert (again.ingest_ids, again.stale) == ([], [a.id])
    assert record_count(store) == 1


def test_renew_leases_extends_the_owners_in_progress_items_only(store: StateStore) -> None:
    store.add_work_items([item(f"P{i}") for i in range(4)])
    mine = claim(store, limit=2, owner="me", lease_seconds=10)
    [theirs] = claim(store, limit=1, owner="them", lease_seconds=10)
    before = utcnow()
    renewed = store.renew_leases(
        owner="me",
        claims={w.id: w.attempt for w in [*mine, theirs]},
        lease_seconds=600,
    )
    assert renewed == 2
    for w in mine:
        expires = row_of(store, w.resource_id)["lease_expires_at"]
        assert expires >= before + timedelta(seconds=599)
    assert row_of(store, theirs.resource_id)["lease_expires_at"] < before + timedelta(seconds=11)
    assert store.leased_ids(owner="me") == sorted(w.id for w in mine)
    assert store.renew_leases(owner="me", claims={}, lease_seconds=600) == 0


@pytest.mark.parametrize("how", ["finish_items", "commit_records"])
def test_an_outcome_of_an_earlier_claim_by_the_same_owner_is_refused(
    store: StateStore, how: str
) -> None:
    """Attempt 1's lease expired (say, a database outage longer than the lease); the same
    owner claimed the item again (attempt 2): attempt 1's outcome must not end attempt 2."""
    store.add_work_items([item("A"), item("B")])
    first, b = claim(store, owner="me", lease_seconds=60)
    set_columns(store, first.id, lease_expires_at=utcnow() - timedelta(seconds=1))
    [second] = claim(store, owner="me")
    assert (second.id, first.attempt, second.attempt) == (first.id, 1, 2)
    outcomes = [Outcome.completed(first, "1" * 64), Outcome.failed(b, "HTTP 500")]
    if how == "finish_items":
        applied = store.finish_items(outcomes, owner="me")
    else:
        applied = store.commit_records([ingest_row(first), ingest_row(b)], outcomes, owner="me")
        with store.engine.connect() as conn:
            ir = store.tables.ingest_records
            assert list(conn.execute(sa.select(ir.c.work_item_id)).scalars()) == [b.id]
    assert (applied.stale, dict(applied.statuses)) == ([first.id], {"failed": 1})
    row = row_of(store, "A")
    assert (row["status"], row["lease_owner"], row["attempt"], row["content_hash"]) == (
        "in_progress",
        "me",
        2,
        None,
    )
    # Without an owner the claim still fences it.
    assert store.finish_items([Outcome.completed(first, "1" * 64)]).stale == [first.id]
    # The claim held now ends it.
    assert store.finish_items([Outcome.completed(second, "2" * 64)], owner="me").applied == 1
    assert (row_of(store, "A")["status"], row_of(store, "A")["content_hash"]) == (
        "completed",
        "2" * 64,
    )


def test_renewals_and_cursors_of_an_earlier_claim_by_the_same_owner_are_refused(
    store: StateStore,
) -> None:
    store.add_work_items([item("L", resource_type="allpages")])
    [first] = claim(store, owner="me", lease_seconds=60)
    set_columns(store, first.id, lease_expires_at=utcnow() - timedelta(seconds=1))
    [second] = claim(store, owner="me", lease_seconds=60)
    expires = row_of(store, "L")["lease_expires_at"]
    assert store.renew_leases(owner="me", claims={first.id: first.attempt}, lease_seconds=600) == 0
    assert not store.save_cursor(
        first.id, '{"c":"1"}', owner="me", lease_seconds=600, attempt=first.attempt
    )
    row = row_of(store, "L")
    assert (row["lease_expires_at"], row["cursor"]) == (expires, None)
    assert store.renew_leases(owner="me", claims={second.id: second.attempt}, lease_seconds=600)
    assert store.save_cursor(
        second.id, '{"c":"2"}', owner="me", lease_seconds=600, attempt=second.attempt
    )
    row = row_of(store, "L")
    assert row["lease_expires_at"] > expires + timedelta(seconds=500)
    assert row["cursor"] == '{"c":"2"}'


def test_outlook_counts_scheduled_retries_and_other_workers_live_leases(
    store: StateStore,
) -> None:
    store.add_work_items([item(f"P{i}") for i in range(5)])
    empty = store.outlook(source_system=SYSTEM, source_name=NAME, owner="me")
    assert (empty.scheduled, empty.next_retry_at, empty.in_flight_elsewhere) == (0, None, 0)
    [mine] = claim(store, limit=1, owner="me")
    theirs = claim(store, limit=2, owner="them", lease_seconds=600)
    [expired] = claim(store, limit=1, owner="dead", lease_seconds=600)
    set_columns(store, expired.id, lease_expires_at=utcnow() - timedelta(seconds=5))
    [failing] = claim(store, limit=1, owner="me")
    store.finish_items(
        [Outcome(failing.id, Status.FAILED, "x")],
        owner="me",
        retry=RetryPolicy(base_seconds=100.0),
    )
    outlook = store.outlook(source_system=SYSTEM, source_name=NAME, owner="me")
    assert outlook.scheduled == 1
    assert outlook.next_retry_at is not None
    assert utcnow() + timedelta(seconds=49) <= outlook.next_retry_at
    assert outlook.in_flight_elsewhere == len(theirs) == 2  # not mine, not the expired one
    assert outlook.first_lease_expiry is not None
    assert mine.id not in {w.id for w in theirs}
    other = store.outlook(source_system=SYSTEM, source_name="elsewhere", owner="me")
    assert (other.scheduled, other.in_flight_elsewhere) == (0, 0)


# -- the shared request budget ----------------------------------------------------------------


def test_reserve_request_hands_out_slots_an_interval_apart(store: StateStore) -> None:
    def reserve(name: str = NAME) -> float:
        return store.reserve_request(source_system=SYSTEM, source_name=name, interval_seconds=10)

    first, second, third = reserve(), reserve(), reserve()
    assert first == 0.0
    assert 9.0 <= second <= 10.0
    assert 19.0 <= third <= 20.0
    assert reserve("elsewhere") == 0.0  # a budget per source
    budget = store.tables.source_budget
    with store.engine.connect() as conn:
        rows = {r.source_name: r for r in conn.execute(sa.select(budget))}
    assert (rows[NAME].requests, rows["elsewhere"].requests) == (3, 1)
    assert rows[NAME].next_request_at > utcnow() + timedelta(seconds=29)


def test_concurrent_reservations_never_share_a_slot(store: StateStore) -> None:
    """Threads racing for the slots (and, on a server, to create the row) each get their own."""
    barrier = threading.Barrier(6)

    def reserve_five(_: int) -> list[float]:
        barrier.wait()
        return [
            store.reserve_request(source_system=SYSTEM, source_name=NAME, interval_seconds=10)
            for _ in range(5)
        ]

    with ThreadPoolExecutor(6) as pool:
        waits = sorted(w for ws in pool.map(reserve_five, range(6)) for w in ws)
    assert len(waits) == 30
    assert waits[0] == 0.0
    gaps = [b - a for a, b in itertools.pairwise(waits)]
    assert all(8.0 <= gap <= 12.0 for gap in gaps), gaps  # 10 s apart, give or take the test


# -- release, requeue, counts -----------------------------------------------------------------


def test_release(store: StateStore) -> None:
    store.add_work_items([item(f"P{i}") for i in range(5)])
    mine = claim(store, limit=3, owner="me")
    theirs = claim(store, limit=1, owner="them")
    assert store.release(owner="me", work_item_ids=[mine[0].id, theirs[0].id]) == 1
    assert store.release(owner="me", work_item_ids=[]) == 0
    assert store.release(owner="me") == 2
    assert store.release(owner="me") == 0
    counts = store.counts(source_system=SYSTEM, source_name=NAME)
    assert (counts["pending"], counts["in_progress"]) == (4, 1)
    released = row_of(store, mine[0].resource_id)
    assert released["attempt"] == 0
    assert released["lease_owner"] is None
    assert released["lease_expires_at"] is None
    # A released claim does not count as an attempt.
    again = {w.resource_id: w for w in claim(store, owner="me")}
    assert again[mine[0].resource_id].attempt == 1
    assert row_of(store, theirs[0].resource_id)["lease_owner"] == "them"


def test_release_of_one_source_only(store: StateStore) -> None:
    store.add_work_items([item("A"), item("B", source_name="other")])
    [a] = claim(store, owner="dead")
    [b] = claim(store, owner="dead", source_name="other")
    assert store.release(owner="dead", source=(SYSTEM, "other")) == 1
    assert (row_of(store, "A")["lease_owner"], row_of(store, "B")["status"]) == ("dead", "pending")
    assert store.release(owner="dead", source=(SYSTEM, NAME)) == 1
    assert {a.id, b.id} == {row_of(store, r)["id"] for r in "AB"}


def test_requeue(store: StateStore) -> None:
    store.add_work_items([item(f"P{i}") for i in range(4)])
    store.add_work_items([item("X", source_name="elsewhere")])
    p0, p1, p2, _p3 = claim(store)
    (x,) = claim(store, source_name="elsewhere")
    store.finish_items(
        [
            Outcome(p0.id, Status.FAILED, "boom"),
            Outcome(p1.id, Status.SKIPPED),
            Outcome(p2.id, Status.COMPLETED, content_hash="f" * 64),
            Outcome(x.id, Status.FAILED, "boom"),
        ]
    )
    set_columns(store, p0.id, next_retry_at=utcnow() + timedelta(days=1))
    assert store.requeue(source_system=SYSTEM, source_name=NAME, statuses=[]) == 0
    assert (
        store.requeue(
            source_system=SYSTEM, source_name=NAME, statuses=[Status.FAILED, Status.SKIPPED]
        )
        == 2
    )
    row = row_of(store, p0.resource_id)
    assert (row["status"], row["attempt"], row["error_message"], row["next_retry_at"]) == (
        "pending",
        0,
        None,
        None,
    )
    assert row_of(store, "X")["status"] == "failed"  # other source untouched
    assert store.requeue(source_system=SYSTEM, source_name=NAME, statuses=[Status.COMPLETED]) == 1
    assert row_of(store, p2.resource_id)["content_hash"] == "f" * 64
    counts = store.counts(source_system=SYSTEM, source_name=NAME)
    assert (counts["pending"], counts["in_progress"]) == (3, 1)


# -- versions and recrawl ---------------------------------------------------------------------


def test_version_is_stored_with_the_completion_and_kept_when_none(store: StateStore) -> None:
    store.add_work_items([item("A"), item("B")])
    a, b = claim(store)
    assert (a.version, b.version) == (None, None)
    store.commit_records(
        [ingest_row(a)], [Outcome.completed(a, "1" * 64, "1234"), Outcome.completed(b, "2" * 64)]
    )
    assert (row_of(store, "A")["version"], row_of(store, "B")["version"]) == ("1234", None)
    assert store.requeue_ids([a.id]) == 1
    (a,) = claim(store)
    assert (a.version, a.content_hash) == ("1234", "1" * 64)  # the claim carries it
    store.finish_items([Outcome.completed(a, "1" * 64)])  # unknown version: the stored one stays
    assert row_of(store, "A")["version"] == "1234"
    store.requeue_ids([a.id])
    (a,) = claim(store)
    store.finish_items([Outcome.completed(a, "3" * 64, "deleted")])
    assert (row_of(store, "A")["version"], row_of(store, "A")["content_hash"]) == (
        "deleted",
        "3" * 64,
    )


def test_completed_versions_pages_through_completed_items_by_id(store: StateStore) -> None:
    store.add_work_items([item(f"P{i}") for i in range(6)])
    store.add_work_items([item("X", source_name="elsewhere"), item("T", resource_type="talk")])
    *claimed, talk = claim(store)  # P0..P5, then T
    assert talk.resource_type == "talk"
    store.finish_items(
        [Outcome.completed(w, "a" * 64, str(100 + i)) for i, w in enumerate(claimed[:4])]
        + [Outcome(claimed[4].id, Status.SKIPPED, "redirect")]  # P5 stays in_progress
    )
    for other in [*claim(store, source_name="elsewhere"), talk]:
        store.finish_items([Outcome.completed(other, "b" * 64, "7")])
    args = {"source_system": SYSTEM, "source_name": NAME, "resource_type": "page"}
    first = store.completed_versions(**args, after_id=0, limit=3)
    assert first == [(w.id, w.resource_id, str(100 + i)) for i, w in enumerate(claimed[:3])]
    rest = store.completed_versions(**args, after_id=first[-1][0], limit=3)
    assert rest == [(claimed[3].id, claimed[3].resource_id, "103")]
    assert store.completed_versions(**args, after_id=rest[-1][0], limit=3) == []


def test_requeue_ids_reopens_only_completed_items(store: StateStore) -> None:
    store.add_work_items([item(f"P{i}") for i in range(4)])
    p0, p1, p2, p3 = claim(store)
    store.finish_items(
        [
            Outcome.completed(p0, "f" * 64, "11"),
            Outcome.completed(p1, "e" * 64, "12"),
            Outcome(p2.id, Status.FAILED, "boom"),
        ]
    )
    unknown = list(range(10_000_000, 10_000_000 + 2 * 1000 + 5))  # chunked IN lists
    assert store.requeue_ids([]) == 0
    assert store.requeue_ids([p0.id, p0.id, p2.id, p3.id, *unknown]) == 1
    row = row_of(store, p0.resource_id)
    assert (row["status"], row["attempt"], row["finished_at"]) == ("pending", 0, None)
    assert (row["content_hash"], row["version"]) == ("f" * 64, "11")
    assert row_of(store, p1.resource_id)["status"] == "completed"
    assert row_of(store, p2.resource_id)["status"] == "failed"
    assert row_of(store, p3.resource_id)["status"] == "in_progress"
    assert [w.id for w in claim(store)] == [p0.id]


def test_requeue_keys_reopens_completed_and_skipped_items_by_dedupe_key(
    store: StateStore,
) -> None:
    kinds = ["html", "revisions", "info", "page"]
    store.add_work_items([item(f"T{i}", resource_type=kind) for kind in kinds for i in range(3)])
    store.add_work_items([item("T0", resource_type="html", source_name="elsewhere")])
    claimed = {(w.resource_type, w.resource_id): w for w in claim(store)}
    [other] = claim(store, source_name="elsewhere")
    store.finish_items(
        [Outcome.completed(w, "c" * 64, "5") for (kind, _), w in claimed.items() if kind != "info"]
        + [Outcome.skipped(claimed["info", "T0"], "missing")]
        + [Outcome(claimed["info", "T1"].id, Status.FAILED, "boom")]  # info T2 stays in flight
        + [Outcome.completed(other, "d" * 64, "5")]
    )
    keys = [
        item(t, resource_type=kind).dedupe_key for kind in kinds[:3] for t in ("T0", "T1", "T2")
    ]
    unknown = [item(f"U{i}", resource_type="html").dedupe_key for i in range(2 * 1000 + 5)]
    assert store.requeue_keys([]) == 0
    assert store.requeue_keys([*keys, *keys[:2], *unknown]) == 7

    def status(resource_id: str, kind: str, **kwargs: Any) -> str:
        return str(
            row_by_key(store, item(resource_id, resource_type=kind, **kwargs).dedupe_key)["status"]
        )

    assert {(k, t): status(t, k) for k in kinds for t in ("T0", "T1", "T2")} == {
        **{(k, t): "pending" for k in ("html", "revisions") for t in ("T0", "T1", "T2")},
        ("info", "T0"): "pending",  # was skipped
        ("info", "T1"): "failed",
        ("info", "T2"): "in_progress",
        **{("page", t): "completed" for t in ("T0", "T1", "T2")},  # not asked for
    }
    assert status("T0", "html", source_name="elsewhere") == "completed"
    row = row_by_key(store, item("T0", resource_type="html").dedupe_key)
    assert (row["attempt"], row["finished_at"], row["lease_owner"]) == (0, None, None)
    assert (row["content_hash"], row["version"]) == ("c" * 64, "5")
    assert len(claim(store)) == 7


def test_create_tables_adds_the_version_column_to_an_older_table(store: StateStore) -> None:
    store.add_work_items([item("A")])
    wi = store.tables.work_items
    table = store.engine.dialect.identifier_preparer.format_table(wi)
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN version"))
    store.create_tables()
    store.create_tables()
    (a,) = claim(store)
    store.finish_items([Outcome.completed(a, "1" * 64, "5")])
    assert row_of(store, "A")["version"] == "5"


def test_create_tables_adds_the_cursor_column_to_an_older_table(store: StateStore) -> None:
    store.add_work_items([item("A")])
    wi = store.tables.work_items
    table = store.engine.dialect.identifier_preparer.format_table(wi)
    column = store.engine.dialect.identifier_preparer.quote("cursor")
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
    store.create_tables()
    store.create_tables()
    (a,) = claim(store)
    assert a.cursor is None
    assert store.save_cursor(a.id, '{"apcontinue":"B"}', owner="worker-1", lease_seconds=60)
    assert row_of(store, "A")["cursor"] == '{"apcontinue":"B"}'


def test_create_tables_adds_the_heartbeat_columns_to_an_older_runs_table(
    store: StateStore,
) -> None:
    table = store.engine.dialect.identifier_preparer.format_table(store.tables.runs)
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN heartbeat_at"))
        conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN pid_namespace"))
    store.create_tables()
    store.create_tables()
    run_id = store.start_run(
        source_system=SYSTEM, source_name=NAME, worker_id="w", hostname="h", pid=1
    )
    assert store.renew_leases(owner="o", claims={}, lease_seconds=60, run_id=run_id) == 0
    [state] = store.run_states([run_id])
    assert (state.status, state.pid_namespace) == ("running", None)


def test_save_cursor_renews_the_lease_of_the_owner_only(store: StateStore) -> None:
    store.add_work_items([item("L", resource_type="listing"), item("P")])
    by_id = {w.resource_id: w for w in claim(store, lease_seconds=5)}
    listing, page = by_id["L"], by_id["P"]
    assert listing.cursor is None
    before = row_of(store, "L")["lease_expires_at"]
    cursor = canonical_json({"apcontinue": "Ünïcödé|x", "continue": "-||"})
    assert store.save_cursor(listing.id, cursor, owner="worker-1", lease_seconds=600)
    row = row_of(store, "L")
    assert row["cursor"] == cursor
    assert row["status"] == "in_progress"
    assert row["lease_expires_at"] > before + timedelta(seconds=500)
    # Not the owner, or no longer in progress: nothing changes.
    assert not store.save_cursor(listing.id, "{}", owner="worker-2", lease_seconds=600)
    assert not store.save_cursor(999_999, "{}", owner="worker-1", lease_seconds=600)
    assert row_of(store, "L")["cursor"] == cursor
    store.finish_items([Outcome(page.id, Status.COMPLETED)])
    assert not store.save_cursor(page.id, "{}", owner="worker-1", lease_seconds=600)
    assert row_of(store, "P")["cursor"] is None


def test_a_released_listing_is_claimed_again_with_its_cursor(store: StateStore) -> None:
    store.add_work_items([item("L", resource_type="listing")])
    (listing,) = claim(store)
    assert store.save_cursor(listing.id, '{"c":"1"}', owner="worker-1", lease_seconds=60)
    assert store.release(owner="worker-1") == 1
    (again,) = claim(store, owner="worker-2")
    assert again.cursor == '{"c":"1"}'
    # An expired lease: another worker takes it over with the cursor; the old owner lost it.
    set_columns(store, again.id, lease_expires_at=utcnow() - timedelta(seconds=1))
    (taken,) = claim(store, owner="worker-3")
    assert taken.cursor == '{"c":"1"}'
    assert not store.save_cursor(taken.id, '{"c":"2"}', owner="worker-2", lease_seconds=60)
    # An ended listing forgets its cursor: run again, it starts from the beginning.
    store.finish_items([Outcome(taken.id, Status.COMPLETED, depth=0)])
    assert row_of(store, "L")["cursor"] is None


def test_counts_has_every_status(store: StateStore) -> None:
    assert store.counts(source_system=SYSTEM, source_name=NAME) == {s.value: 0 for s in Status}
    store.add_work_items([item(f"P{i}") for i in range(4)])
    a, b, _c = claim(store, limit=3)
    store.finish_items([Outcome(a.id, Status.COMPLETED), Outcome(b.id, Status.SKIPPED)])
    assert store.counts(source_system=SYSTEM, source_name=NAME) == {
        "pending": 1,
        "in_progress": 1,
        "completed": 1,
        "failed": 0,
        "skipped": 1,
    }
    assert store.counts(source_system=SYSTEM, source_name="nothing")["pending"] == 0


def test_work_item_lookup(store: StateStore) -> None:
    store.add_work_items([item("A")])
    wid = row_of(store, "A")["id"]
    got = store.work_item(wid)
    assert got is not None
    assert got["resource_id"] == "A"
    assert store.work_item(wid + 1000) is None


# -- runs, tables ------------------------------------------------------------------------------


def test_runs_start_and_finish(store: StateStore) -> None:
    run_id = store.start_run(
        source_system=SYSTEM, source_name=NAME, worker_id="host:123:abc", hostname="host", pid=123
    )
    assert len(run_id) == 32
    runs = store.tables.runs
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).one()
    assert (row.status, row.finished_at, row.items_completed, row.pid) == ("running", None, 0, 123)
    store.finish_run(
        run_id,
        status="finished",
        reason="finished",
        counts={"items_completed": 7, "records_written": 5, "requests_made": 9, "bogus": 1},
    )
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).one()
    assert (row.status, row.finish_reason) == ("finished", "finished")
    assert (row.items_completed, row.records_written, row.requests_made, row.items_failed) == (
        7,
        5,
        9,
        0,
    )
    assert row.finished_at >= row.started_at
    store.finish_run("0" * 32, status="failed", reason=None, counts={})  # unknown run: no error


def test_renewals_write_the_runs_heartbeat_which_run_states_read(store: StateStore) -> None:
    namespace = "b03b2d13-094b-4519-b67d-3a5a1c25e7b1/pid:[4026531836]"
    run_id = store.start_run(
        source_system=SYSTEM,
        source_name=NAME,
        worker_id="host",
        hostname="host",
        pid=123,
        pid_namespace=namespace,
    )
    other = store.start_run(
        source_system=SYSTEM, source_name=NAME, worker_id="host", hostname="host", pid=9
    )
    [started] = store.run_states([run_id])
    assert (started.status, started.pid, started.pid_namespace) == ("running", 123, namespace)
    runs = store.tables.runs
    long_ago = datetime(2026, 1, 1, 12, 0, 0)
    with store.engine.begin() as conn:
        conn.execute(sa.update(runs).values(heartbeat_at=long_ago))
    store.add_work_items([item("A")])
    [a] = claim(store, owner="me")
    before = utcnow()
    renewed = store.renew_leases(
        owner="me", claims={a.id: a.attempt}, lease_seconds=600, run_id=run_id
    )
    assert renewed == 1
    assert store.renew_leases(owner="me", claims={}, lease_seconds=600, run_id=run_id) == 0
    states = {state.run_id: state for state in store.run_states([other, run_id, "unknown"])}
    assert sorted(states) == sorted([run_id, other])
    assert states[run_id].last_seen >= before
    assert (states[other].last_seen, states[other].pid_namespace) == (long_ago, None)
    # A run from before the heartbeat column: its start stands for its last sign of life.
    with store.engine.begin() as conn:
        conn.execute(sa.update(runs).where(runs.c.run_id == other).values(heartbeat_at=None))
    [old] = store.run_states([other])
    with store.engine.connect() as conn:
        started_at = conn.execute(
            sa.select(runs.c.started_at).where(runs.c.run_id == other)
        ).scalar_one()
    assert old.last_seen == started_at
    assert store.run_states([]) == []


def test_create_tables_is_idempotent(store: StateStore) -> None:
    store.add_work_items([item("A")])
    store.create_tables()
    assert store.counts(source_system=SYSTEM, source_name=NAME)["pending"] == 1


def test_sqlite_file_directory_is_created(tmp_path: Path) -> None:
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'a' / 'b' / 'state.db'}", schema="ignored")
    try:
        assert store.tables.metadata.schema is None
        store.create_tables()
        assert (tmp_path / "a" / "b" / "state.db").is_file()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        store.dispose()


def test_canonical_json() -> None:
    assert (
        canonical_json({"b": [1, {"d": 1, "c": "é"}], "a": None})
        == '{"a":null,"b":[1,{"c":"é","d":1}]}'
    )


# -- concurrency --------------------------------------------------------------------------------


def _drain(store: StateStore, owner: str, barrier: threading.Barrier) -> list[int]:
    barrier.wait()
    got: list[int] = []
    while batch := claim(store, limit=7, owner=owner):
        got.extend(w.id for w in batch)
    return got


def test_parallel_claims_in_threads_are_disjoint(store: StateStore) -> None:
    store.add_work_items([item(f"P{i}") for i in range(500)])
    barrier = threading.Barrier(2)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(_drain, store, f"t{n}", barrier) for n in range(2)]
        first, second = (f.result(timeout=60) for f in futures)
    assert not set(first) & set(second)
    assert len(first) + len(second) == 500
    assert len(set(first) | set(second)) == 500
    assert store.counts(source_system=SYSTEM, source_name=NAME)["in_progress"] == 500


def test_parallel_adds_of_overlapping_batches(store: StateStore) -> None:
    barrier = threading.Barrier(4)

    def add(seed: int) -> int:
        ids = [f"P{i}" for i in range(400) if (i + seed) % 4 != 0]  # each misses a quarter
        random.Random(seed).shuffle(ids)
        barrier.wait()
        return sum(
            store.add_work_items([item(r) for r in ids[n : n + 100]]) for n in range(0, 300, 100)
        )

    with ThreadPoolExecutor(4) as pool:
        added = list(pool.map(add, range(4)))
    assert sum(added) == 400  # every key inserted exactly once, no errors, no deadlocks
    assert store.counts(source_system=SYSTEM, source_name=NAME)["pending"] == 400


def test_claim_skips_rows_locked_by_an_open_transaction(store: StateStore) -> None:
    if store.dialect_name == "sqlite":
        pytest.skip("SQLite has no row locks (one writer at a time)")
    store.add_work_items([item(f"P{i}") for i in range(20)])
    pool = ThreadPoolExecutor(1)
    conn = store.engine.connect()
    tx = conn.begin()
    try:
        held = store_leases.claim(
            conn,
            store.tables.work_items,
            source_system=SYSTEM,
            source_name=NAME,
            owner="A",
            run_id="run1",
            limit=5,
            lease_seconds=300,
        ).items
        assert len(held) == 5
        # B must not wait for A's uncommitted claim: it skips the locked rows.
        other = pool.submit(claim, store, 5, owner="B").result(timeout=10)
        assert len(other) == 5
        assert not {w.id for w in held} & {w.id for w in other}
    finally:
        tx.rollback()
        conn.close()
        pool.shutdown(wait=True)
    # A rolled back: its rows are claimable again.
    assert len(claim(store, owner="C")) == 15


_CLAIMER = """
import json, sys
from holocron_scrapy.store.state_store import StateStore
url, schema, owner = sys.argv[1:4]
store = StateStore.from_url(url, schema)
store.claim(source_system="none", source_name="none", owner=owner, run_id="r", limit=1,
            lease_seconds=1)  # connect before the start signal
print("ready", flush=True)
sys.stdin.readline()
got = []
while True:
    batch = store.claim(source_system=sys.argv[4], source_name=sys.argv[5], owner=owner,
                        run_id="r", limit=5, lease_seconds=300)
    if not batch:
        break
    got.extend(w.id for w in batch)
store.dispose()
print(json.dumps(got), flush=True)
"""


def test_parallel_claims_in_processes_are_disjoint(store: StateStore) -> None:
    if store.dialect_name == "sqlite":
        pytest.skip("the multi-process test runs on the server backends")
    store.add_work_items([item(f"P{i}") for i in range(500)])
    url = store.engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    schema = str(store.tables.metadata.schema)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, url, schema, f"p{n}", SYSTEM, NAME],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0
            results.append(set(json.loads(out)))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    first, second = results
    assert first
    assert second
    assert not first & second
    assert len(first | second) == 500
