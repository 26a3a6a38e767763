"""A lake file and its IngestRecords row, exactly once: written pending, published after the
commit, never rewritten, and what a killed run left settled by the next run's start.

Real pipelines and frontier on a real state database (SQLite, and PostgreSQL with
``HOLOCRON_TEST_PG_URL``), real files.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from scrapy.utils.misc import build_from_crawler

from holocron_scrapy.audit.verify import verify
from holocron_scrapy.lake.files import PENDING_DIR, pending_path, record_path
from holocron_scrapy.model import Outcome
from holocron_scrapy.pipelines.ingest import IngestRecordsPipeline
from holocron_scrapy.pipelines.lake import LakePipeline
from tests.unit.conftest import SOURCE_NAME
from tests.unit.test_pipelines import claim, lake_files, record_for, sha256_of

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from holocron_scrapy.items import ResourceRecord
    from tests.unit.conftest import Crawl


def final_path(crawl: Crawl, record: ResourceRecord) -> Path:
    return record_path(
        crawl.tmp_path / "lake",
        "mediawiki",
        SOURCE_NAME,
        "page",
        record.resource_id,
        sha256_of(record.payload),
    )


def write(pipeline: LakePipeline, records: list[ResourceRecord]) -> None:
    async def run() -> None:
        for record in records:
            await pipeline.process_item(record)

    asyncio.run(run())


def test_the_file_is_published_only_after_its_row_commits(
    make_crawl: Callable[..., Crawl], db_settings: dict[str, Any]
) -> None:
    crawl = make_crawl({**db_settings, "HOLOCRON_INGEST_MAX_DELAY": 0.01})
    lake = build_from_crawler(LakePipeline, crawl.crawler)
    ingest = build_from_crawler(IngestRecordsPipeline, crawl.crawler)
    lake.open_spider()
    try:
        item = claim(crawl)[0]
        record = record_for(item)
        write(lake, [record])
        final = final_path(crawl, record)
        pending = pending_path(final, item.id, crawl.frontier.run_id)
        # Written and fsynced, but not a record yet: no row points to it.
        assert lake_files(crawl.tmp_path / "lake") == [pending]
        assert crawl.rows("IngestRecords", "ingest_id") == []

        asyncio.run(ingest.process_item(record))
    finally:
        lake.close_spider()

    assert lake_files(crawl.tmp_path / "lake") == [final]
    [row] = crawl.rows("IngestRecords", "ingest_id")
    document = json.loads(final.read_bytes())
    assert (document["run_id"], document["work_item_id"]) == (row["run_id"], row["work_item_id"])
    assert crawl.stat("holocron/lake/published") == 1


def test_an_existing_file_is_never_rewritten(
    make_crawl: Callable[..., Crawl], tmp_path: Path
) -> None:
    crawl = make_crawl({"HOLOCRON_INGEST_ENABLED": False})
    lake = build_from_crawler(LakePipeline, crawl.crawler)
    lake.open_spider()
    try:
        item = claim(crawl)[0]
        first = record_for(item)
        write(lake, [first])  # no IngestRecords pipeline: published at once
        final = final_path(crawl, first)
        before = final.read_bytes()
        # The same content again (a page reverted to it): another run, another fetch time.
        again = record_for(item, run_id="ab" * 16)
        write(lake, [again])
    finally:
        lake.close_spider()

    assert final.read_bytes() == before  # the metadata an older row points to is kept
    assert lake_files(tmp_path / "lake") == [final]
    assert crawl.stat("holocron/lake/written") == 1
    assert crawl.stat("holocron/lake/exists") == 1


def test_the_next_run_publishes_committed_pending_files_and_deletes_orphans(
    make_crawl: Callable[..., Crawl], db_settings: dict[str, Any]
) -> None:
    # A run of another worker writes three pending files, commits one row (and is killed before
    # renaming it), loses one claim (its lease expired: the item went back to the queue) and
    # still holds the third (a live writer, about to commit).
    killed = make_crawl({**db_settings, "HOLOCRON_WORKER_ID": "other-host"})
    lake = build_from_crawler(LakePipeline, killed.crawler)
    lake.open_spider()
    try:
        committed, lost, held = claim(killed)[:3]
        records = [record_for(item) for item in (committed, lost, held)]
        write(lake, records)
    finally:
        lake.close_spider()
    killed.store.commit_records(
        [records[0].ingest_row()],
        [Outcome.completed(committed, records[0].hash_sha256)],
        owner=killed.frontier.owner,
    )
    wi = killed.store.tables.work_items
    with killed.store.engine.begin() as conn:
        conn.execute(
            sa.update(wi)
            .where(wi.c.id == lost.id)
            .values(status="pending", lease_owner=None, lease_expires_at=None)
        )
    # The other worker runs elsewhere (another machine or container): judged alive by its
    # heartbeat, not by a pid of this machine.
    runs = killed.store.tables.runs
    with killed.store.engine.begin() as conn:
        conn.execute(
            sa.update(runs)
            .where(runs.c.run_id == killed.frontier.run_id)
            .values(pid_namespace="another-machine/pid:[4026531836]")
        )
    pending = {p.name for p in lake_files(killed.tmp_path / "lake")}
    assert len(pending) == 3

    nxt = make_crawl(db_settings)
    lake = build_from_crawler(LakePipeline, nxt.crawler)
    lake.open_spider()

    async def start() -> None:
        # As Scrapy sends spider_opened: to the frontier and the lake pipeline at once.
        await asyncio.gather(lake.spider_opened(nxt.spider), nxt.frontier.spider_opened(nxt.spider))

    try:
        asyncio.run(start())
    finally:
        lake.close_spider()

    files = lake_files(nxt.tmp_path / "lake")
    assert [p.name for p in files if p.parent.name != PENDING_DIR] == [
        final_path(nxt, records[0]).name
    ]
    left = [p for p in files if p.parent.name == PENDING_DIR]
    assert [p.name for p in left] == [
        pending_path(final_path(nxt, records[2]), held.id, killed.frontier.run_id).name
    ]
    stats = {k: nxt.stat(f"holocron/lake/pending_{k}") for k in ("published", "deleted", "kept")}
    assert stats == {"published": 1, "deleted": 1, "kept": 1}
    report = verify(nxt.store.engine, nxt.store.tables, nxt.tmp_path / "lake", SOURCE_NAME)
    assert report.findings["row_without_file"].count == 0
    assert report.findings["file_without_row"].count == 0
    assert report.pending_files.count == 1


def test_the_files_of_dropped_outcomes_are_published_or_deleted_as_their_rows_say(
    make_crawl: Callable[..., Crawl], db_settings: dict[str, Any]
) -> None:
    crawl = make_crawl({**db_settings, "HOLOCRON_INGEST_MAX_DELAY": 0.01})
    lake = build_from_crawler(LakePipeline, crawl.crawler)
    ingest = build_from_crawler(IngestRecordsPipeline, crawl.crawler)
    lake.open_spider()
    try:
        answered, lost = claim(crawl)[:2]
        records = [record_for(answered), record_for(lost)]
        write(lake, records)
        # The first try of the commit landed but its answer was lost; the other claim was taken
        # by another worker meanwhile (its item back in the queue). Both outcomes are dropped.
        crawl.store.commit_records(
            [records[0].ingest_row()],
            [Outcome.completed(answered, records[0].hash_sha256)],
            owner=crawl.frontier.owner,
        )
        wi = crawl.store.tables.work_items
        with crawl.store.engine.begin() as conn:
            conn.execute(
                sa.update(wi).where(wi.c.id == lost.id).values(status="pending", lease_owner=None)
            )

        async def run() -> None:
            await asyncio.gather(*(ingest.process_item(r) for r in records))

        asyncio.run(run())
    finally:
        lake.close_spider()

    assert lake_files(crawl.tmp_path / "lake") == [final_path(crawl, records[0])]
    assert len(crawl.rows("IngestRecords", "ingest_id")) == 1
