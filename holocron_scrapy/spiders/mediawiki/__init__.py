"""``scrapy crawl mediawiki -a source=NAME``: a wiki's pages, through its Action API.

The spider routes claimed work items, by resource type, to its parts, one module each in this
package: page, category, template and file items to :class:`.page_query.PageQuery`, listings to
:class:`.listing_fetch.ListingFetch`, a page's other resources to
:class:`.resource_fetch.ResourceFetch`; with ``-a recrawl=changed`` its start asks
:class:`.feed_sync.FeedSync` (the change feeds) or :class:`.revision_check.RevisionCheck` which
completed pages changed; :mod:`.responses` decodes every answer. The Action API's rules are
pure functions in :mod:`holocron_scrapy.mediawiki`.

A part is given what it uses (the source config, the API options, the stats, the frontier
look-up, the spider's callbacks), never the spider. The callbacks are thin methods of the
spider (Scrapy serializes a request's callback by the spider's method name: ``JOBDIR``).

An API error envelope or an unreadable response fails every work item of the request with the
API's code and info; the crawl goes on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Self

from scrapy.exceptions import UsageError

from holocron_scrapy import defaults
from holocron_scrapy.bounds import Bounds
from holocron_scrapy.config.sources import SourceConfig, load_source
from holocron_scrapy.frontier.extension import work_items_of
from holocron_scrapy.mediawiki import api as mwapi
from holocron_scrapy.mediawiki import listings, resources
from holocron_scrapy.mediawiki.api_request import shown
from holocron_scrapy.mediawiki.discovery import Discoverer
from holocron_scrapy.middlewares.claims import StaleClaim
from holocron_scrapy.model import RESOURCE_LISTING
from holocron_scrapy.spiders.base import SourceSpider, apply_source
from holocron_scrapy.spiders.mediawiki.feed_sync import FeedCallbacks, FeedSync
from holocron_scrapy.spiders.mediawiki.listing_fetch import ListingFetch
from holocron_scrapy.spiders.mediawiki.options import ApiOptions, Wiki
from holocron_scrapy.spiders.mediawiki.page_query import PageQuery
from holocron_scrapy.spiders.mediawiki.resource_fetch import ResourceCallbacks, ResourceFetch
from holocron_scrapy.spiders.mediawiki.responses import ApiResponses
from holocron_scrapy.spiders.mediawiki.revision_check import RevisionCheck
from holocron_scrapy.spiders.responses import failure_message

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence

    import scrapy
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.statscollectors import StatsCollector
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

    titles_per_request: int = mwapi.MAX_TITLES_PER_REQUEST
    maxlag: float = mwapi.DEFAULT_MAXLAG
    list_limit: str = "max"
    revisions_content: bool = False
    bounds: Bounds = Bounds()
    url_limit: int = 2083  # URLLENGTH_LIMIT: longer queries are POSTed (mediawiki.api_request)

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        config = apply_source(crawler, spider.source, load_source)
        if config.type != "mediawiki":
            raise UsageError(
                f"{config.path}: type: run this source with the spider "
                f"named {config.type!r}, not 'mediawiki'"
            )
        spider.bounds = Bounds.from_settings(crawler.settings)
        spider.url_limit = crawler.settings.getint("URLLENGTH_LIMIT")
        spider.maxlag = crawler.settings.getfloat("MEDIAWIKI_MAXLAG", defaults.MEDIAWIKI_MAXLAG)
        spider.list_limit = str(
            crawler.settings.get("MEDIAWIKI_LIST_LIMIT", defaults.MEDIAWIKI_LIST_LIMIT)
        )
        spider.revisions_content = crawler.settings.getbool(
            "MEDIAWIKI_REVISIONS_CONTENT", defaults.MEDIAWIKI_REVISIONS_CONTENT
        )
        spider.titles_per_request = min(
            crawler.settings.getint(
                "MEDIAWIKI_TITLES_PER_REQUEST", defaults.MEDIAWIKI_TITLES_PER_REQUEST
            ),
            mwapi.MAX_TITLES_PER_REQUEST,
        )
        spider.config = config
        return spider

    @property
    def config(self) -> SourceConfig:
        return self._config

    @config.setter
    def config(self, config: SourceConfig) -> None:
        """The source; its parts are built (again) for it, with the settings read."""
        self._config = config
        options = ApiOptions(
            api_url=config.api_url,
            maxlag=self.maxlag,
            url_limit=self.url_limit,
            list_limit=self.list_limit,
            titles_per_request=self.titles_per_request,
            revisions_content=self.revisions_content,
        )
        wiki = Wiki(
            config,
            options,
            api=ApiResponses(self, self._stats),
            discoverer=Discoverer(config, self.source_system),
            bounds=self.bounds,
            stats=self._stats,  # the crawler's stats are set when the crawl starts
            frontier=self.frontier,
            request_failed=self.request_failed,
        )
        self.api, self.discoverer = wiki.api, wiki.discoverer
        self.page_query = PageQuery(wiki, self.parse_query)
        self.listing_fetch = ListingFetch(wiki, self.parse_listing)
        self.resource_fetch = ResourceFetch(
            wiki, ResourceCallbacks(self.parse_html, self.parse_history, self.parse_info)
        )
        self.revision_check = RevisionCheck(wiki, self.parse_revisions, self.revisions_failed)
        self.feed_sync = FeedSync(
            wiki,
            revision_check=self.revision_check,
            new_work=self.new_work,
            callbacks=FeedCallbacks(
                self.parse_feed_probe, self.parse_feed, self.parse_feed_embeddedin, self.feed_failed
            ),
        )

    def _stats(self) -> StatsCollector:
        return self.stats

    def new_work(self) -> None:
        """Work items were put into the queue behind the frontier's back (added or requeued by
        the change feed sync): the frontier claims soon."""
        self.frontier().queue_changed()

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
        """See :meth:`Discoverer.from_stored` (:mod:`holocron_scrapy.reexpand`)."""
        return self.discoverer.from_stored(item, stored.payload)

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
            RESOURCE_LISTING: self.listing_fetch.requests,
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
