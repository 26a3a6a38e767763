"""Downloader middleware: one request budget per source, shared by every process crawling it.

``DOWNLOAD_DELAY`` spaces the requests of one process; N processes on one source would make N
times as many. This middleware asks the state database for the source's next request slot
(:meth:`StateStore.reserve_request`: ``HOLOCRON_BUDGET_DELAY`` seconds apart, by default the
``DOWNLOAD_DELAY``) and waits for it before the request goes on to its download slot, so the
processes together keep the one rate. The reservation runs in a thread and the wait does not
block the reactor. Off (``NotConfigured``) when the delay is 0 or ``HOLOCRON_BUDGET_ENABLED`` is
False. While the state database is unreachable (the frontier's outage, which a failed
reservation also reports) requests go on under the process's own ``DOWNLOAD_DELAY``, counted in
``holocron/budget/errors``; any other failure is counted and logged once.
Stats: ``holocron/budget/reserved``, ``holocron/budget/waited`` (requests that waited) and
``holocron/budget/wait_ms``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Self

from scrapy.exceptions import NotConfigured
from scrapy.utils.asyncio import run_in_thread, sleep

from holocron_scrapy import defaults
from holocron_scrapy.frontier.extension import Frontier, frontier_of
from holocron_scrapy.outage import database_unreachable, short_error

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


class SharedBudgetMiddleware:
    def __init__(self, frontier: Frontier, interval: float) -> None:
        self.frontier = frontier
        self.interval = interval
        self._error_logged = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not settings.getbool("HOLOCRON_BUDGET_ENABLED", defaults.BUDGET_ENABLED):
            raise NotConfigured("HOLOCRON_BUDGET_ENABLED is off")
        delay = settings.get("HOLOCRON_BUDGET_DELAY", defaults.BUDGET_DELAY)
        interval = settings.getfloat("DOWNLOAD_DELAY") if delay is None else float(delay)
        if interval <= 0:
            raise NotConfigured("no shared request budget without a delay")
        return cls(frontier_of(crawler), interval)

    async def process_request(self, request: Request) -> None:
        spider = self.frontier.spider
        if spider is None:
            return
        stats = self.frontier.stats
        outage = self.frontier.db_outage
        if outage.waiting():
            stats.inc_value("holocron/budget/errors")
            return
        try:
            wait: float = await run_in_thread(
                self.frontier.store.reserve_request,
                source_system=spider.source_system,
                source_name=spider.source_name,
                interval_seconds=self.interval,
            )
        except Exception as exc:
            stats.inc_value("holocron/budget/errors")
            if database_unreachable(exc):
                outage.failed(exc)  # logged once per outage
                return
            if not self._error_logged:
                self._error_logged = True
                logger.warning(
                    "Could not reserve a request slot in the shared budget (%(error)s): "
                    "requests go on under this process's DOWNLOAD_DELAY (logged once)",
                    {"error": short_error(exc)},
                )
            return
        outage.recovered()
        stats.inc_value("holocron/budget/reserved")
        if wait > 0:
            stats.inc_value("holocron/budget/waited")
            stats.inc_value("holocron/budget/wait_ms", round(wait * 1000))
            await sleep(wait)
