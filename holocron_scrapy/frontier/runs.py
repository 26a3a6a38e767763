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
    from holocron_scrapy.frontier.extension import Frontier, FrontierSpider

logger = logging.getLogger(__name__)


async def open_run(frontier: Frontier, spider: FrontierSpider) -> None:
    """Start this run: tables, the ``runs`` row, the lease owner, dead owners' claims back in
    the queue, then ``recrawl=all`` or the seeds."""
    logger.info("State database: %s", frontier.store.url_for_log)
    if frontier.store.dialect_name == "sqlite":
        logger.info("SQLite is the embedded default: %s", SQLSERVER_HINT)
    await run_in_thread(frontier.store.create_tables)
    frontier.run_id = await run_in_thread(
        frontier.store.start_run,
        source_system=spider.source_system,
        source_name=spider.source_name,
        worker_id=frontier.worker_id,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        pid_namespace=frontier.leases.namespace,
    )
    frontier.owner = f"{frontier.worker_id}:{os.getpid()}:{frontier.run_id}"
    await frontier.leases.release_dead_owners(spider)
    if spider.recrawl == "all":
        n = await run_in_thread(
            frontier.store.requeue,
            source_system=spider.source_system,
            source_name=spider.source_name,
            statuses=[Status.COMPLETED, Status.FAILED, Status.SKIPPED],
        )
        logger.info("recrawl=all: %(n)d known items back in the queue", {"n": n})
    if spider.recrawl:
        # A recrawl refreshes what is known; it never adds the seeds again.
        frontier.stats.inc_value("holocron/frontier/seeded", 0)
        logger.info(
            "Run %(run)s of %(source)s: recrawl=%(mode)s, no seeding",
            {"run": frontier.run_id, "source": spider.source_name, "mode": spider.recrawl},
        )
    else:
        seeds = [
            dataclasses.replace(limits.fit_work_item(s), run_id=frontier.run_id)
            for s in spider.seed_work_items()
        ]
        added = await run_in_thread(frontier.store.add_work_items, seeds)
        frontier.stats.inc_value("holocron/frontier/seeded", added)
        logger.info(
            "Run %(run)s of %(source)s: %(added)d of %(seeds)d seeds are new",
            {
                "run": frontier.run_id,
                "source": spider.source_name,
                "added": added,
                "seeds": len(seeds),
            },
        )
    frontier.spider = spider


async def close_run(frontier: Frontier, reason: str) -> None:
    """End this run: unfinished claims back in the queue, the ``runs`` row closed with the
    crawl's counts; ``RuntimeError`` when buffered writes are left."""
    if frontier.writes.pending():
        raise RuntimeError(
            f"{len(frontier.writes.discovered)} discoveries and {len(frontier.writes.outcomes)} "
            "outcomes could not be written"
        )
    if frontier.in_flight:
        await frontier.leases.release_in_flight(reason)
    counts = {
        "items_discovered": _stat(frontier, "holocron/frontier/discovered_new"),
        "items_completed": _stat(frontier, "holocron/work_items/completed"),
        "items_failed": _stat(frontier, "holocron/work_items/failed"),
        "items_skipped": _stat(frontier, "holocron/work_items/skipped"),
        "records_written": _stat(frontier, "holocron/records/written"),
        "requests_made": _stat(frontier, "downloader/request_count"),
    }
    status = "finished" if reason == "finished" else "cancelled"
    await run_in_thread(
        frontier.store.finish_run, frontier.run_id, status=status, reason=reason, counts=counts
    )


def _stat(frontier: Frontier, key: str) -> int:
    return int(frontier.stats.get_value(key, 0))
