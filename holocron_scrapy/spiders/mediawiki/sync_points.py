"""A source's sync point (where its next ``recrawl=changed`` reads the change feeds from, see
:mod:`.feed_sync`) and its reach (how far its archive is expanded), in the state database."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy.utils.asyncio import run_in_thread

from holocron_scrapy.mediawiki import resources
from holocron_scrapy.store.sql import utcnow
from holocron_scrapy.store.sync import Reach, SyncPoint

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy.statscollectors import StatsCollector

    from holocron_scrapy.config.sources import SourceConfig
    from holocron_scrapy.frontier.extension import Frontier

logger = logging.getLogger(__name__)


class SyncPoints:
    """``new_work``: called when completed pages went back into the queue (claim them soon)."""

    def __init__(
        self,
        config: SourceConfig,
        *,
        source_system: str,
        stats: Callable[[], StatsCollector],
        new_work: Callable[[], None],
    ) -> None:
        self.config = config
        self.source_system = source_system
        self.stats = stats
        self.new_work = new_work

    async def record_start(self, frontier: Frontier) -> None:
        """A crawl (not a refresh): the source's first run's start is its sync point, unless it
        has one."""
        started = await run_in_thread(
            frontier.store.first_run_started,
            source_system=self.source_system,
            source_name=self.config.name,
        )
        written = await run_in_thread(
            frontier.store.set_sync_point,
            SyncPoint(started or utcnow()),
            source_system=self.source_system,
            source_name=self.config.name,
            run_id=frontier.run_id,
            only_if_absent=True,
        )
        await self.widen(frontier)
        if written:
            logger.info(
                "Sync point of %(source)s: %(at)s", {"source": self.config.name, "at": started}
            )

    async def read(self, frontier: Frontier) -> SyncPoint:
        """Where a refresh reads from: the sync point (what the archive is expanded with
        recorded, see :meth:`widen`), else the start of the source's first run."""
        point = await run_in_thread(
            frontier.store.sync_point,
            source_system=self.source_system,
            source_name=self.config.name,
        )
        if point is not None:
            await self.widen(frontier)
            return point
        started = await run_in_thread(
            frontier.store.first_run_started,
            source_system=self.source_system,
            source_name=self.config.name,
        )
        return SyncPoint(started or utcnow())

    async def widen(self, frontier: Frontier) -> None:
        """Record what the archive is expanded with (``max_depth``, the discovery switches on);
        when this run's settings reach further, the completed pages they expand further go
        back into the queue (their refetch discovers what the new settings reach)."""
        discovery = self.config.discovery
        switches = {
            "links": discovery.links,
            "categories": discovery.categories,
            "templates": discovery.templates,
            "backlinks": discovery.backlinks,
        }
        reach = Reach(discovery.max_depth, frozenset(k for k, on in switches.items() if on))
        n = await run_in_thread(
            frontier.store.widen,
            reach,
            source_system=self.source_system,
            source_name=self.config.name,
            resource_types=resources.PAGE_TYPES,
        )
        self.stats().inc_value("holocron/recrawl/widened", n)
        if n:
            logger.info(
                "The settings reach further than the archive's (max_depth %(depth)d, %(on)s): "
                "%(n)d completed pages back in the queue to expand",
                {"depth": reach.max_depth, "on": ", ".join(sorted(reach.expansions)), "n": n},
            )
            self.new_work()

    async def write(self, frontier: Frontier, point: SyncPoint) -> None:
        """Move the sync point to ``point`` (past the last change read)."""
        await run_in_thread(
            frontier.store.set_sync_point,
            point,
            source_system=self.source_system,
            source_name=self.config.name,
            run_id=frontier.run_id,
        )
        self.stats().set_value("holocron/recrawl/synced", 1)
        logger.info(
            "Change feeds of %(source)s synced up to %(at)s (rcid %(rc)s, logid %(log)s)",
            {
                "source": self.config.name,
                "at": point.timestamp,
                "rc": point.rc_id,
                "log": point.log_id,
            },
        )
