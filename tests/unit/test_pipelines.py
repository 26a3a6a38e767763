"""The lake and IngestRecords pipelines, with a real frontier on a real SQLite state database."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from scrapy.exceptions import DropItem, NotConfigured
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler

from holocron_scrapy.addon import HolocronAddon
from holocron_scrapy.items import ResourceRecord, canonical_json
from holocron_scrapy.lake.files import pending_path, record_path
from holocron_scrapy.pipelines.ingest import IngestRecordsPipeline
from holocron_scrapy.pipelines.lake import LakePipeline
from tests.unit.conftest import SOURCE_NAME, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from holocron_scrapy.model import WorkItem
    from tests.unit.conftest import Crawl

API = "http://127.0.0.1:8091/api.php"
FETCHED_AT = datetime(2026, 1, 2, 3, 4, 5, 678000)
FIVE_SEEDS = ("Ezra Bridger", "Kanan Jarrus", "Hera Syndulla", "Sabine Wren", "Garazeb Orrelios")


def payload_for(item: WorkItem) -> dict[str, Any]:
    return {
        "title": item.resource_id,
        "pageid": 1000 + item.id,
        "ns": 0,
        "revisions": [{"slots": {"main": {"content": 'Mandalorian "Ünïcödé" ✓ {{Infobox}}'}}}],
    }


def record_for(item: WorkItem, **changes: Any) -> ResourceRecord:
    return ResourceRecord(
        work_item=item,
        resource_type="page",
        resource_id=item.resource_id,
        payload=payload_for(item),
        request_uri=f"{API}?action=query&titles={item.resource_id.replace(' ', '%20')}",
        request_headers={"User-Agent": "HolocronScrapy/0.1 (tests)"},
        response_headers={"Content-Type": "application/json; charset=utf-8"},
        fetched_at_utc=FETCHED_AT,
        duration_ms=42,
        **changes,
    )


def sha256_of(payload: Any) -> str:
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def unchanged(item: WorkItem) -> WorkItem:
    """The work item as claimed when its last record had the same payload."""
    return dataclasses.replace(item, content_hash=sha256_of(payload_for(item)))


def claim(crawl: Crawl) -> list[WorkItem]:
    async def run() -> list[WorkItem]:
        await crawl.frontier.spider_opened(crawl.spider)
        return await crawl.frontier.claim_batch()

    return asyncio.run(run())


def lake_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def pipeline_logs(caplog: pytest.LogCaptureFixture, module: str) -> list[tuple[int, str]]:
    name = f"holocron_scrapy.pipelines.{module}"
    return [(level, msg) for logger, level, msg in caplog.record_tuples if logger == name]


# -- LakePipeline -------------------------------------------------------------------------------


@pytest.fixture
def lake_pipeline() -> Iterator[Callable[[Crawl], LakePipeline]]:
    """``lake_pipeline(crawl)``: the crawl's LakePipeline, closed (its threads too) afterwards."""
    built: list[LakePipeline] = []

    def build(crawl: Crawl) -> LakePipeline:
        built.append(build_from_crawler(LakePipeline, crawl.crawler))
        return built[-1]

    yield build
    for pipeline in built:
        pipeline.close_spider()


def test_lake_writes_one_file_with_the_metadata_and_the_payload(
    crawl: Crawl, lake_pipeline: Callable[[Crawl], LakePipeline]
) -> None:
    pipeline = lake_pipeline(crawl)
    items = claim(crawl)
    record = record_for(items[0])

    assert asyncio.run(pipeline.process_item(record)) is record

    root = crawl.tmp_path / "lake"
    digest = sha256_of(record.payload)
    final = record_path(root, "mediawiki", SOURCE_NAME, "page", items[0].resource_id, digest)
    # Under its pending name until the IngestRecords pipeline has committed its row.
    path = pending_path(final, items[0].id, crawl.frontier.run_id)
    assert lake_files(root) == [path]
    assert json.loads(path.read_bytes()) == {
        "source_system": "mediawiki",
        "source_name": SOURCE_NAME,
        "resource_type": "page",
        "resource_id": items[0].resource_id,
        "request_uri": record.request_uri,
        "request_method": "GET",
        "status_code": 200,
        "fetched_at_utc": "2026-01-02T03:04:05.678000Z",
        "hash_sha256": digest,
        "run_id": crawl.frontier.run_id,
        "work_item_id": items[0].id,
        "attempt": 1,
        "duration_ms": 42,
        "payload_format": "json",
        "payload": record.payload,
    }
    assert record.run_id == crawl.frontier.run_id
    assert crawl.stat("holocron/lake/written") == 1
    assert crawl.frontier.is_claimed(items[0])  # the IngestRecords pipeline completes it


def test_lake_removes_the_temporary_files_a_killed_writer_left(
    crawl: Crawl, lake_pipeline: Callable[[Crawl], LakePipeline]
) -> None:
    root = crawl.tmp_path / "lake"
    directory = root / "mediawiki" / SOURCE_NAME / "page" / ".pending"  # where writes happen
    directory.mkdir(parents=True)
    stale, fresh, kept = directory / ".tmp-killed", directory / ".tmp-writing", directory / "x.json"
    for path in (stale, fresh, kept):
        path.write_bytes(b"{")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    os.utime(kept, (an_hour_ago, an_hour_ago))

    pipeline = lake_pipeline(crawl)
    pipeline.open_spider()
    pipeline.close_spider()  # waits for the sweep

    assert sorted(p.name for p in directory.iterdir()) == [".tmp-writing", "x.json"]
    assert crawl.stat("holocron/lake/stale_temp_removed") == 1


def test_lake_writes_nothing_for_an_unchanged_record(
    crawl: Crawl, lake_pipeline: Callable[[Crawl], LakePipeline]
) -> None:
    pipeline = lake_pipeline(crawl)
    items = claim(crawl)
    record = record_for(unchanged(items[0]))

    assert asyncio.run(pipeline.process_item(record)) is record

    assert lake_files(crawl.tmp_path / "lake") == []
    assert crawl.stat("holocron/lake/unchanged") == 1
    assert crawl.stat("holocron/lake/written") is None


def test_a_lake_write_failure_fails_the_work_item_and_drops_the_record(
    make_crawl: Callable[..., Crawl],
    lake_pipeline: Callable[[Crawl], LakePipeline],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    in_the_way = tmp_path / "lake-root-is-a-file"
    in_the_way.write_text("not a directory", encoding="utf-8")
    crawl = make_crawl({"HOLOCRON_LAKE_DIR": str(in_the_way), "HOLOCRON_MAX_ATTEMPTS": 1})
    pipeline = lake_pipeline(crawl)
    items = claim(crawl)
    record = record_for(items[0])
    message = (
        "lake write failed: NotADirectoryError: [Errno 20] Not a directory: "
        f"'{in_the_way / 'mediawiki'}'"
    )

    with pytest.raises(DropItem) as dropped:
        asyncio.run(pipeline.process_item(record))

    assert str(dropped.value) == message
    assert isinstance(dropped.value.__cause__, NotADirectoryError)
    assert crawl.stat("holocron/lake/errors") == 1
    assert crawl.stat("holocron/lake/written") is None
    assert pipeline_logs(caplog, "lake") == [(logging.ERROR, f"{message} ({items[0].resource_id})")]
    assert not crawl.frontier.is_claimed(items[0])
    asyncio.run(crawl.frontier.flush())
    row = crawl.store.work_item(items[0].id)
    assert row is not None
    assert (row["status"], row["error_message"]) == ("failed", message)


def test_lake_writes_nothing_for_a_claim_lost_to_another_worker(
    crawl: Crawl, lake_pipeline: Callable[[Crawl], LakePipeline]
) -> None:
    pipeline = lake_pipeline(crawl)
    items = claim(crawl)
    crawl.frontier.in_flight.discard(items[0].id)  # given up: its lease is another worker's

    with pytest.raises(DropItem, match="claim lost: "):
        asyncio.run(pipeline.process_item(record_for(items[0])))
    assert lake_files(crawl.tmp_path / "lake") == []
    assert crawl.stat("holocron/lake/claim_lost") == 1


def test_lake_passes_other_items_untouched(
    crawl: Crawl, lake_pipeline: Callable[[Crawl], LakePipeline]
) -> None:
    pipeline = lake_pipeline(crawl)
    item = {"title": "not a ResourceRecord"}
    assert asyncio.run(pipeline.process_item(item)) is item
    assert item == {"title": "not a ResourceRecord"}
    assert lake_files(crawl.tmp_path / "lake") == []
    assert crawl.stats.get_stats() == {
        k: v for k, v in crawl.stats.get_stats().items() if not k.startswith("holocron/lake/")
    }


# -- IngestRecordsPipeline ----------------------------------------------------------------------


def test_ingest_writes_rows_and_completes_the_items_in_batches(
    make_crawl: Callable[..., Crawl],
) -> None:
    crawl = make_crawl(
        {"HOLOCRON_INGEST_BATCH_SIZE": 2, "HOLOCRON_INGEST_MAX_DELAY": 0.05}, seeds=FIVE_SEEDS
    )
    pipeline = build_from_crawler(IngestRecordsPipeline, crawl.crawler)

    async def run() -> list[Any]:
        await crawl.frontier.spider_opened(crawl.spider)
        items = await crawl.frontier.claim_batch()
        records.extend(record_for(item) for item in items)
        return list(await asyncio.gather(*(pipeline.process_item(r) for r in records)))

    records: list[ResourceRecord] = []
    assert asyncio.run(run()) == records
    assert len(records) == 5

    assert crawl.stat("holocron/ingest/batches") == 3  # ceil(5 / 2)
    assert crawl.stat("holocron/records/written") == 5
    assert crawl.stat("holocron/work_items/completed") == 5
    assert crawl.stat("holocron/records/unchanged") == 0
    assert crawl.frontier.in_flight == set()
    # Batches commit concurrently (SQLite serializes them): rows in any order, one per record.
    rows = crawl.rows("IngestRecords", order_by="work_item_id")
    records.sort(key=lambda r: r.work_item.id)
    assert [row["work_item_id"] for row in rows] == [r.work_item.id for r in records]
    for row, record in zip(rows, records, strict=True):
        assert json.loads(row["payload"]) == record.payload
        assert row["payload"] == canonical_json(record.payload)
        assert row["hash_sha256"] == sha256_of(record.payload)
        assert {k: row[k] for k in ("run_id", "attempt", "resource_id", "source_name")} == {
            "run_id": crawl.frontier.run_id,
            "attempt": 1,
            "resource_id": record.resource_id,
            "source_name": SOURCE_NAME,
        }
        assert json.loads(row["request_headers"]) == record.request_headers
        assert json.loads(row["response_headers"]) == record.response_headers
        assert (row["status_code"], row["request_method"], row["duration_ms"]) == (200, "GET", 42)
        assert (row["fetched_at_utc"], row["error_message"]) == (FETCHED_AT, None)
    for record in records:
        item_row = crawl.store.work_item(record.work_item.id)
        assert item_row is not None
        assert (item_row["status"], item_row["content_hash"]) == (
            "completed",
            sha256_of(record.payload),
        )


def test_ingest_completes_an_unchanged_record_without_a_row(
    make_crawl: Callable[..., Crawl],
) -> None:
    crawl = make_crawl({"HOLOCRON_INGEST_BATCH_SIZE": 2})
    pipeline = build_from_crawler(IngestRecordsPipeline, crawl.crawler)
    items = claim(crawl)
    same, changed = record_for(unchanged(items[0])), record_for(items[1])

    async def run() -> None:
        await asyncio.gather(pipeline.process_item(same), pipeline.process_item(changed))

    asyncio.run(run())
    assert [row["work_item_id"] for row in crawl.rows("IngestRecords", "ingest_id")] == [
        items[1].id
    ]
    assert crawl.stat("holocron/records/unchanged") == 1
    assert crawl.stat("holocron/records/written") == 1
    assert crawl.stat("holocron/work_items/completed") == 2
    row = crawl.store.work_item(items[0].id)
    assert row is not None
    assert (row["status"], row["content_hash"]) == ("completed", sha256_of(same.payload))
    assert crawl.frontier.in_flight == {items[2].id}


def test_a_failed_batch_fails_its_items_and_drops_them(
    make_crawl: Callable[..., Crawl], caplog: pytest.LogCaptureFixture
) -> None:
    crawl = make_crawl({"HOLOCRON_INGEST_BATCH_SIZE": 3, "HOLOCRON_MAX_ATTEMPTS": 1})
    pipeline = build_from_crawler(IngestRecordsPipeline, crawl.crawler)
    items = claim(crawl)
    with crawl.store.engine.begin() as conn:  # a real database failure, not an outage
        conn.execute(sa.text('DROP TABLE "IngestRecords"'))
    records = [record_for(item) for item in items]

    async def run() -> list[Any]:
        results = await asyncio.gather(
            *(pipeline.process_item(r) for r in records), return_exceptions=True
        )
        await crawl.frontier.flush()
        return list(results)

    results = asyncio.run(run())
    # One line, as the frontier words database errors: no SQL, no parameters, no link.
    message = "IngestRecords write failed: OperationalError: no such table: IngestRecords"
    assert [type(r) for r in results] == [DropItem] * 3
    assert [str(r) for r in results] == [message] * 3
    assert crawl.stat("holocron/ingest/errors") == 1
    assert crawl.stat("holocron/work_items/failed") == 3
    assert crawl.stat("holocron/ingest/batches") is None
    assert crawl.stat("holocron/records/written") is None
    assert crawl.stat("holocron/work_items/completed") is None
    assert crawl.frontier.in_flight == set()
    assert pipeline_logs(caplog, "ingest") == [(logging.ERROR, f"{message} (3 items)")]
    for item in items:
        row = crawl.store.work_item(item.id)
        assert row is not None
        assert (row["status"], row["error_message"], row["content_hash"]) == (
            "failed",
            message,
            None,
        )


def test_close_spider_flushes_a_partial_batch(make_crawl: Callable[..., Crawl]) -> None:
    crawl = make_crawl({"HOLOCRON_INGEST_BATCH_SIZE": 2, "HOLOCRON_INGEST_MAX_DELAY": 60.0})
    pipeline = build_from_crawler(IngestRecordsPipeline, crawl.crawler)
    items = claim(crawl)
    records = [record_for(item) for item in items]

    async def run() -> None:
        tasks = [asyncio.ensure_future(pipeline.process_item(r)) for r in records]
        await wait_for(lambda: tasks[0].done() and tasks[1].done())
        await asyncio.sleep(0.05)
        assert not tasks[2].done()  # waits for a batch of 2, or 60 s
        assert crawl.stat("holocron/ingest/batches") == 1
        await pipeline.close_spider()
        assert tasks[2].done()
        assert [t.result() for t in tasks] == records

    asyncio.run(run())
    assert crawl.stat("holocron/ingest/batches") == 2
    assert crawl.stat("holocron/records/written") == 3
    assert [row["work_item_id"] for row in crawl.rows("IngestRecords", "ingest_id")] == [
        item.id for item in items
    ]


def test_ingest_passes_other_items_untouched(crawl: Crawl) -> None:
    pipeline = build_from_crawler(IngestRecordsPipeline, crawl.crawler)
    item = {"title": "not a ResourceRecord"}
    assert asyncio.run(pipeline.process_item(item)) is item
    assert crawl.stat("holocron/ingest/batches") is None


# -- switches -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pipeline", "switch"),
    [(LakePipeline, "HOLOCRON_LAKE_ENABLED"), (IngestRecordsPipeline, "HOLOCRON_INGEST_ENABLED")],
)
def test_a_pipeline_is_not_configured_when_switched_off(
    pipeline: type[Any], switch: str, tmp_path: Path
) -> None:
    crawler = get_crawler(
        settings_dict={
            "ADDONS": {HolocronAddon: 0},
            "HOLOCRON_DB_URL": f"sqlite:///{tmp_path}/s.db",
            switch: False,
        }
    )
    with pytest.raises(NotConfigured, match=f"^{switch} is off$"):
        build_from_crawler(pipeline, crawler)


@pytest.mark.parametrize("pipeline", [LakePipeline, IngestRecordsPipeline])
def test_a_pipeline_needs_the_frontier(pipeline: type[Any], tmp_path: Path) -> None:
    crawler = get_crawler(settings_dict={"HOLOCRON_DB_URL": f"sqlite:///{tmp_path}/s.db"})
    with pytest.raises(NotConfigured, match="Frontier extension is not enabled"):
        build_from_crawler(pipeline, crawler)
