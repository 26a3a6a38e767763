"""A completed page found again by a shorter path is expanded from its stored record: its links
queued at the new depth + 1, its other resources at the new depth, completed as it was — with no
request. A deletion record is fetched again. Real frontier and MediaWiki spider on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from holocron_scrapy.model import Outcome
from holocron_scrapy.reexpand import expand_from_stored
from tests.unit.test_pipelines import record_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from holocron_scrapy.model import WorkItem
    from tests.unit.conftest import Crawl

LINKS = [{"ns": 0, "title": "Chopper"}, {"ns": 0, "title": "Thrawn"}, {"ns": 4, "title": "P:X"}]


def test_a_page_found_closer_is_expanded_from_its_record_not_fetched(
    make_crawl: Callable[..., Crawl], db_settings: dict[str, Any]
) -> None:
    crawl = make_crawl({**db_settings, "HOLOCRON_CLAIM_SIZE": 3})
    store, frontier = crawl.store, crawl.frontier

    async def run() -> tuple[list[WorkItem], list[WorkItem], list[WorkItem]]:
        await frontier.spider_opened(crawl.spider)
        page, deleted, _ = await frontier.claim_batch()
        records = [
            dataclasses.replace(
                record_for(page), payload={"title": page.resource_id, "ns": 0, "links": LINKS}
            ),
            dataclasses.replace(
                record_for(deleted), payload={"title": deleted.resource_id, "deleted": True}
            ),
        ]
        hashes.update({r.work_item.id: r.hash_sha256 for r in records})
        outcomes = [Outcome.completed(r.work_item, r.hash_sha256) for r in records]
        await frontier.commit_records([r.ingest_row() for r in records], outcomes)
        # Both had been reached at max_depth (2); now a shorter path reaches them at depth 1.
        wi = store.tables.work_items
        with store.engine.begin() as conn:
            conn.execute(sa.update(wi).where(wi.c.id.in_([page.id, deleted.id])).values(depth=2))
        found = [crawl.spider.new_work_item(i.resource_id, 1, None) for i in (page, deleted)]
        store.add_work_items(found)
        claimed = [i for i in await frontier.claim_batch() if i.id in (page.id, deleted.id)]
        to_fetch = await expand_from_stored(
            frontier.store,
            frontier.stats,
            crawl.spider,
            claimed,
            discover=frontier.discover,
            finish=frontier.finish,
        )
        await frontier.flush()
        return [page, deleted], claimed, to_fetch

    hashes: dict[int, str] = {}
    (page, deleted), claimed, to_fetch = asyncio.run(run())
    assert {(i.id, i.depth) for i in claimed} == {(page.id, 1), (deleted.id, 1)}
    assert [i.id for i in to_fetch] == [deleted.id]  # a deleted page's record: fetched again
    assert crawl.stat("holocron/frontier/reexpanded") == 1
    items = {(r["resource_type"], r["resource_id"]): r for r in crawl.rows("work_items")}
    done = items["page", page.resource_id]
    assert (done["status"], done["depth"], done["content_hash"]) == (
        "completed",
        1,
        hashes[page.id],
    )
    # Its links in the namespaces at depth 2, as its parse would have queued them.
    assert {k[1]: r["depth"] for k, r in items.items() if k[1] in ("Chopper", "Thrawn", "P:X")} == {
        "Chopper": 2,
        "Thrawn": 2,
    }
    assert len(crawl.rows("IngestRecords", "ingest_id")) == 2  # no new row
