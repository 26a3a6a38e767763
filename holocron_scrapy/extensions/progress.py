"""Extension: one progress line every ``HOLOCRON_PROGRESS_INTERVAL`` seconds (30) and at the end.

``Progress: 1,204 pages (311/min); queue: pending=…, in_progress=…, completed=…, failed=…,
skipped=…`` — the queue counts come from the SQL queue itself (read in a thread), so they are
the crawl's durable state, not this process's guess. The last line says where the lake and the
database are.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Self

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.asyncio import run_in_thread
from scrapy.utils.defer import deferred_from_coro
from twisted.internet.task import LoopingCall

from holocron_scrapy import defaults
from holocron_scrapy.frontier.extension import Frontier
from holocron_scrapy.model import Status
from holocron_scrapy.outage import short_error

if TYPE_CHECKING:
    from pathlib import Path

    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.statscollectors import StatsCollector

logger = logging.getLogger(__name__)

PAGES_STAT = "holocron/work_items/completed"


class CrawlProgress:
    def __init__(
        self, crawler: Crawler, stats: StatsCollector, *, interval: float, lake_dir: Path
    ) -> None:
        self.crawler = crawler
        self.frontier: Frontier | None = None
        self.stats = stats
        self.interval = interval
        self.lake_dir = lake_dir
        self._task: LoopingCall | None = None
        self._started = time.monotonic()
        self._last = (self._started, 0)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        interval = crawler.settings.getfloat(
            "HOLOCRON_PROGRESS_INTERVAL", defaults.PROGRESS_INTERVAL
        )
        if interval <= 0:
            raise NotConfigured("HOLOCRON_PROGRESS_INTERVAL is 0")
        assert crawler.stats is not None
        ext = cls(
            crawler,
            crawler.stats,
            interval=interval,
            lake_dir=defaults.lake_dir(crawler.settings),
        )
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self, spider: Spider) -> None:
        # Extensions cannot look each other up while they are being built: do it now.
        self.frontier = self.crawler.get_extension(Frontier)
        if self.frontier is None:
            logger.warning("CrawlProgress needs the holocron Frontier extension: disabled")
            return
        self._started = time.monotonic()
        self._last = (self._started, 0)
        self._task = LoopingCall(self._tick)
        self._task.start(self.interval, now=False)

    def _tick(self) -> Any:
        return deferred_from_coro(self.log_progress())

    async def log_progress(self, *, final: bool = False) -> None:
        if self.frontier is None or self.frontier.spider is None:
            return
        spider = self.frontier.spider
        try:
            counts = await run_in_thread(
                self.frontier.store.counts,
                source_system=spider.source_system,
                source_name=spider.source_name,
            )
        except Exception as exc:
            # During a database outage the frontier logs it (once); the line says so, rather
            # than showing an empty queue.
            queue = f"not readable now ({short_error(exc)})"
        else:
            queue = ", ".join(f"{s.value}={counts.get(s.value, 0)}" for s in Status)
        now, pages = time.monotonic(), int(self.stats.get_value(PAGES_STAT, 0))
        since, before = (self._started, 0) if final else self._last
        rate = (pages - before) * 60.0 / max(now - since, 1e-9)
        self._last = (now, pages)
        logger.info(
            "Progress: %(pages)d pages (%(rate).0f/min); queue: %(queue)s",
            {"pages": pages, "rate": rate, "queue": queue},
        )

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        if self._task is not None and self._task.running:
            self._task.stop()
        await self.log_progress(final=True)
        if self.frontier is not None and self.frontier.spider is not None:
            logger.info(
                "Finished (%(reason)s). Lake: %(lake)s · Database: %(db)s",
                {"reason": reason, "lake": self.lake_dir, "db": self.frontier.store.url_for_log},
            )
