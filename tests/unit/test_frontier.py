"""The Frontier extension on a real SQLite state database and a real mediawiki spider."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from scrapy import Request, Spider
from scrapy.exceptions import DontCloseSpider, NotConfigured
from scrapy.settings import Settings
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler

from holocron_scrapy.frontier.claiming import Phase
from holocron_scrapy.frontier.extension import CrawlStateError, Frontier, work_items_of
from holocron_scrapy.frontier.leases import dead_reason, pid_namespace
from holocron_scrapy.frontier.settings import state_store_from_settings
from holocron_scrapy.model import NewWorkItem, Outcome, Status, WorkItem
from holocron_scrapy.outage import short_error
from holocron_scrapy.store.state_store import RunState, StateStore, utcnow
from tests.unit.conftest import SEEDS, SOURCE_NAME, WORKER_ID, RecordingEngine, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from twisted.internet.task import Clock

    from tests.unit.conftest import Crawl

FRONTIER_LOGGER = "holocron_scrapy.frontier"  # the frontier package: the extension and its parts
#: The frontier's outages are logged by the module that tracks them.
OUTAGE_LOGGER = "holocron_scrapy.outage"
EMPTY_COUNTS = {status.value: 0 for status in Status}


@pytest.fixture(autouse=True)
def _log_everything(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="holocron_scrapy")


def read_only_store(crawl: Crawl) -> StateStore:
    """A second store on the crawl's SQLite file, opened read-only: its writes fail as those of
    an unreachable database do (``OperationalError``); disposed with the crawl."""
    database = crawl.tmp_path / "state" / "state.db"
    store = StateStore.from_url(f"sqlite:///file:{database}?mode=ro&uri=true")
    crawl.stores.append(store)
    return store


def frontier_logs(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        msg
        for name, lvl, msg in caplog.record_tuples
        if (name == OUTAGE_LOGGER or name.startswith(FRONTIER_LOGGER)) and lvl == level
    ]


# -- opening -------------------------------------------------------------------------------------


def test_spider_opened_seeds_once_and_records_the_run(
    make_crawl: Callable[..., Crawl], caplog: pytest.LogCaptureFixture
) -> None:
    first = make_crawl()
    asyncio.run(first.frontier.spider_opened(first.spider))

    assert first.stat("holocron/frontier/seeded") == 3
    assert first.counts() == {**EMPTY_COUNTS, "pending": 3}
    run_id = first.frontier.run_id
    assert len(run_id) == 32
    assert first.frontier.owner == f"{WORKER_ID}:{os.getpid()}:{run_id}"
    assert first.frontier.spider is first.spider
    rows = first.item_rows()
    assert sorted(rows) == sorted(SEEDS)
    assert {
        (r["status"], r["depth"], r["priority"], r["attempt"], r["run_id"]) for r in rows.values()
    } == {("pending", 0, 0, 0, run_id)}
    assert {r["dedupe_key"] for r in rows.values()} == {
        f"mediawiki:{SOURCE_NAME}:page:{title}" for title in SEEDS
    }
    [run] = first.rows("runs", order_by="started_at")
    assert run["run_id"] == run_id
    assert (run["source_system"], run["source_name"], run["worker_id"]) == (
        "mediawiki",
        SOURCE_NAME,
        WORKER_ID,
    )
    assert (run["hostname"], run["pid"], run["status"]) == (
        socket.gethostname(),
        os.getpid(),
        "running",
    )
    assert run["finished_at"] is None
    assert f"Run {run_id} of {SOURCE_NAME}: 3 of 3 seeds are new" in frontier_logs(
        caplog, logging.INFO
    )
    asyncio.run(first.frontier.spider_closed(first.spider, "finished"))

    # A second run of the same source adds no seed again, and records its own run.
    second = make_crawl()
    asyncio.run(second.frontier.spider_opened(second.spider))
    assert second.stat("holocron/frontier/seeded") == 0
    assert second.counts() == {**EMPTY_COUNTS, "pending": 3}
    assert second.frontier.run_id != run_id
    runs = second.rows("runs", order_by="started_at")
    assert [(r["run_id"], r["status"]) for r in runs] == [
        (run_id, "finished"),
        (second.frontier.run_id, "running"),
    ]
    assert f"Run {second.frontier.run_id} of {SOURCE_NAME}: 0 of 3 seeds are new" in frontier_logs(
        caplog, logging.INFO
    )
    asyncio.run(second.frontier.spider_closed(second.spider, "finished"))


def test_a_spider_without_the_frontier_protocol_is_left_alone(
    crawl: Crawl, caplog: pytest.LogCaptureFixture
) -> None:
    plain = Spider("plain")

    async def run() -> None:
        await crawl.frontier.spider_opened(plain)
        crawl.frontier.spider_idle(plain)  # no DontCloseSpider: not ours to keep open
        await crawl.frontier.spider_closed(plain, "finished")

    asyncio.run(run())
    assert crawl.frontier.spider is None
    assert frontier_logs(caplog, logging.INFO) == ["Spider plain does not use the SQL frontier"]
    assert not (crawl.tmp_path / "state" / "state.db").exists()


def test_an_unusable_database_closes_the_spider(
    make_crawl: Callable[..., Crawl], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a-directory").mkdir()
    url = f"sqlite:///{tmp_path / 'a-directory'}"
    crawl = make_crawl({"HOLOCRON_DB_URL": url})
    engine = RecordingEngine()
    crawl.crawler.engine = engine  # type: ignore[assignment]

    async def run() -> None:
        await crawl.frontier.spider_opened(crawl.spider)
        await wait_for(lambda: bool(engine.close_reasons))

    asyncio.run(run())
    assert engine.close_reasons == ["state_database_error"]
    assert crawl.frontier.spider is None
    assert frontier_logs(caplog, logging.ERROR) == [
        f"Cannot use the state database {url}: OperationalError: unable to open database file"
    ]


# -- claims --------------------------------------------------------------------------------------


def test_claim_batch_claims_by_priority_then_id_and_marks_in_flight(
    make_crawl: Callable[..., Crawl],
) -> None:
    # Depth first: deeper items get the higher priority, so they come before the older seeds.
    crawl = make_crawl({"HOLOCRON_CLAIM_SIZE": 4}, strategy="depth")
    frontier, spider = crawl.frontier, crawl.spider

    async def run() -> list[list[WorkItem]]:
        await frontier.spider_opened(spider)
        frontier.discover(spider.new_work_item("Mid", 1, None))
        frontier.discover(spider.new_work_item("Deep", 2, None))
        return [await frontier.claim_batch() for _ in range(3)]

    first, second, third = asyncio.run(run())
    rows = crawl.item_rows()
    seeds_by_id = sorted(SEEDS, key=lambda title: rows[title]["id"])
    assert [i.resource_id for i in first] == ["Deep", "Mid", *seeds_by_id[:2]]
    assert [i.priority for i in first] == [2, 1, 0, 0]
    assert [i.resource_id for i in second] == seeds_by_id[2:]
    assert third == []
    assert frontier.in_flight == {row["id"] for row in rows.values()}
    assert all(frontier.is_claimed(item) for item in first + second)
    assert crawl.stat("holocron/frontier/claimed") == 5
    assert {(r["status"], r["attempt"], r["lease_owner"], r["run_id"]) for r in rows.values()} == {
        ("in_progress", 1, frontier.owner, frontier.run_id)
    }
    assert all(r["lease_expires_at"] is not None for r in rows.values())
    assert first[0] == WorkItem(
        rows["Deep"]["id"], "mediawiki", SOURCE_NAME, "page", "Deep", 2, 2, 1, None
    )
    assert not frontier.done()  # five items in flight


# -- buffered writes -----------------------------------------------------------------------------


def test_discover_keeps_the_smallest_depth_until_flush(crawl: Crawl) -> None:
    frontier, spider = crawl.frontier, crawl.spider

    async def run() -> dict[str, int]:
        await frontier.spider_opened(spider)
        seed = (await frontier.claim_batch())[0]
        frontier.discover(spider.new_work_item("Ahsoka Tano", 2, seed))
        frontier.discover(spider.new_work_item("Ahsoka Tano", 1, seed))
        frontier.discover(spider.new_work_item("Ahsoka Tano", 3, None))
        frontier.discover(spider.new_work_item("Chopper", 1, seed))
        frontier.discover(spider.new_work_item(SEEDS[1], 1, seed))  # known at depth 0
        before = crawl.counts()
        await frontier.flush()
        return before

    before = asyncio.run(run())
    assert before == {**EMPTY_COUNTS, "in_progress": 3}  # nothing written before the flush
    rows = crawl.item_rows()
    ahsoka = rows["Ahsoka Tano"]
    assert (ahsoka["status"], ahsoka["depth"], ahsoka["priority"]) == ("pending", 1, -1)
    assert ahsoka["discovered_from"] == min(r["id"] for r in rows.values())  # the claimed seed
    assert ahsoka["run_id"] == crawl.frontier.run_id
    assert (rows["Chopper"]["depth"], rows[SEEDS[1]]["depth"]) == (1, 0)
    assert crawl.stat("holocron/frontier/discovered_new") == 2
    assert crawl.counts() == {**EMPTY_COUNTS, "in_progress": 3, "pending": 2}


def test_discover_flushes_by_itself_at_flush_size(make_crawl: Callable[..., Crawl]) -> None:
    crawl = make_crawl({"HOLOCRON_FLUSH_SIZE": 2})
    frontier, spider = crawl.frontier, crawl.spider

    async def run() -> None:
        await frontier.spider_opened(spider)
        frontier.discover(spider.new_work_item("Chopper", 1, None))
        await asyncio.sleep(0.05)
        assert crawl.counts()["pending"] == 3  # one buffered item: below the flush size
        frontier.discover(spider.new_work_item("Zeb Orrelios", 1, None))
        await wait_for(lambda: crawl.stat("holocron/frontier/discovered_new") == 2)

    asyncio.run(run())
    assert crawl.counts()["pending"] == 5


def test_buffered_state_is_flushed_every_flush_interval(crawl: Crawl, clock: Clock) -> None:
    frontier, spider = crawl.frontier, crawl.spider

    async def run() -> None:
        await frontier.spider_opened(spider)
        frontier.discover(spider.new_work_item("Chopper", 1, None))
        clock.advance(0.9)
        await asyncio.sleep(0.05)
        assert crawl.stat("holocron/frontier/discovered_new") is None
        clock.advance(0.1)  # HOLOCRON_FLUSH_INTERVAL = 1.0
        await wait_for(lambda: crawl.stat("holocron/frontier/discovered_new") == 1)
        await frontier.spider_closed(spider, "finished")

    asyncio.run(run())
    assert crawl.counts()["pending"] == 4
    assert clock.getDelayedCalls() == []  # the periodic flush stopped at close


def test_finish_and_fail_are_written_at_flush(crawl: Crawl) -> None:
    frontier = crawl.frontier
    items: list[WorkItem] = []

    async def run() -> dict[str, int]:
        await frontier.spider_opened(crawl.spider)
        items.extend(await frontier.claim_batch())
        frontier.finish(Outcome(items[0].id, Status.SKIPPED, "missing: the page does not exist"))
        frontier.fail([items[1]], "HTTP 500 from http://127.0.0.1:8091/api.php")
        before = crawl.counts()
        await frontier.flush()
        return before

    start = utcnow()
    before = asyncio.run(run())
    assert before == {**EMPTY_COUNTS, "in_progress": 3}
    assert frontier.in_flight == {items[2].id}
    # Attempt 1 of HOLOCRON_MAX_ATTEMPTS=3 failed: tried again later, not counted as failed.
    assert (
        crawl.stat("holocron/work_items/skipped"),
        crawl.stat("holocron/work_items/failed"),
        crawl.stat("holocron/work_items/retry_scheduled"),
    ) == (1, None, 1)
    skipped, failed, claimed = (crawl.store.work_item(item.id) for item in items)
    assert skipped is not None
    assert failed is not None
    assert claimed is not None
    assert (skipped["status"], skipped["error_message"]) == (
        "skipped",
        "missing: the page does not exist",
    )
    assert skipped["finished_at"] is not None
    assert (failed["status"], failed["error_message"], failed["finished_at"]) == (
        "pending",
        "HTTP 500 from http://127.0.0.1:8091/api.php",
        None,
    )
    # HOLOCRON_RETRY_BACKOFF=30 s: attempt 1 waits 15 to 30 s.
    assert start + timedelta(seconds=15) <= failed["next_retry_at"]
    assert failed["next_retry_at"] <= utcnow() + timedelta(seconds=30)
    for row in (skipped, failed):
        assert (row["lease_owner"], row["lease_expires_at"]) == (None, None)
    assert claimed["status"] == "in_progress"


def test_the_last_attempt_fails_for_good(make_crawl: Callable[..., Crawl]) -> None:
    crawl = make_crawl({"HOLOCRON_MAX_ATTEMPTS": 1})
    frontier = crawl.frontier
    assert frontier.retry.max_attempts == 1

    async def run() -> list[WorkItem]:
        await frontier.spider_opened(crawl.spider)
        items = await frontier.claim_batch()
        frontier.fail(items, "boom")
        await frontier.flush()
        return items

    items = asyncio.run(run())
    assert crawl.stat("holocron/work_items/failed") == 3
    for item in items:
        row = crawl.store.work_item(item.id)
        assert row is not None
        assert (row["status"], row["error_message"], row["next_retry_at"]) == (
            "failed",
            "boom",
            None,
        )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"HOLOCRON_MAX_ATTEMPTS": 0}, "max_attempts must be at least 1"),
        ({"HOLOCRON_RETRY_BACKOFF": -1}, "must not be negative"),
    ],
)
def test_bad_retry_settings_are_refused(
    tmp_path: Path, settings: dict[str, int], message: str
) -> None:
    crawler = get_crawler(
        settings_dict={
            "HOLOCRON_DB_URL": f"sqlite:///{tmp_path / 's.db'}",
            **settings,
        }
    )
    with pytest.raises(NotConfigured, match=message):
        Frontier.from_crawler(crawler)


def test_an_unreachable_database_keeps_the_buffers_and_is_logged_once_per_outage(
    crawl: Crawl, caplog: pytest.LogCaptureFixture
) -> None:
    frontier, spider = crawl.frontier, crawl.spider
    read_only = read_only_store(crawl)
    items: list[WorkItem] = []

    async def run() -> None:
        await frontier.spider_opened(spider)
        items.extend(await frontier.claim_batch())
        writable, frontier.store = frontier.store, read_only
        frontier.discover(spider.new_work_item("Chopper", 1, items[0]))
        frontier.fail([items[0]], "boom")
        assert not await frontier.flush()
        assert crawl.stat("holocron/frontier/write_errors") == 1
        assert not frontier.done()  # the discovery is still to be written
        assert frontier.db_outage.active
        assert not await frontier.flush()  # within the back-off: not even tried
        assert crawl.stat("holocron/frontier/write_errors") == 1
        frontier.db_outage.next_try = 0.0  # the back-off is over
        assert not await frontier.flush()  # still read-only: kept again, not logged again
        assert crawl.stat("holocron/frontier/write_errors") == 2
        assert frontier.db_outage.delay() == 1.0  # 0.5 s doubled
        frontier.store = writable
        frontier.db_outage.next_try = 0.0
        assert await frontier.flush()
        assert not frontier.db_outage.active

    asyncio.run(run())
    assert frontier_logs(caplog, logging.WARNING) == [
        "State database unreachable (OperationalError: attempt to write a readonly database); "
        "retrying, with back-off up to 5 s, for up to 3600 s"
    ]
    [back] = [m for m in frontier_logs(caplog, logging.INFO) if "reachable again" in m]
    assert back.startswith("State database reachable again after ")
    assert back.endswith(" s (2 tries)")
    assert crawl.stat("holocron/outage/database/count") == 1
    assert crawl.stat("holocron/outage/database/seconds") is not None
    assert crawl.stat("holocron/frontier/discovered_new") == 1
    rows = crawl.item_rows()
    assert (rows["Chopper"]["status"], rows["Chopper"]["depth"]) == ("pending", 1)
    retried = rows[items[0].resource_id]
    assert (retried["status"], retried["error_message"]) == ("pending", "boom")


def test_commit_records_waits_for_the_database_then_writes_once(
    crawl: Crawl, caplog: pytest.LogCaptureFixture
) -> None:
    frontier, spider = crawl.frontier, crawl.spider
    read_only = read_only_store(crawl)

    async def run() -> None:
        await frontier.spider_opened(spider)
        items = await frontier.claim_batch()
        store = frontier.store
        writable, store.engine = store.engine, read_only.engine
        completion = Outcome.completed(items[0], "ab" * 32)
        commit = asyncio.ensure_future(frontier.commit_records([], [completion]))
        await wait_for(lambda: crawl.stat("holocron/outage/database/count") == 1)
        await asyncio.sleep(0.7)
        assert not commit.done()  # waiting for the database, the item with it
        store.engine = writable
        await asyncio.wait_for(commit, 15)

    asyncio.run(run())
    assert crawl.stat("holocron/work_items/completed") == 1
    assert crawl.counts() == {**EMPTY_COUNTS, "completed": 1, "in_progress": 2}
    assert any("reachable again" in m for m in frontier_logs(caplog, logging.INFO))


def test_commit_records_writes_buffered_discoveries_before_completing(crawl: Crawl) -> None:
    frontier, spider = crawl.frontier, crawl.spider
    items: list[WorkItem] = []

    async def run() -> None:
        await frontier.spider_opened(spider)
        items.extend(await frontier.claim_batch())
        frontier.discover(spider.new_work_item("Chopper", 1, items[0]))
        await frontier.commit_records([], [Outcome(items[0].id, Status.COMPLETED, None, "ab" * 32)])

    asyncio.run(run())
    rows = crawl.item_rows()
    assert (rows["Chopper"]["status"], rows["Chopper"]["discovered_from"]) == (
        "pending",
        items[0].id,
    )
    done = rows[items[0].resource_id]
    assert (done["status"], done["content_hash"]) == ("completed", "ab" * 32)
    assert frontier.in_flight == {items[1].id, items[2].id}
    assert crawl.stat("holocron/work_items/completed") == 1
    assert crawl.stat("holocron/records/written") == 0
    assert crawl.stat("holocron/frontier/discovered_new") == 1


def test_a_page_is_not_completed_while_its_links_are_unwritten(crawl: Crawl) -> None:
    frontier, spider = crawl.frontier, crawl.spider
    items: list[WorkItem] = []

    def rename(old: str, new: str) -> None:
        with crawl.store.engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))

    async def run() -> None:
        await frontier.spider_opened(spider)
        items.extend(await frontier.claim_batch())
        # A real write failure, neither an outage nor a row the database refuses for its data
        # (such a row alone is dropped, see test_refused_values): the queue table is away.
        rename("work_items", "work_items_away")
        frontier.discover(spider.new_work_item("Chopper", 1, items[0]))
        completion = Outcome(items[0].id, Status.COMPLETED, content_hash="ef" * 32)
        with pytest.raises(CrawlStateError, match=r"links not queued"):
            await frontier.commit_records([], [completion])
        rename("work_items_away", "work_items")
        assert frontier.is_claimed(items[0])
        assert crawl.item_rows()[items[0].resource_id]["status"] == "in_progress"
        # Once the queue takes writes again, the links go first, then the page completes.
        await frontier.commit_records([], [completion])

    asyncio.run(run())
    assert crawl.stat("holocron/frontier/write_errors") == 1
    assert crawl.stat("holocron/work_items/completed") == 1
    rows = crawl.item_rows()
    assert rows["Chopper"]["status"] == "pending"
    assert (rows[items[0].resource_id]["status"], rows[items[0].resource_id]["content_hash"]) == (
        "completed",
        "ef" * 32,
    )


def test_claims_of_dead_runs_are_released_at_start_and_live_runs_keep_theirs(
    crawl: Crawl, caplog: pytest.LogCaptureFixture
) -> None:
    """Runs are judged by their heartbeat (and, in this very pid namespace, by their process),
    never by a host name and a pid: a twin in another container with the same host name and
    pid keeps its claims while it heartbeats."""
    stopped = subprocess.Popen([sys.executable, "-c", "pass"])
    stopped.wait()
    store = StateStore.from_url(crawl.frontier.store.engine.url)
    crawl.stores.append(store)
    store.create_tables()
    extra = [NewWorkItem("mediawiki", SOURCE_NAME, "page", f"Extra {n}") for n in range(4)]
    store.add_work_items([*crawl.spider.seed_work_items(), *extra])
    here = pid_namespace()
    assert here is not None
    elsewhere = "5b0c7c4e-0000-4000-8000-000000000000/pid:[4026532999]"  # another container
    long_ago = utcnow() - timedelta(seconds=crawl.frontier.leases.dead_after_seconds + 60)
    runs: dict[str, tuple[int, str, Any, str]] = {  # pid, namespace, heartbeat, status
        "twin": (os.getpid(), elsewhere, None, "running"),  # heartbeating: alive
        "silent twin": (os.getpid(), elsewhere, long_ago, "running"),  # dead
        "stopped": (stopped.pid, here, None, "running"),  # here, its process gone: dead
        "live": (os.getppid(), here, None, "running"),  # here, its process alive
        "ended": (os.getppid(), here, None, "cancelled"),  # left claims behind: dead
    }
    claimed: dict[str, WorkItem] = {}
    owners: dict[str, str] = {}
    rt = store.tables.runs
    for name, (pid, namespace, heartbeat, status) in runs.items():
        run_id = store.start_run(
            source_system="mediawiki",
            source_name=SOURCE_NAME,
            worker_id=WORKER_ID,
            hostname=socket.gethostname(),
            pid=pid,
            pid_namespace=namespace,
        )
        values = {"status": status} if heartbeat is None else {"heartbeat_at": heartbeat}
        with store.engine.begin() as conn:
            conn.execute(sa.update(rt).where(rt.c.run_id == run_id).values(**values))
        owners[name] = f"{WORKER_ID}:{pid}:{run_id}"
        [claimed[name]] = store.claim(
            source_system="mediawiki",
            source_name=SOURCE_NAME,
            owner=owners[name],
            run_id=run_id,
            limit=1,
            lease_seconds=600,
        )
    [unknown] = store.claim(  # an owner without a runs row: left to its lease
        source_system="mediawiki",
        source_name=SOURCE_NAME,
        owner="elsewhere:1:norow",
        run_id="norow",
        limit=1,
        lease_seconds=600,
    )

    async def run() -> list[WorkItem]:
        await crawl.frontier.spider_opened(crawl.spider)
        return await crawl.frontier.claim_batch()

    reclaimed = asyncio.run(run())
    dead = ["silent twin", "stopped", "ended"]
    assert crawl.stat("holocron/frontier/released_dead") == len(dead)
    released = sorted(m for m in frontier_logs(caplog, logging.INFO) if "of the dead run" in m)
    reasons = {
        "silent twin": "no heartbeat for",
        "stopped": f"its process {stopped.pid} on this machine has stopped",
        "ended": "it ended (cancelled)",
    }
    assert len(released) == len(dead)
    for name in dead:
        [line] = [m for m in released if f"({owners[name]})" in m]
        assert line.startswith("Released 1 claims of the dead run")
        assert reasons[name] in line
    # Released without counting the dead run's attempt, then claimed by this run.
    mine = {i.id: i.attempt for i in reclaimed}
    assert {claimed[name].id: mine.get(claimed[name].id) for name in dead} == {
        claimed[name].id: 1 for name in dead
    }
    rows = {row["id"]: row for row in crawl.rows("work_items")}
    assert {name: rows[claimed[name].id]["lease_owner"] for name in runs} == {
        "twin": owners["twin"],
        "silent twin": crawl.frontier.owner,
        "stopped": crawl.frontier.owner,
        "live": owners["live"],
        "ended": crawl.frontier.owner,
    }
    assert rows[unknown.id]["lease_owner"] == "elsewhere:1:norow"


def test_a_run_is_dead_once_its_heartbeat_is_older_than_the_limit() -> None:
    """On a clock the test sets: silent for more than ``dead_after`` seconds is dead; within
    it, a run is alive unless its process is gone from this very pid namespace."""
    seen = datetime(2026, 1, 1, 12, 0, 0)
    run = RunState("r1", "running", "crawler", 7, "boot/pid:[1]", last_seen=seen)

    def reason(after: float, namespace: str, *, alive: bool = True) -> str | None:
        return dead_reason(
            run,
            now=seen + timedelta(seconds=after),
            dead_after=1200,
            namespace=namespace,
            alive=lambda pid: alive,
        )

    assert reason(1199, "boot/pid:[2]") is None
    assert reason(1201, "boot/pid:[2]") == "no heartbeat for 1201 s"
    assert reason(1, "boot/pid:[2]", alive=False) is None  # another namespace: pid means nothing
    assert reason(1, "boot/pid:[1]") is None
    assert reason(1, "boot/pid:[1]", alive=False) == "its process 7 on this machine has stopped"
    ended = dataclasses.replace(run, status="finished")
    assert dead_reason(ended, now=seen, dead_after=1200, namespace=None) == "it ended (finished)"


def test_the_renewal_loop_writes_the_heartbeat_even_with_nothing_in_flight(crawl: Crawl) -> None:
    frontier, spider = crawl.frontier, crawl.spider
    rt = crawl.store.tables.runs
    long_ago = utcnow() - timedelta(hours=1)

    async def run() -> None:
        await frontier.spider_opened(spider)
        assert frontier.in_flight == set()
        with crawl.store.engine.begin() as conn:
            conn.execute(sa.update(rt).values(heartbeat_at=long_ago))
        before = utcnow()
        assert await frontier.renew_leases() == 0
        [row] = crawl.rows("runs", order_by="run_id")
        assert row["heartbeat_at"] >= before
        assert row["pid_namespace"] == pid_namespace()
        await frontier.spider_closed(spider, "shutdown")

    asyncio.run(run())


# -- idle and close ------------------------------------------------------------------------------


def test_spider_idle_keeps_the_spider_open_until_done(
    crawl: Crawl, caplog: pytest.LogCaptureFixture
) -> None:
    frontier, spider = crawl.frontier, crawl.spider
    engine = RecordingEngine()
    crawl.crawler.engine = engine  # type: ignore[assignment]

    def claims_logged(n: int) -> Callable[[], bool]:
        return lambda: caplog.messages.count(f"Claimed {n} work items") >= 1

    async def run() -> None:
        await frontier.spider_opened(spider)
        # Nothing claimed yet: the queue may hold work.
        with pytest.raises(DontCloseSpider):
            frontier.spider_idle(spider)
        await wait_for(lambda: len(engine.requests) == 1)
        [request] = engine.requests
        items = work_items_of(request)
        assert sorted(i.resource_id for i in items) == sorted(SEEDS)
        assert frontier.in_flight == {i.id for i in items}

        # Work in flight: stay open (the claim made now finds nothing more).
        with pytest.raises(DontCloseSpider):
            frontier.spider_idle(spider)
        await wait_for(claims_logged(0))
        assert engine.requests == [request]

        # All done, once the outcomes are written (a failure could be retried): the spider may
        # close.
        for item in items:
            frontier.finish(Outcome(item.id, Status.COMPLETED))
        assert not frontier.done()
        assert await frontier.claim_batch() == []  # writes them, finds nothing more
        assert frontier.done()
        assert frontier.spider_idle(spider) is None

        # A discovery makes work again: stay open, flush it and claim it.
        frontier.discover(spider.new_work_item("Chopper", 1, items[0]))
        assert not frontier.done()
        with pytest.raises(DontCloseSpider):
            frontier.spider_idle(spider)
        await wait_for(lambda: len(engine.requests) == 2)
        assert [i.resource_id for i in work_items_of(engine.requests[1])] == ["Chopper"]
        frontier.finish(Outcome(work_items_of(engine.requests[1])[0].id, Status.COMPLETED))

        # The last claim found work, so idle claims once more; finding nothing, it closes.
        with pytest.raises(DontCloseSpider):
            frontier.spider_idle(spider)
        await wait_for(lambda: engine.close_reasons == ["finished"])
        await frontier.spider_closed(spider, "finished")

    asyncio.run(run())
    assert crawl.counts() == {**EMPTY_COUNTS, "completed": 4}
    [run_row] = crawl.rows("runs", order_by="started_at")
    assert (run_row["status"], run_row["finish_reason"], run_row["items_completed"]) == (
        "finished",
        "finished",
        4,
    )


def test_items_still_in_flight_when_the_queue_is_exhausted_are_failed(
    make_crawl: Callable[..., Crawl], caplog: pytest.LogCaptureFixture
) -> None:
    crawl = make_crawl({"HOLOCRON_MAX_ATTEMPTS": 1})
    frontier, spider = crawl.frontier, crawl.spider
    engine = RecordingEngine()
    crawl.crawler.engine = engine  # type: ignore[assignment]

    async def run() -> None:
        await frontier.spider_opened(spider)
        assert len(await frontier.claim_batch()) == 3
        assert await frontier.claim_batch() == []  # exhausted; the three requests never ended
        with pytest.raises(DontCloseSpider):  # failed; the claim made now writes that
            frontier.spider_idle(spider)
        assert frontier.in_flight == set()
        await wait_for(lambda: engine.close_reasons == ["finished"])
        assert frontier.done()
        await frontier.spider_closed(spider, "finished")

    asyncio.run(run())
    assert crawl.stat("holocron/frontier/lost_in_flight") == 3
    assert crawl.stat("holocron/work_items/failed") == 3
    assert "3 claimed work items were dropped in flight" in frontier_logs(caplog, logging.WARNING)
    assert {(r["status"], r["error_message"]) for r in crawl.item_rows().values()} == {
        ("failed", "request dropped in flight")
    }
    [run_row] = crawl.rows("runs", order_by="started_at")
    assert (run_row["status"], run_row["items_failed"]) == ("finished", 3)


def test_spider_closed_releases_unfinished_claims_and_cancels_the_run(
    crawl: Crawl, caplog: pytest.LogCaptureFixture
) -> None:
    frontier, spider = crawl.frontier, crawl.spider
    items: list[WorkItem] = []

    async def run() -> None:
        await frontier.spider_opened(spider)
        items.extend(await frontier.claim_batch())
        frontier.finish(Outcome(items[0].id, Status.SKIPPED, "missing: the page does not exist"))
        frontier.discover(spider.new_work_item("Chopper", 1, items[0]))
        await frontier.spider_closed(spider, "shutdown")

    asyncio.run(run())
    assert frontier.in_flight == set()
    assert crawl.stat("holocron/frontier/released") == 2
    assert "Released 2 unfinished claims back to the queue (shutdown)" in frontier_logs(
        caplog, logging.INFO
    )
    rows = crawl.item_rows()
    assert rows[items[0].resource_id]["status"] == "skipped"  # buffered outcome flushed at close
    assert rows["Chopper"]["status"] == "pending"  # buffered discovery flushed at close
    for item in items[1:]:
        row = rows[item.resource_id]
        # Released: back to pending, the claim not counted as an attempt.
        assert (row["status"], row["attempt"], row["lease_owner"], row["lease_expires_at"]) == (
            "pending",
            0,
            None,
            None,
        )
    [run_row] = crawl.rows("runs", order_by="started_at")
    assert (run_row["status"], run_row["finish_reason"]) == ("cancelled", "shutdown")
    assert run_row["finished_at"] is not None
    assert (run_row["items_skipped"], run_row["items_discovered"], run_row["items_completed"]) == (
        1,
        1,
        0,
    )


def test_a_claim_under_way_at_close_leaves_no_item_leased(crawl: Crawl) -> None:
    frontier, spider = crawl.frontier, crawl.spider
    engine = RecordingEngine()
    crawl.crawler.engine = engine  # type: ignore[assignment]

    async def run() -> None:
        await frontier.spider_opened(spider)
        with pytest.raises(DontCloseSpider):
            frontier.spider_idle(spider)  # starts a claim in the background
        await frontier.spider_closed(spider, "shutdown")  # the crawl is stopped meanwhile
        await wait_for(lambda: not frontier.loop.claiming)

    asyncio.run(run())
    [run_row] = crawl.rows("runs", order_by="started_at")
    assert run_row["status"] == "cancelled"
    assert crawl.counts() == {**EMPTY_COUNTS, "pending": 3}


def test_a_close_that_cannot_write_the_buffers_leaves_the_run_open(
    crawl: Crawl, caplog: pytest.LogCaptureFixture
) -> None:
    frontier, spider = crawl.frontier, crawl.spider
    database = crawl.tmp_path / "state" / "state.db"
    read_only = StateStore.from_url(f"sqlite:///file:{database}?mode=ro&uri=true")
    crawl.stores.append(crawl.store)  # disposed by the fixture: the frontier gets the other one

    async def run() -> None:
        await frontier.spider_opened(spider)
        items = await frontier.claim_batch()
        frontier.fail([items[0]], "boom")
        frontier.store = read_only
        await frontier.spider_closed(spider, "finished")

    asyncio.run(run())
    assert frontier_logs(caplog, logging.ERROR) == [
        f"Could not record the end of run {frontier.run_id} (RuntimeError: 0 discoveries and 1 "
        "outcomes could not be written): its unfinished claims go back to the queue when their "
        "lease expires, or at once when this worker starts again"
    ]
    # Nothing was recorded as finished or released: the claims stay with the (ended) run.
    [run_row] = crawl.rows("runs", order_by="started_at")
    assert (run_row["status"], run_row["finished_at"]) == ("running", None)
    assert crawl.counts() == {**EMPTY_COUNTS, "in_progress": 3}
    assert crawl.stat("holocron/frontier/released") is None


def test_a_retry_due_within_the_wait_limit_keeps_the_crawl_open_until_claimed(
    make_crawl: Callable[..., Crawl], caplog: pytest.LogCaptureFixture
) -> None:
    crawl = make_crawl({"HOLOCRON_RETRY_BACKOFF": 0.4}, seeds=["Ahsoka Tano"])
    frontier, spider = crawl.frontier, crawl.spider
    engine = RecordingEngine()
    crawl.crawler.engine = engine  # type: ignore[assignment]

    async def run() -> None:
        await frontier.spider_opened(spider)
        [item] = await frontier.claim_batch()
        frontier.fail([item], "HTTP 404")
        assert not frontier.done()  # the failure may be retried
        assert await frontier.claim_batch() == []  # written; the retry is not due yet
        assert frontier.loop.phase is Phase.WAITING
        assert not frontier.done()
        with pytest.raises(DontCloseSpider):
            frontier.spider_idle(spider)
        await wait_for(lambda: len(engine.requests) == 1)  # claimed again when due
        [again] = work_items_of(engine.requests[0])
        assert (again.id, again.attempt) == (item.id, 2)
        await frontier.spider_closed(spider, "shutdown")

    asyncio.run(run())
    assert any(
        m.startswith("Nothing to claim now: 0 items in flight with other workers, 1 scheduled")
        for m in frontier_logs(caplog, logging.INFO)
    )
    assert crawl.stat("holocron/frontier/waits") == 1


def test_a_retry_due_after_the_wait_limit_ends_the_crawl_saying_when(
    make_crawl: Callable[..., Crawl], caplog: pytest.LogCaptureFixture
) -> None:
    crawl = make_crawl(
        {"HOLOCRON_RETRY_BACKOFF": 1000, "HOLOCRON_RETRY_WAIT_MAX": 60}, seeds=["Ahsoka Tano"]
    )
    frontier, spider = crawl.frontier, crawl.spider

    async def run() -> None:
        await frontier.spider_opened(spider)
        [item] = await frontier.claim_batch()
        frontier.fail([item], "HTTP 404")
        assert await frontier.claim_batch() == []
        assert frontier.done()
        await frontier.spider_closed(spider, "finished")

    asyncio.run(run())
    [line] = [m for m in frontier_logs(caplog, logging.INFO) if "scheduled for another" in m]
    assert line.startswith("1 failed work items are scheduled for another attempt, the first at ")
    assert "more than HOLOCRON_RETRY_WAIT_MAX=60 s): not waiting; run the crawl again" in line
    assert crawl.stat("holocron/frontier/retries_left_scheduled") == 1
    assert crawl.counts() == {**EMPTY_COUNTS, "pending": 1}


def test_a_worker_with_nothing_to_claim_waits_while_others_hold_live_leases(
    make_crawl: Callable[..., Crawl], caplog: pytest.LogCaptureFixture
) -> None:
    crawl = make_crawl({"HOLOCRON_IDLE_POLL": 0.2})
    frontier, spider = crawl.frontier, crawl.spider
    engine = RecordingEngine()
    crawl.crawler.engine = engine  # type: ignore[assignment]
    other = crawl.store

    async def run() -> None:
        await frontier.spider_opened(spider)
        theirs = await asyncio.to_thread(
            other.claim,
            source_system="mediawiki",
            source_name=SOURCE_NAME,
            owner="elsewhere:1:run",
            run_id="run",
            limit=10,
            lease_seconds=600,
        )
        assert len(theirs) == 3
        assert await frontier.claim_batch() == []
        # They may discover more, or die and leave their items.
        assert frontier.loop.phase is Phase.WAITING
        # The other worker discovers a page and ends its items.
        await asyncio.to_thread(
            other.add_work_items, [spider.new_work_item("Chopper", 1, theirs[0])]
        )
        await asyncio.to_thread(
            other.finish_items,
            [Outcome(w.id, Status.COMPLETED) for w in theirs],
            owner="elsewhere:1:run",
        )
        await wait_for(lambda: len(engine.requests) == 1)  # polled, and claimed the discovery
        [chopper] = work_items_of(engine.requests[0])
        assert chopper.resource_id == "Chopper"
        frontier.finish(Outcome(chopper.id, Status.COMPLETED))
        with pytest.raises(DontCloseSpider):
            frontier.spider_idle(spider)
        await wait_for(lambda: engine.close_reasons == ["finished"])  # nothing anywhere: ends
        await frontier.spider_closed(spider, "finished")

    asyncio.run(run())
    assert any(
        m.startswith("Nothing to claim now: 3 items in flight with other workers")
        for m in frontier_logs(caplog, logging.INFO)
    )
    assert crawl.counts() == {**EMPTY_COUNTS, "completed": 4}


def test_an_outcome_for_a_lease_taken_over_is_dropped_counted_and_logged_once(
    crawl: Crawl, caplog: pytest.LogCaptureFixture
) -> None:
    frontier, spider = crawl.frontier, crawl.spider

    async def run() -> list[WorkItem]:
        await frontier.spider_opened(spider)
        items = await frontier.claim_batch()
        wi = crawl.store.tables.work_items
        with crawl.store.engine.begin() as conn:  # the lease expired; another worker took it
            conn.execute(
                sa.update(wi)
                .where(wi.c.id.in_([i.id for i in items[:2]]))
                .values(lease_owner="elsewhere:1:run")
            )
        for item in items[:2]:
            await frontier.commit_records([], [Outcome.completed(item, "ab" * 32)])
        await frontier.commit_records([], [Outcome.completed(items[2], "cd" * 32)])
        return items

    items = asyncio.run(run())
    assert crawl.stat("holocron/outcomes/stale_lease") == 2
    assert crawl.stat("holocron/work_items/completed") == 1
    stale = [m for m in frontier_logs(caplog, logging.WARNING) if "no longer holds" in m]
    assert len(stale) == 1
    rows = crawl.item_rows()
    assert [rows[i.resource_id]["status"] for i in items] == [
        "in_progress",
        "in_progress",
        "completed",
    ]
    assert frontier.in_flight == set()


def test_leases_in_flight_are_renewed_every_third_of_the_lease(
    make_crawl: Callable[..., Crawl], clock: Clock
) -> None:
    crawl = make_crawl({"HOLOCRON_LEASE_SECONDS": 3, "HOLOCRON_FLUSH_INTERVAL": 0.1})
    frontier, spider = crawl.frontier, crawl.spider

    async def run() -> None:
        await frontier.spider_opened(spider)
        items = await frontier.claim_batch()
        first = crawl.store.work_item(items[0].id)
        assert first is not None
        await asyncio.sleep(1.1)
        clock.advance(0.1)  # the periodic flush, past a third of the lease: renews
        await wait_for(lambda: crawl.stat("holocron/frontier/leases_renewed") == 3)
        renewed = crawl.store.work_item(items[0].id)
        assert renewed is not None
        assert renewed["lease_expires_at"] > first["lease_expires_at"]
        await frontier.spider_closed(spider, "shutdown")

    asyncio.run(run())


def test_claims_taken_over_while_the_process_stalled_are_given_up_at_renewal(
    crawl: Crawl, caplog: pytest.LogCaptureFixture
) -> None:
    frontier, spider = crawl.frontier, crawl.spider

    async def run() -> list[WorkItem]:
        await frontier.spider_opened(spider)
        items = await frontier.claim_batch()
        wi = crawl.store.tables.work_items
        with crawl.store.engine.begin() as conn:  # expired during a stall; another worker's now
            conn.execute(
                sa.update(wi)
                .where(wi.c.id.in_([i.id for i in items[:2]]))
                .values(lease_owner="elsewhere:1:run")
            )
        assert await frontier.renew_leases() == 1
        await frontier.spider_closed(spider, "shutdown")
        return items

    items = asyncio.run(run())
    assert crawl.stat("holocron/frontier/claims_lost") == 2
    assert frontier.in_flight == set()  # the third was released at close
    [line] = [m for m in frontier_logs(caplog, logging.WARNING) if m.startswith("Lost the claims")]
    assert line.startswith("Lost the claims of 2 work items")
    rows = crawl.item_rows()
    assert [rows[i.resource_id]["lease_owner"] for i in items[:2]] == ["elsewhere:1:run"] * 2


def test_a_claim_made_while_renewal_checks_the_leases_is_kept(crawl: Crawl) -> None:
    """Renewal finds a lost lease and asks which items this run still holds; a claim that
    commits just after that query (another thread) must not count as lost: its item would stay
    in_progress under this run's lease, its request dropped, until the lease expired."""
    frontier, spider = crawl.frontier, crawl.spider
    frontier.loop.claim_size = 2
    late: list[int] = []
    leased_ids = crawl.store.leased_ids

    def leased_then_claimed(*, owner: str) -> list[int]:
        answer = leased_ids(owner=owner)
        claimed = crawl.store.claim(
            source_system="mediawiki",
            source_name=SOURCE_NAME,
            owner=owner,
            run_id=frontier.run_id,
            limit=1,
            lease_seconds=frontier.leases.lease_seconds,
        )
        late.extend(item.id for item in claimed)
        frontier.in_flight.update(late)  # as claim_batch does when its claim returns
        return answer

    async def run() -> set[int]:
        await frontier.spider_opened(spider)
        items = await frontier.claim_batch()
        wi = crawl.store.tables.work_items
        with crawl.store.engine.begin() as conn:  # one lease taken over by another worker
            conn.execute(
                sa.update(wi).where(wi.c.id == items[0].id).values(lease_owner="elsewhere:1:run")
            )
        crawl.store.leased_ids = leased_then_claimed  # type: ignore[method-assign]
        assert await frontier.renew_leases() == 1
        kept = set(frontier.in_flight)
        await frontier.spider_closed(spider, "shutdown")
        return kept

    kept = asyncio.run(run())
    assert len(late) == 1
    assert late[0] in kept
    assert crawl.stat("holocron/frontier/claims_lost") == 1
    assert crawl.counts()["in_progress"] == 1  # only the other worker's; ours were released


def test_claims_whose_answer_was_lost_go_back_to_the_queue_after_the_outage(
    crawl: Crawl, caplog: pytest.LogCaptureFixture
) -> None:
    frontier, spider = crawl.frontier, crawl.spider

    async def run() -> list[WorkItem]:
        await frontier.spider_opened(spider)
        [known] = await asyncio.to_thread(
            crawl.store.claim,
            source_system="mediawiki",
            source_name=SOURCE_NAME,
            owner=frontier.owner,
            run_id=frontier.run_id,
            limit=1,
            lease_seconds=600,
        )
        frontier.in_flight.add(known.id)
        # A claim committed, but the connection died before its answer came back.
        lost = await asyncio.to_thread(
            crawl.store.claim,
            source_system="mediawiki",
            source_name=SOURCE_NAME,
            owner=frontier.owner,
            run_id=frontier.run_id,
            limit=2,
            lease_seconds=600,
        )
        frontier.leases.orphans_possible = True
        again = await frontier.claim_batch()  # releases the two first, then claims them
        assert sorted(i.id for i in again) == sorted(i.id for i in lost)
        assert [i.attempt for i in again] == [1, 1]  # the lost claim did not count
        await frontier.spider_closed(spider, "shutdown")
        return lost

    asyncio.run(run())
    assert crawl.stat("holocron/frontier/released_orphans") == 2
    assert "Released 2 claims whose answer was lost with the database connection" in (
        frontier_logs(caplog, logging.INFO)
    )


def test_a_database_gone_longer_than_the_outage_limit_stops_the_crawl(
    make_crawl: Callable[..., Crawl], caplog: pytest.LogCaptureFixture
) -> None:
    crawl = make_crawl({"HOLOCRON_OUTAGE_MAX": 0})
    frontier, spider = crawl.frontier, crawl.spider
    engine = RecordingEngine()
    crawl.crawler.engine = engine  # type: ignore[assignment]
    read_only = read_only_store(crawl)

    async def run() -> None:
        await frontier.spider_opened(spider)
        [item, *_] = await frontier.claim_batch()
        crawl.store.engine, writable = read_only.engine, crawl.store.engine
        try:
            with pytest.raises(sa.exc.OperationalError):
                await frontier.commit_records([], [Outcome.completed(item, "ab" * 32)])
        finally:
            crawl.store.engine = writable
        await wait_for(lambda: engine.close_reasons == ["state_database_unreachable"])

    asyncio.run(run())
    [line] = frontier_logs(caplog, logging.ERROR)
    assert line.startswith("State database unreachable for more than 0 s (OperationalError: ")
    assert line.endswith("): stopping")


def test_recrawl_all_requeues_finished_items(make_crawl: Callable[..., Crawl]) -> None:
    hashes = {title: f"{i:064x}" for i, title in enumerate(SEEDS, start=1)}

    first = make_crawl()

    async def crawl_everything() -> None:
        await first.frontier.spider_opened(first.spider)
        for item in await first.frontier.claim_batch():
            first.frontier.finish(
                Outcome(item.id, Status.COMPLETED, content_hash=hashes[item.resource_id])
            )
        await first.frontier.spider_closed(first.spider, "finished")

    asyncio.run(crawl_everything())
    assert first.counts() == {**EMPTY_COUNTS, "completed": 3}

    # Without recrawl, finished items stay finished.
    again = make_crawl()

    async def claim_only(crawl: Crawl) -> list[WorkItem]:
        await crawl.frontier.spider_opened(crawl.spider)
        items = await crawl.frontier.claim_batch()
        await crawl.frontier.spider_closed(crawl.spider, "shutdown")
        return items

    assert asyncio.run(claim_only(again)) == []

    recrawl = make_crawl(recrawl="all")
    items = asyncio.run(claim_only(recrawl))
    assert sorted(i.resource_id for i in items) == sorted(SEEDS)
    # The last content hash is kept, so unchanged pages are recognised; attempts start again.
    assert {(i.resource_id, i.content_hash, i.attempt) for i in items} == {
        (title, hashes[title], 1) for title in SEEDS
    }
    assert recrawl.stat("holocron/frontier/seeded") == 0


# -- helpers -------------------------------------------------------------------------------------


def test_short_error_keeps_the_first_line_of_the_driver_error(tmp_path: Path) -> None:
    store = StateStore.from_url(f"sqlite:///{tmp_path / 's.db'}")
    try:
        with pytest.raises(sa.exc.OperationalError) as raised, store.engine.connect() as conn:
            conn.execute(sa.text("SELECT * FROM no_such_table"))
    finally:
        store.dispose()
    assert short_error(raised.value) == "OperationalError: no such table: no_such_table"
    assert short_error(ValueError("first line\nsecond line")) == "ValueError: first line"
    assert short_error(RuntimeError()) == "RuntimeError: "


def test_work_items_of_reads_the_documented_meta_key() -> None:
    item = WorkItem(7, "mediawiki", SOURCE_NAME, "page", "Yoda", 0, 0, 1)
    items = (item,)
    assert work_items_of(Request("http://127.0.0.1/api.php")) == []
    request = Request("http://127.0.0.1/api.php", meta={"holocron_work_items": items})
    assert work_items_of(request) == [item]


def test_state_store_from_settings_takes_the_url_and_schema_from_settings() -> None:
    store = state_store_from_settings(
        Settings(
            {
                "HOLOCRON_DB_URL": "postgresql+psycopg://crawler:s3cret@db.invalid:5432/crawl",
                "HOLOCRON_DB_SCHEMA": "holocron",
            }
        )
    )
    try:
        assert store.dialect_name == "postgresql"
        assert store.tables.metadata.schema == "holocron"
        assert store.url_for_log == "postgresql+psycopg://crawler:***@db.invalid:5432/crawl"
    finally:
        store.dispose()


def test_frontier_is_not_configured_when_disabled(tmp_path: Path) -> None:
    crawler = get_crawler(
        settings_dict={"HOLOCRON_ENABLED": False, "HOLOCRON_DB_URL": f"sqlite:///{tmp_path}/s.db"}
    )
    with pytest.raises(NotConfigured, match="HOLOCRON_ENABLED is off"):
        build_from_crawler(Frontier, crawler)
