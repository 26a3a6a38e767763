"""Downloader middleware: a memory budget for response bodies in flight (issue 10, "peak memory").

A body that has arrived is held in memory until Scrapy is done with it: its callback, its items
through the pipelines (then the response object is freed). Four 50 MB answers decoded at once
took 1.5 GB. This middleware counts the bytes of every response body it hands on, until that
response object is freed (a :func:`weakref.finalize` on it: the count follows the memory, whatever
path the response takes), and holds a new request back while the bodies held reach
``HOLOCRON_BODY_BUDGET`` bytes (256 MiB). The held request still counts toward
``CONCURRENT_REQUESTS``, so the engine takes no more work meanwhile (Scrapy's back-pressure). So
the bodies a crawl holds stay under the budget plus what the downloads already under way when it
was reached bring: at most ``CONCURRENT_REQUESTS`` times ``DOWNLOAD_MAXSIZE`` (8 times 64 MiB),
the bound of a first burst of large answers, before the crawl has seen any.

A request never waits longer than ``HOLOCRON_BODY_BUDGET_MAX_WAIT`` seconds (60): a body kept
alive by a reference cycle until the garbage collector runs must not wedge the crawl; the request
then goes on, logged once. ``HOLOCRON_BODY_BUDGET = 0`` turns the middleware off.
Stats: ``holocron/body_budget/waited`` (requests held back), ``…/wait_ms``, ``…/timeouts``,
``…/peak_bytes``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import TYPE_CHECKING, Self

from scrapy.exceptions import NotConfigured

from holocron_scrapy import defaults

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.statscollectors import StatsCollector

logger = logging.getLogger(__name__)


class BodyBudgetMiddleware:
    """Runs on asyncio's loop (the add-on requires the asyncio reactor)."""

    def __init__(self, budget: int, max_wait: float, stats: StatsCollector) -> None:
        self.budget = budget
        self.max_wait = max_wait
        self.stats = stats
        self.held = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._timeout_logged = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        budget = settings.getint("HOLOCRON_BODY_BUDGET", defaults.BODY_BUDGET)
        if budget <= 0:
            raise NotConfigured("HOLOCRON_BODY_BUDGET is 0")
        max_wait = settings.getfloat("HOLOCRON_BODY_BUDGET_MAX_WAIT", defaults.BODY_BUDGET_MAX_WAIT)
        if max_wait <= 0:
            raise NotConfigured("HOLOCRON_BODY_BUDGET_MAX_WAIT must be over 0 s")
        assert crawler.stats is not None
        return cls(budget, max_wait, crawler.stats)

    async def process_request(self, request: Request) -> None:
        if self.held < self.budget:
            return
        self.stats.inc_value("holocron/body_budget/waited")
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        while self.held >= self.budget:
            left = self.max_wait - (time.monotonic() - started)
            if left <= 0:
                self._timed_out()
                break
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            await asyncio.wait([waiter], timeout=left)
        self.stats.inc_value(
            "holocron/body_budget/wait_ms", round((time.monotonic() - started) * 1000)
        )

    def process_response(self, request: Request, response: Response) -> Response:
        size = len(response.body)
        if size:
            self.held += size
            self.stats.max_value("holocron/body_budget/peak_bytes", self.held)
            # The response may be freed in any thread (a pipeline's): the count changes on the
            # loop's.
            loop = asyncio.get_running_loop()
            weakref.finalize(response, _call_soon, loop, self._release, size).atexit = False
        return response

    def _release(self, size: int) -> None:
        self.held -= size
        if self.held < self.budget:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _timed_out(self) -> None:
        self.stats.inc_value("holocron/body_budget/timeouts")
        if not self._timeout_logged:
            self._timeout_logged = True
            logger.warning(
                "Response bodies of %(held)d bytes were still held after %(wait).0f s "
                "(HOLOCRON_BODY_BUDGET %(budget)d): a request goes on over the budget "
                "(logged once)",
                {"held": self.held, "wait": self.max_wait, "budget": self.budget},
            )


def _call_soon(loop: asyncio.AbstractEventLoop, release: Callable[[int], None], size: int) -> None:
    if not loop.is_closed():
        loop.call_soon_threadsafe(release, size)
