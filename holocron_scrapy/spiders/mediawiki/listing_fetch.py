"""Listing items (:mod:`holocron_scrapy.mediawiki.listings`): one request per batch, the members
queued, then the ``continue`` object saved as the item's cursor before the next batch is asked
for, so a listing stopped in the middle resumes from its cursor."""

from __future__ import annotations

import functools
import json
import logging
from typing import TYPE_CHECKING, Any

from holocron_scrapy.bounds import Chain, stopped
from holocron_scrapy.frontier.extension import work_items_of
from holocron_scrapy.mediawiki import api as mwapi
from holocron_scrapy.mediawiki import listings
from holocron_scrapy.mediawiki.api_request import api_request, query_url_of
from holocron_scrapy.model import Outcome, Status, WorkItem, canonical_json

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    import scrapy
    from scrapy.http import Response

    from holocron_scrapy.spiders.mediawiki.options import Wiki


logger = logging.getLogger(__name__)


class ListingFetch:
    """``callback``: the spider's method its requests name (``JOBDIR``)."""

    def __init__(self, wiki: Wiki, callback: Callable[..., Any]) -> None:
        self.wiki = wiki
        self.callback = callback

    def requests(self, items: list[WorkItem]) -> list[scrapy.Request]:
        """One request per claimed listing, from its saved cursor when it has one."""
        requests = []
        for item in items:
            try:
                listing = listings.Listing.parse(item.resource_id)
            except listings.ListingError as exc:
                self.wiki.frontier().fail([item], str(exc))
                continue
            cont = None
            if item.cursor:
                cont = json.loads(item.cursor)
                self.wiki.stats().inc_value("holocron/listings/resumed")
                logger.info(
                    "Listing %(listing)s resumes from its cursor %(cursor)s",
                    {"listing": item.resource_id, "cursor": item.cursor},
                )
            requests.append(self.request(item, listing, cont, self.wiki.bounds.listing()))
        return requests

    def request(
        self,
        item: WorkItem,
        listing: listings.Listing,
        cont: dict[str, str] | None,
        chain: Chain,
    ) -> scrapy.Request:
        options = self.wiki.options
        url = listings.listing_url(
            options.api_url, listing, cont, limit=options.list_limit, maxlag=options.maxlag
        )
        return api_request(
            url,
            options.url_limit,
            callback=self.callback,
            errback=self.wiki.request_failed,
            dont_filter=True,
            priority=item.priority,
            meta={"holocron_work_items": [item], "holocron_chain": chain},
            cb_kwargs={"listing": listing},
        )

    async def parse(self, response: Response, listing: listings.Listing) -> AsyncIterator[Any]:
        """One batch of a listing: its members into the queue, then its cursor saved, then the
        next batch requested; without ``continue`` the listing is completed."""
        request = response.request
        assert request is not None
        [item] = work_items_of(request)
        adapt = functools.partial(listings.as_query, listing)
        data, failures = self.wiki.api.data(response, request, [item], adapt)
        if data is None:
            for obj in failures:
                yield obj
            return
        frontier = self.wiki.frontier()
        discoverer = self.wiki.discoverer
        found = listings.members(listing, data)
        category_depth = self.wiki.config.discovery.category_depth
        for member in found:
            # Straight into the frontier's buffer: save_cursor flushes it before the cursor.
            if discoverer.listed(listing, member):
                resource_type = discoverer.resource_type_for(member.ns)
                frontier.discover(
                    discoverer.work_item(member.title, item.depth, item, resource_type)
                )
            if member.subcategory and item.depth < category_depth:
                sub = listings.categorymembers(member.title)
                frontier.discover(discoverer.listing_item(sub, item.depth + 1, item))
        self.wiki.stats().inc_value("holocron/listings/batches")
        self.wiki.stats().inc_value("holocron/listings/members", len(found))
        cont = mwapi.next_continue(data)
        if cont is None:
            yield Outcome(item.id, Status.COMPLETED, depth=item.depth)
            return
        chain: Chain = request.meta["holocron_chain"]
        reason = chain.step(len(response.body), canonical_json(cont))
        if reason is not None:
            url = query_url_of(request)
            for outcome in stopped([item], reason, url, self.wiki.stats(), "listing_stopped"):
                yield outcome
            return
        if await frontier.save_cursor(item, cont):
            yield self.request(item, listing, cont, chain)
