"""Spider middleware between the spiders and the SQL queue.

Spiders yield three kinds of objects besides requests: :class:`ResourceRecord` items (on to the
pipelines, which complete their work items), :class:`NewWorkItem` (a discovered resource, into
the queue if new) and :class:`Outcome` (a work item skipped or failed). This middleware takes the
last two out of the item stream and hands them to the frontier, and fails the work items of a
response whose callback raised, so that no claim is ever left without an ending.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any, Self

from holocron_scrapy.frontier import Frontier, frontier_of, work_items_of
from holocron_scrapy.model import NewWorkItem, Outcome

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)


class StateMiddleware:
    def __init__(self, frontier: Frontier) -> None:
        self.frontier = frontier

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        frontier = frontier_of(crawler)
        return cls(frontier)

    async def process_spider_output(
        self, response: Response, result: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        # The claims the response serves: an outcome ends the claim its request was made for.
        request = response.request
        claims = {} if request is None else {i.id: i.attempt for i in work_items_of(request)}
        async for obj in result:
            if isinstance(obj, NewWorkItem):
                self.frontier.discover(obj)
            elif isinstance(obj, Outcome):
                attempt = claims.get(obj.work_item_id) if obj.attempt is None else obj.attempt
                self.frontier.finish(dataclasses.replace(obj, attempt=attempt))
            else:
                yield obj

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
