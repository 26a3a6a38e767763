"""The SQL queue as Scrapy sees it.

The queue in SQL is the source of truth. This extension claims leased batches of work items
whenever Scrapy's scheduler runs dry (``scheduler_empty``, ``spider_idle``), turns them into
requests through the spider, and buffers what the crawl learns (outcomes, discovered links) into
batched writes made in a thread, never on the reactor. Scrapy's scheduler therefore only ever
holds claimed work: memory does not grow with the frontier. The crawl ends when nothing is
claimable, nothing is buffered and nothing is in flight.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Self

from scrapy import signals
from scrapy.exceptions import DontCloseSpider, NotConfigured
from scrapy.utils.asyncio import run_in_thread
from scrapy.utils.defer import deferred_from_coro
from twisted.internet.task import LoopingCall

from holocron_scrapy import defaults
from holocron_scrapy.frontier.api import FrontierApi
from holocron_scrapy.frontier.claiming import ClaimLoop
from holocron_scrapy.frontier.claims import Claims
from holocron_scrapy.frontier.leases import Leases
from holocron_scrapy.frontier.runs import close_run, open_run
from holocron_scrapy.frontier.settings import frontier_options, state_store_from_settings
from holocron_scrapy.frontier.spider import FrontierSpider, work_items_of
from holocron_scrapy.frontier.waits import WaitPlanner
from holocron_scrapy.frontier.writes import CrawlStateError, WriteBuffer
from holocron_scrapy.model import RetryPolicy, WorkItem
from holocron_scrapy.outage import Outage, short_error
from holocron_scrapy.reexpand import expand_from_stored
from holocron_scrapy.signals import run_closed

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.statscollectors import StatsCollector

    from holocron_scrapy.store.state_store import StateStore

__all__ = ["CrawlStateError", "Frontier", "FrontierSpider", "frontier_of", "work_items_of"]

logger = logging.getLogger(__name__)


def frontier_of(crawler: Crawler) -> Frontier:
    """The crawl's Frontier, for the components built on it (``NotConfigured`` without one)."""
    frontier = crawler.get_extension(Frontier)
    if frontier is None:
        raise NotConfigured("the holocron Frontier extension is not enabled")
    return frontier


class Frontier(FrontierApi):
    """The extension: claims work for Scrapy and ends the crawl when none is left.

    It wires its parts, none of which knows it: :class:`Claims` (the run and its claims in
    flight), :class:`WriteBuffer` (buffered discoveries and outcomes), :class:`Leases`
    (renewal, lost claims, releases), :class:`WaitPlanner` (waits for retries and other
    workers) and :class:`ClaimLoop` (when to claim, when the crawl is done); ``runs`` starts
    and ends its run.
    """

    def __init__(
        self,
        crawler: Crawler,
        store: StateStore,
        *,
        claim_size: int,
        lease_seconds: float,
        flush_interval: float,
        flush_size: int,
        worker_id: str,
        discovery_cache_size: int = defaults.DISCOVERY_CACHE_SIZE,
        retry: RetryPolicy | None = None,
        retry_wait_max: float = defaults.RETRY_WAIT_MAX,
        idle_poll: float = defaults.IDLE_POLL,
        outage_max_seconds: float = defaults.OUTAGE_MAX,
        dead_after_leases: float = defaults.DEAD_AFTER_LEASES,
    ) -> None:
        self.crawler = crawler
        self._store = store
        assert crawler.stats is not None
        self.stats: StatsCollector = crawler.stats
        self.flush_interval = flush_interval
        self.worker_id = worker_id
        self.spider: FrontierSpider | None = None
        self.retry = retry or RetryPolicy()
        self.db_outage = Outage(
            "database", "State database", self.stats, max_seconds=outage_max_seconds
        )
        self.claims = Claims()
        self.writes = WriteBuffer(
            store,
            self.stats,
            self.claims,
            self.db_outage,
            self.retry,
            flush_size=flush_size,
            discovery_cache_size=discovery_cache_size,
            on_written=self._written,
            give_up=self.give_up,
            closing=self._closing,
            stopping=self.stopping,
        )
        # A running run without a heartbeat for this long is dead (heartbeats: every lease / 3).
        self.leases = Leases(
            store,
            self.stats,
            self.claims,
            self.writes,
            self.db_outage,
            lease_seconds=lease_seconds,
            dead_after_seconds=dead_after_leases * lease_seconds,
        )
        self.waits = WaitPlanner(
            store,
            self.stats,
            self.claims,
            retry_wait_max=retry_wait_max,
            idle_poll=idle_poll,
            wake=self._wake,
        )
        self.loop = ClaimLoop(
            store,
            self.stats,
            claims=self.claims,
            writes=self.writes,
            leases=self.leases,
            waits=self.waits,
            outage=self.db_outage,
            claim_size=claim_size,
            lease_seconds=lease_seconds,
            schedule=self._schedule,
            finish=self.finish,
            close=self._close,
            engine_idle=self._engine_idle,
        )
        self._flusher: LoopingCall | None = None
        # Set once spider_opened is done (the run started, or could not): the lake's reconcile
        # waits for it, so that dead owners' claims are released first.
        self.opened = asyncio.Event()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not settings.getbool("HOLOCRON_ENABLED", defaults.ENABLED):
            raise NotConfigured("HOLOCRON_ENABLED is off")
        frontier = cls(crawler, state_store_from_settings(settings), **frontier_options(settings))
        crawler.signals.connect(frontier.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(frontier.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(frontier.scheduler_empty, signal=signals.scheduler_empty)
        crawler.signals.connect(frontier.spider_idle, signal=signals.spider_idle)
        return frontier

    # -- lifecycle -------------------------------------------------------------------------

    async def spider_opened(self, spider: Spider) -> None:
        try:
            await self._open(spider)
        finally:
            self.opened.set()

    async def _open(self, spider: Spider) -> None:
        if not isinstance(spider, FrontierSpider):
            logger.info("Spider %s does not use the SQL frontier", spider.name)
            return
        try:
            await self.start_run(spider)
        except Exception as exc:
            logger.error(
                "Cannot use the state database %(url)s: %(error)s",
                {"url": self.store.url_for_log, "error": short_error(exc)},
            )
            logger.debug("State database error", exc_info=True)
            self._close("state_database_error")
            return
        self.spider = self.loop.spider = spider
        self._flusher = LoopingCall(self._periodic_flush)
        self._flusher.start(self.flush_interval, now=False)

    async def start_run(self, spider: FrontierSpider) -> None:
        """Start this run (see :func:`open_run`); the spider's claims come later."""
        await open_run(
            self.store,
            self.stats,
            spider,
            claims=self.claims,
            leases=self.leases,
            worker_id=self.worker_id,
        )

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        if self.spider is None:
            self.store.dispose()
            return
        self.loop.close_down()
        if self._flusher is not None and self._flusher.running:
            self._flusher.stop()
        await self.loop.settled()  # the items of a claim under way are released below
        await self.flush()
        try:
            await close_run(
                self.store,
                self.stats,
                claims=self.claims,
                writes=self.writes,
                leases=self.leases,
                reason=reason,
            )
        except Exception as exc:
            logger.error(
                "Could not record the end of run %(run)s (%(error)s): its unfinished claims go "
                "back to the queue when their lease expires, or at once when this worker "
                "starts again",
                {"run": self.run_id, "error": short_error(exc)},
            )
        else:
            await self.crawler.signals.send_catch_log_async(
                run_closed,
                run_id=self.run_id,
                source_system=self.spider.source_system,
                source_name=self.spider.source_name,
                reason=reason,
                store=self.store,
            )
        finally:
            await run_in_thread(self.store.dispose)

    def _engine(self) -> Any:
        """The crawl's engine, or None before the crawl starts."""
        try:
            return self.crawler.engine
        except RuntimeError:  # Scrapy: "Crawler.engine is not set yet"
            return None

    def _close(self, reason: str) -> None:
        engine = self._engine()
        if engine is not None:
            deferred_from_coro(engine.close_spider_async(reason=reason))

    def _engine_idle(self) -> bool:
        return bool(self._engine().spider_is_idle())

    # The parts' callbacks (the parts are built before the loop they call back).
    def _written(self) -> None:
        self.loop.written()

    def _wake(self) -> None:
        self.loop.wake()

    def _closing(self) -> bool:
        return self.loop.closing

    def stopping(self) -> bool:
        """The crawl is being stopped (Ctrl-C, or it is closing): waiting out an outage ends
        (what is unwritten is fetched again by the next run)."""
        engine = self._engine()
        return self.closing or (engine is not None and not getattr(engine, "running", True))

    def give_up(self, exc: BaseException) -> None:
        """The database stayed out of reach longer than HOLOCRON_OUTAGE_MAX: stop the crawl."""
        self.loop.give_up(exc)

    # -- writes ------------------------------------------------------------------------------

    def _periodic_flush(self) -> Any:
        renew = self.leases.renewal_due()  # the heartbeat too: claims in flight or none
        if self.writes.pending() or renew:
            return deferred_from_coro(self._periodic(renew=renew))
        return None

    async def _periodic(self, *, renew: bool) -> None:
        await self.flush()
        if renew and not self.db_outage.waiting():
            await self.renew_leases()

    # -- claims ------------------------------------------------------------------------------

    def scheduler_empty(self) -> None:
        self.loop.maybe_claim()

    def spider_idle(self, spider: Spider) -> None:
        if self.spider is not None and self.loop.idle():
            raise DontCloseSpider

    async def _schedule(self, items: list[WorkItem]) -> int:
        """Crawl the claimed ``items``: those completed and found closer are expanded from
        their records, the others fetched; how many are fetched."""
        assert self.spider is not None
        to_fetch = await expand_from_stored(
            self.store, self.stats, self.spider, items, discover=self.discover, finish=self.finish
        )
        engine = self._engine()
        for request in self.spider.requests_for(to_fetch):
            engine.crawl(request)
        return len(to_fetch)
