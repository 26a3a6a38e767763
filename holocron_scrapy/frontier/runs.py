"""The frontier's run bookkeeping: how a run starts (seeds, recrawl) and how it ends.

A run is a row of ``runs``; its id names this process's leases (``worker_id:pid:run_id``). At
the start the claims of dead runs go back to the queue and the seeds are
added (a recrawl adds none); at the end the unfinished claims are released and the run's counts
recorded.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from typing import TYPE_CHECKING

from scrapy.utils.asyncio import run_in_thread

from holocron_scrapy.frontier.settings import SQLSERVER_HINT
from holocron_scrapy.model import Status
from holocron_scrapy.store import limits

if TYPE_CHECKING:
    from scrapy.statscollectors import StatsCollector

    from holocron_scrapy.frontier.claims import Claims
    from holocron_scrapy.frontier.leases import Leases
    from holocron_scrapy.frontier.spider import FrontierSpider
    from holocron_scrapy.frontier.writes import WriteBuffer
    from holocron_scrapy.store.state_store import StateStore

logger = logging.getLogger(__name__)


async def open_run(
    store: StateStore,
    stats: StatsCollector,
    spider: FrontierSpider,
    *,
    claims: Claims,
    leases: Leases,
    worker_id: str,
) -> None:
    """Start this run: tables, the ``runs`` row, the lease owner (in ``claims``), dead owners'
    claims back in the queue, then ``recrawl=all`` or the seeds."""
    logger.info("State database: %s", store.url_for_log)
    if store.dialect_name == "sqlite":
        logger.info("SQLite is the embedded default: %s", SQLSERVER_HINT)
    await run_in_thread(store.create_tables)
    claims.run_id = run_id = await run_in_thread(
        store.start_run,
        source_system=spider.source_system,
        source_name=spider.source_name,
        worker_id=worker_id,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        pid_namespace=leases.namespace,
    )
    claims.owner = f"{worker_id}:{os.getpid()}:{run_id}"
    await leases.release_dead_owners(spider)
    if spider.recrawl == "all":
        n = await run_in_thread(
            store.requeue,
            source_system=spider.source_system,
            source_name=spider.source_name,
            statuses=[Status.COMPLETED, Status.FAILED, Status.SKIPPED],
        )
        logger.info("recrawl=all: %(n)d known items back in the queue", {"n": n})
    if spider.recrawl:
        # A recrawl refreshes what is known; it never adds the seeds again.
        stats.inc_value("holocron/frontier/seeded", 0)
        logger.info(
            "Run %(run)s of %(source)s: recrawl=%(mode)s, no seeding",
            {"run": run_id, "source": spider.source_name, "mode": spider.recrawl},
        )
    else:
        seeds = [
            dataclasses.replace(limits.fit_work_item(s), run_id=run_id)
            for s in spider.seed_work_items()
        ]
        added = await run_in_thread(store.add_work_items, seeds)
        stats.inc_value("holocron/frontier/seeded", added)
        logger.info(
            "Run %(run)s of %(source)s: %(added)d of %(seeds)d seeds are new",
            {"run": run_id, "source": spider.source_name, "added": added, "seeds": len(seeds)},
        )


_COUNTS = {
    "items_discovered": "holocron/frontier/discovered_new",
    "items_completed": "holocron/work_items/completed",
    "items_failed": "holocron/work_items/failed",
    "items_skipped": "holocron/work_items/skipped",
    "records_written": "holocron/records/written",
    "requests_made": "downloader/request_count",
}


async def close_run(
    store: StateStore,
    stats: StatsCollector,
    *,
    claims: Claims,
    writes: WriteBuffer,
    leases: Leases,
    reason: str,
) -> None:
    """End this run: unfinished claims back in the queue, the ``runs`` row closed with the
    crawl's counts; ``RuntimeError`` when buffered writes are left."""
    if writes.pending():
        raise RuntimeError(
            f"{len(writes.discovered)} discoveries and {len(writes.outcomes)} "
            "outcomes could not be written"
        )
    if claims.in_flight:
        await leases.release_in_flight(reason)
    counts = {column: int(stats.get_value(key, 0)) for column, key in _COUNTS.items()}
    status = "finished" if reason == "finished" else "cancelled"
    await run_in_thread(
        store.finish_run, claims.run_id, status=status, reason=reason, counts=counts
    )
