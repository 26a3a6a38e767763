"""``-a recrawl=changed``: one ``prop=info`` request per batch of completed pages of every
:data:`resources.PAGE_TYPES` (see :mod:`holocron_scrapy.mediawiki.recrawl`); the changed and
deleted ones go back into the queue with their other configured resources."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy.utils.asyncio import run_in_thread

from holocron_scrapy.mediawiki import errors, resources
from holocron_scrapy.mediawiki.api_request import api_request
from holocron_scrapy.mediawiki.recrawl import KnownPage, compare, info_url
from holocron_scrapy.spiders.base import RECRAWL_READ_SIZE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    import scrapy
    from scrapy.http import Response
    from twisted.python.failure import Failure

    from holocron_scrapy.spiders.mediawiki.options import Wiki


logger = logging.getLogger(__name__)

__all__ = ["RECRAWL_READ_SIZE", "RevisionCheck"]


class RevisionCheck:
    """``callback`` and ``errback``: the spider's methods its requests name (``JOBDIR``)."""

    def __init__(
        self, wiki: Wiki, callback: Callable[..., Any], errback: Callable[[Failure], None]
    ) -> None:
        self.wiki = wiki
        self.callback = callback
        self.errback = errback
        self.unanswered_requests = 0  # checks sent whose answer was not handled yet
        self.all_sent = False
        self.errors = 0
        self.on_complete: Callable[[], Awaitable[None]] | None = None

    async def requests(
        self, on_complete: Callable[[], Awaitable[None]] | None = None
    ) -> AsyncIterator[scrapy.Request]:
        """One ``prop=info`` request per batch of completed items fetched by the page query
        (``page``, ``category``, ``template``, ``file``: pages of every namespace, whose version
        is their ``lastrevid``), read from the queue in pages (by type, then id); batches stay
        full across reads and types. ``on_complete`` is awaited once every check was answered
        and its changes queued, if none failed (the change feed sync then records its sync
        point)."""
        self.on_complete = on_complete
        async for request in self._requests():
            self.unanswered_requests += 1
            yield request
        self.all_sent = True
        await self._maybe_complete()

    async def _maybe_complete(self) -> None:
        if self.all_sent and not self.unanswered_requests and not self.errors:
            callback, self.on_complete = self.on_complete, None
            if callback is not None:
                await callback()

    async def _requests(self) -> AsyncIterator[scrapy.Request]:
        frontier = self.wiki.frontier()
        if frontier.spider is None:
            return  # the state database could not be opened: the crawl is closing
        n = self.wiki.options.titles_per_request
        batch: list[KnownPage] = []
        for resource_type in resources.PAGE_TYPES:
            after_id = 0
            while True:
                rows = await run_in_thread(
                    frontier.store.completed_pages,
                    source_system=self.wiki.discoverer.source_system,
                    source_name=self.wiki.config.name,
                    resource_type=resource_type,
                    after_id=after_id,
                    limit=RECRAWL_READ_SIZE,
                )
                if not rows:
                    break
                after_id = rows[-1][0]
                batch.extend(KnownPage(*row) for row in rows)
                while len(batch) >= n:
                    yield self.request(batch[:n])
                    batch = batch[n:]
        if batch:
            yield self.request(batch)

    def request(self, pages: list[KnownPage]) -> scrapy.Request:
        options = self.wiki.options
        return api_request(
            info_url(options.api_url, [page.title for page in pages], options.maxlag),
            options.url_limit,
            callback=self.callback,
            errback=self.errback,
            dont_filter=True,
            # No holocron_work_items: these pages are not claimed (the claim check lets it by).
            cb_kwargs={"pages": pages},
        )

    async def parse(self, response: Response, pages: list[KnownPage]) -> None:
        """Requeue the pages whose revision changed, or that were deleted, since their last
        record, and their other configured resources (``html``, ``revisions``, ``info`` items
        of the same title, if completed or skipped); the frontier claims them and the refetch
        records them (content_hash: an unchanged one writes nothing)."""
        try:
            await self._parse(response, pages)
        finally:
            self.unanswered_requests -= 1
        await self._maybe_complete()

    async def _parse(self, response: Response, pages: list[KnownPage]) -> None:
        stats = self.wiki.stats()
        try:
            data = errors.check_shape(errors.check_envelope(errors.decode_json(response)))
        except errors.ApiError as exc:
            self.errors += 1
            stats.inc_value("holocron/recrawl/check_errors")
            logger.warning(
                "Revision check of %(n)d pages failed (%(error)s); they are not refreshed",
                {"n": len(pages), "error": exc},
            )
            return
        verdict = compare(data, pages)
        stats.inc_value("holocron/recrawl/checked", len(pages))
        stats.inc_value("holocron/recrawl/changed", len(verdict.changed))
        stats.inc_value("holocron/recrawl/touched", len(verdict.touched))
        stats.inc_value("holocron/recrawl/deleted", len(verdict.deleted))
        if verdict.unanswered:
            stats.inc_value("holocron/recrawl/unanswered", len(verdict.unanswered))
            logger.warning(
                "The API did not answer for %(n)d pages, e.g. %(title)r; they are not refreshed",
                {"n": len(verdict.unanswered), "title": verdict.unanswered[0].title},
            )
        refetch = verdict.to_refetch
        await self.wiki.frontier().requeue(
            [page.work_item_id for page in refetch],
            [
                self.wiki.dedupe_key(
                    resource_type,
                    page.title,
                )
                for page in refetch
                for resource_type in self.wiki.config.resources
                if resource_type != resources.PAGE
            ],
        )

    def failed(self, failure: Failure) -> None:
        """Errback of a revision check: its pages are not refreshed this time."""
        self.errors += 1
        self.unanswered_requests -= 1
        self.wiki.stats().inc_value("holocron/recrawl/check_errors")
        logger.warning(
            "Revision check failed: %(error)s; its pages are not refreshed",
            {"error": f"{type(failure.value).__name__}: {failure.getErrorMessage()}"},
        )
