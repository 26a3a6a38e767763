"""``scrapy crawl mediawiki -a source=NAME``: a wiki's pages, through its Action API.

The spider routes claimed work items, by resource type, to the parts that fetch them
(:mod:`holocron_scrapy.mediawiki`): page, category, template and file items to :class:`PageQuery`,
listings to :class:`ListingFetch`, a page's other resources to :class:`ResourceFetch`; with
``-a recrawl=changed`` its start asks :class:`RevisionCheck` which completed pages changed. Its
callbacks are thin methods of its own (Scrapy serializes a request's callback by the spider's
method name: ``JOBDIR``).

An API error envelope or an unreadable response fails every work item of the request with the
API's code and info; the crawl goes on.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Self

from scrapy.exceptions import UsageError

from holocron_scrapy.bounds import Bounds, stopped
from holocron_scrapy.config.sources import SourceConfig, load_source
from holocron_scrapy.frontier.extension import work_items_of
from holocron_scrapy.mediawiki import api as mwapi
from holocron_scrapy.mediawiki import listings, resources
from holocron_scrapy.mediawiki.api_request import query_url_of, shown
from holocron_scrapy.mediawiki.discovery import Discoverer
from holocron_scrapy.mediawiki.feed_sync import FeedSync
from holocron_scrapy.mediawiki.listing_fetch import ListingFetch
from holocron_scrapy.mediawiki.page_query import PageQuery
from holocron_scrapy.mediawiki.resource_fetch import ResourceFetch
from holocron_scrapy.mediawiki.responses import ApiResponses, failure_message
from holocron_scrapy.mediawiki.revision_check import RevisionCheck
from holocron_scrapy.middlewares.claims import StaleClaim
from holocron_scrapy.model import canonical_json
from holocron_scrapy.spiders.base import SourceSpider, apply_source

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence

    import scrapy
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from twisted.python.failure import Failure

    from holocron_scrapy.mediawiki.recrawl import KnownPage
    from holocron_scrapy.model import NewWorkItem, WorkItem
    from holocron_scrapy.reexpand import Stored

logger = logging.getLogger(__name__)


class MediaWikiSpider(SourceSpider):
    name = "mediawiki"
    source_system = "mediawiki"
    # The Action API is not governed by robots.txt the way pages are (Wikipedia's robots.txt
    # disallows /w/, where api.php lives), and API etiquette is what Wikimedia asks of API
    # clients instead: obeying it here would silently block every request.
    custom_settings = {"ROBOTSTXT_OBEY": False}

    config: SourceConfig
    titles_per_request: int = mwapi.MAX_TITLES_PER_REQUEST
    maxlag: float = mwapi.DEFAULT_MAXLAG
    list_limit: str = "max"
    revisions_content: bool = False
    bounds: Bounds = Bounds()
    url_limit: int = 2083  # URLLENGTH_LIMIT: longer queries are POSTed (mediawiki.api_request)

    def __init__(self, source: str | None = None, recrawl: str | None = None, **kwargs: Any):
        super().__init__(source, recrawl, **kwargs)
        self.api = ApiResponses(self, lambda: self.stats)
        self.discoverer = Discoverer(self)
        self.page_query = PageQuery(self)
        self.listing_fetch = ListingFetch(self)
        self.resource_fetch = ResourceFetch(self)
        self.revision_check = RevisionCheck(self)
        self.feed_sync = FeedSync(self)

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.config = apply_source(crawler, spider.source, load_source)
        if spider.config.type != "mediawiki":
            raise UsageError(
                f"{spider.config.path}: type: run this source with the spider "
                f"named {spider.config.type!r}, not 'mediawiki'"
            )
        spider.bounds = Bounds.from_settings(crawler.settings)
        spider.url_limit = crawler.settings.getint("URLLENGTH_LIMIT")
        spider.maxlag = crawler.settings.getfloat("MEDIAWIKI_MAXLAG", mwapi.DEFAULT_MAXLAG)
        spider.list_limit = str(crawler.settings.get("MEDIAWIKI_LIST_LIMIT", "max"))
        spider.revisions_content = crawler.settings.getbool("MEDIAWIKI_REVISIONS_CONTENT", False)
        spider.titles_per_request = min(
            crawler.settings.getint("MEDIAWIKI_TITLES_PER_REQUEST", mwapi.MAX_TITLES_PER_REQUEST),
            mwapi.MAX_TITLES_PER_REQUEST,
        )
        return spider

    @property
    def source_name(self) -> str:
        return self.config.name

    # -- the frontier's side -------------------------------------------------------------------

    def new_work_item(
        self,
        title: str,
        depth: int,
        parent: WorkItem | None,
        resource_type: str = resources.PAGE,
    ) -> NewWorkItem:
        return self.discoverer.work_item(title, depth, parent, resource_type)

    def seed_work_items(self) -> list[NewWorkItem]:
        return self.discoverer.seeds()

    def expand_stored(self, item: WorkItem, stored: Stored) -> list[NewWorkItem] | None:
        """What a completed item found again by a shorter path leads to at its new depth, read
        from its last record (:mod:`holocron_scrapy.reexpand`): a page's links and listings
        below ``max_depth`` and its other resources, as its parse queues them; None (fetch it
        again) for a page whose last record says it was deleted."""
        if item.resource_type not in resources.PAGE_TYPES:
            return []  # html, revisions, info: what they hold does not depend on the depth
        page = json.loads(stored.payload)
        if not isinstance(page, dict) or page.get("deleted"):
            return None
        found = []
        if item.depth < self.config.discovery.max_depth:
            found = list(self.discoverer.from_page(item, page))
        return found + list(self.discoverer.other_resources(item))

    def requests_for(self, items: Sequence[WorkItem]) -> list[scrapy.Request]:
        """Requests for claimed items, grouped by resource type (each type has its builder)."""
        builders = self.request_builders()
        by_type: dict[str, list[WorkItem]] = {}
        for item in items:
            by_type.setdefault(item.resource_type, []).append(item)
        requests: list[scrapy.Request] = []
        for resource_type, group in by_type.items():
            builder = builders.get(resource_type)
            if builder is None:
                self.frontier().fail(group, f"no request builder for {resource_type!r}")
                continue
            requests.extend(builder(group))
        return requests

    def request_builders(
        self,
    ) -> dict[str, Callable[[list[WorkItem]], list[scrapy.Request]]]:
        """resource_type -> the method that turns claimed items of that type into requests."""
        return {
            **dict.fromkeys(resources.PAGE_TYPES, self.page_query.requests),
            listings.RESOURCE_LISTING: self.listing_fetch.requests,
            resources.HTML: self.resource_fetch.html_requests,
            resources.REVISIONS: self.resource_fetch.history_requests,
            resources.INFO: self.resource_fetch.info_requests,
        }

    async def start(self) -> AsyncIterator[Any]:
        # The SQL frontier schedules all the work (see holocron_scrapy.frontier.extension);
        # recrawl=changed
        # first reads the wiki's change feeds since the sync point (or, when they do not reach
        # back that far, asks the API which completed pages changed); the frontier claims what
        # was requeued. A crawl records its sync point.
        if self.recrawl == "changed":
            async for request in self.feed_sync.requests():
                yield request
        else:
            await self.feed_sync.record_start()

    def chain_step(
        self, state: dict[str, Any], response: Response, cont: dict[str, str] | None
    ) -> list[Any] | None:
        """Count a response of the continuation chain ``state`` describes (whose next
        ``continue`` is ``cont``): ``None`` while it may go on, else its items failed with the
        reason (a repeated continuation, too many responses or bytes; see
        :mod:`holocron_scrapy.bounds`)."""
        chain = state.setdefault("chain", self.bounds.chain())
        reason = chain.step(len(response.body), None if cont is None else canonical_json(cont))
        if reason is None:
            return None
        request = response.request
        assert request is not None
        url = query_url_of(request)
        return stopped(work_items_of(request), reason, url, self.stats, "chain_stopped")

    # -- callbacks (methods of the spider: JOBDIR serializes them by name) ---------------------

    def parse_query(self, response: Response) -> Iterator[Any]:
        yield from self.page_query.parse(response)

    async def parse_listing(
        self, response: Response, listing: listings.Listing
    ) -> AsyncIterator[Any]:
        async for obj in self.listing_fetch.parse(response, listing):
            yield obj

    def parse_html(self, response: Response) -> Iterator[Any]:
        yield from self.resource_fetch.parse_html(response)

    def parse_history(self, response: Response) -> Iterator[Any]:
        """Every revision, oldest first, merged across ``continue`` into one page object."""
        yield from self.resource_fetch.parse_merged(response, resources.REVISIONS)

    def parse_info(self, response: Response) -> Iterator[Any]:
        """One record per page of the batch: its page info and page props."""
        yield from self.resource_fetch.parse_merged(response, resources.INFO)

    async def parse_revisions(self, response: Response, pages: list[KnownPage]) -> None:
        await self.revision_check.parse(response, pages)

    def revisions_failed(self, failure: Failure) -> None:
        self.revision_check.failed(failure)

    async def parse_feed_probe(self, response: Response, run: str = "") -> AsyncIterator[Any]:
        async for request in self.feed_sync.parse_probe(response, run):
            yield request

    async def parse_feed(self, response: Response, run: str = "") -> AsyncIterator[Any]:
        async for request in self.feed_sync.parse_feed(response, run):
            yield request

    async def parse_feed_embeddedin(
        self, response: Response, template: str, run: str = ""
    ) -> AsyncIterator[Any]:
        async for request in self.feed_sync.parse_embeddedin(response, template, run):
            yield request

    def feed_failed(self, failure: Failure) -> None:
        self.feed_sync.request_failed(failure)

    def request_failed(self, failure: Failure) -> None:
        """Errback: a request that failed for good (after retries) fails its work items."""
        request: scrapy.Request = failure.request  # type: ignore[attr-defined]
        if isinstance(failure.value, StaleClaim):
            return
        maxsize = self.crawler.settings.getint("DOWNLOAD_MAXSIZE")
        message = failure_message(failure, shown(request), maxsize)
        logger.warning("Request failed: %(msg)s", {"msg": message})
        items = [i for i in work_items_of(request) if self.frontier().is_claimed(i)]
        self.frontier().fail(items, message)
