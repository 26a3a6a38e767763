"""Spider middleware between the spiders and the SQL queue.

Spiders yield three kinds of objects besides requests: :class:`ResourceRecord` items (on to the
pipelines, which complete their work items), :class:`NewWorkItem` (a discovered resource, into
the queue if new) and :class:`Outcome` (a work item skipped or failed). This middleware takes the
last two out of the item stream and hands them to the frontier, and fails the work items of a
response whose callback raised, so that no claim is ever left without an ending.

It sees the spider's requests before Scrapy's own spider middlewares, and fails the work items
of a request that one of them would drop without a word (``UrlLengthMiddleware``: a URL over
``URLLENGTH_LIMIT``; ``DepthMiddleware``: a ``DEPTH_LIMIT``, which counts continuations) with
the reason, instead of letting it go.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any, Self

from scrapy import Request

from holocron_scrapy.frontier.extension import Frontier, frontier_of, work_items_of
from holocron_scrapy.model import NewWorkItem, Outcome

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)


class StateMiddleware:
    def __init__(self, frontier: Frontier, url_limit: int = 0, depth_limit: int = 0) -> None:
        self.frontier = frontier
        self.url_limit = url_limit  # URLLENGTH_LIMIT (0: none)
        self.depth_limit = depth_limit  # DEPTH_LIMIT (0: none)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        frontier = frontier_of(crawler)
        settings = crawler.settings
        return cls(frontier, settings.getint("URLLENGTH_LIMIT"), settings.getint("DEPTH_LIMIT"))

    async def process_spider_output(
        self, response: Response, result: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        # The claims the response serves: an outcome ends the claim its request was made for.
        request = response.request
        claims = {} if request is None else {i.id: i.attempt for i in work_items_of(request)}
        discover, finish = self.frontier.discover, self.frontier.finish  # once, not per object
        async for obj in result:
            if isinstance(obj, NewWorkItem):  # the most frequent object: a page yields dozens
                discover(obj)
            elif isinstance(obj, Outcome):
                # A copy only when the spider named no claim.
                unnamed = obj.attempt is None
                finish(
                    dataclasses.replace(obj, attempt=claims.get(obj.work_item_id))
                    if unnamed
                    else obj
                )
            elif isinstance(obj, Request) and self._refused(obj, response):
                continue
            else:
                yield obj

    def _refused(self, request: Request, response: Response) -> bool:
        """Fail the items of a request Scrapy would drop silently; True when it was one."""
        shown = str(request.meta.get("holocron_url", request.url))  # without a source's params
        depth = int(response.meta.get("depth", 0)) + 1  # as DepthMiddleware counts
        if self.url_limit and len(request.url) > self.url_limit:
            event = "urllength"
            message = (
                f"request URL of {len(request.url)} characters, over URLLENGTH_LIMIT "
                f"({self.url_limit}): {shown[:200]}…"
            )
        elif self.depth_limit and depth > self.depth_limit:
            event = "depth"
            message = (
                f"request at Scrapy depth {depth}, over DEPTH_LIMIT ({self.depth_limit}; "
                f"it counts continuations, use discovery.max_depth instead): {shown[:200]}"
            )
        else:
            return False
        items = [i for i in work_items_of(request) if self.frontier.is_claimed(i)]
        if not items:
            return False
        logger.warning("Failing %(n)d work items: %(msg)s", {"n": len(items), "msg": message})
        self.frontier.stats.inc_value(f"holocron/state/refused/{event}")
        self.frontier.fail(items, message)
        return True

    def process_spider_exception(self, response: Response, exception: Exception) -> Iterable[Any]:
        items = [i for i in work_items_of(response.request) if self.frontier.is_claimed(i)]  # type: ignore[arg-type]
        if not items:
            return None  # type: ignore[return-value]  # not ours: let Scrapy handle it
        message = f"{type(exception).__name__}: {exception}"
        logger.error(
            "Failing %(n)d work items of %(url)s: %(error)s",
            {"n": len(items), "url": response.url, "error": message},
            exc_info=exception,
        )
        self.frontier.stats.inc_value(f"holocron/spider_exceptions/{type(exception).__name__}")
        self.frontier.fail(items, message)
        return []
