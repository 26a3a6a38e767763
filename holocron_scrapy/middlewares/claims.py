"""Downloader middleware: only requests whose claims are still held by this run are fetched.

With ``JOBDIR``, Scrapy restores the requests that were queued when a crawl stopped. Their
claims ended with that run (released back to the SQL queue, which re-issues the work), so such a
request is dropped here instead of fetching the same resource twice. So are the queued requests
of claims this run lost to another worker (their lease expired while the process was stalled:
see :meth:`Leases.renew <holocron_scrapy.frontier.leases.Leases.renew>`). Why this is a
middleware and not a scheduler: the README, "The claim loop, and why it is an extension".
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Self

from scrapy.exceptions import IgnoreRequest

from holocron_scrapy.frontier.extension import Frontier, frontier_of, work_items_of

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


class StaleClaim(IgnoreRequest):
    """The request's work items are no longer claimed by this run."""


class ClaimCheckMiddleware:
    def __init__(self, frontier: Frontier) -> None:
        self.frontier = frontier

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        frontier = frontier_of(crawler)
        return cls(frontier)

    def process_request(self, request: Request) -> None:
        items = work_items_of(request)
        if items and not any(self.frontier.is_claimed(item) for item in items):
            self.frontier.stats.inc_value("holocron/frontier/stale_requests")
            raise StaleClaim(f"no longer claimed: {request.url}")
