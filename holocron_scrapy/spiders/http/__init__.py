"""``scrapy crawl http -a source=NAME``: any JSON API or web site, driven by a ``type: http``
source file (:mod:`holocron_scrapy.config.http`), through the same SQL frontier, state
middleware and pipelines as the MediaWiki spider.

Work items are requests (:mod:`holocron_scrapy.http.api`): a URL, or a POST seed. Without
``pagination`` every seed and every discovered URL is a resource: one response, one record,
its discoveries queued at depth + 1 while the depth is below ``max_depth``. With ``pagination``
each seed is a ``listing``: it pages to its end, saving the next page's URL in
``work_items.cursor`` after each page (after what the page listed is in the queue), so a crawl
killed in the middle resumes from there; what a page lists is queued at the listing's depth.

A resource answered with a redirect is skipped ("redirect to X") and X queued at the same
depth (X is the record, as for a MediaWiki redirect); robots.txt forbids (skipped), an HTTP 404
or 410 (skipped), other HTTP errors after the retries and bodies that are not what their
Content-Type says (failed) end the work item with the reason, and the crawl goes on.

``-a recrawl=all`` fetches every known item again (listings from their first page);
``-a recrawl=changed`` asks for every completed resource again with the validators of its
last response (``If-None-Match``, else ``If-Modified-Since``; kept in ``work_items.version``):
a 304 completes it unchanged. In both, an unchanged payload writes no file and no row.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Self

import scrapy
from scrapy import signals
from scrapy.exceptions import IgnoreRequest
from scrapy.http import HtmlResponse, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.asyncio import run_in_thread

from holocron_scrapy.bounds import Bounds
from holocron_scrapy.config.http import HttpSourceConfig, load_http_source
from holocron_scrapy.frontier.extension import work_items_of
from holocron_scrapy.http import api as http_api
from holocron_scrapy.middlewares.claims import StaleClaim
from holocron_scrapy.model import RESOURCE_LISTING, NewWorkItem, Outcome, Status, WorkItem
from holocron_scrapy.secrets import RedactingFilter, SourceSecrets
from holocron_scrapy.spiders.base import RECRAWL_READ_SIZE, SourceSpider, apply_source
from holocron_scrapy.spiders.http.parsing import HttpResponses
from holocron_scrapy.spiders.http.requests import HttpCallbacks, HttpRequests
from holocron_scrapy.spiders.http.site import HttpSite
from holocron_scrapy.spiders.responses import failure_message

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.statscollectors import StatsCollector
    from twisted.python.failure import Failure

    from holocron_scrapy.reexpand import Stored

logger = logging.getLogger(__name__)

#: HTTP statuses that say the resource does not exist: its work item is skipped, not failed.
GONE_STATUSES = (404, 410)


class HttpSpider(SourceSpider):
    name = "http"
    source_system = "http"
    # Web pages and most APIs publish robots.txt for crawlers like this one.
    custom_settings = {"ROBOTSTXT_OBEY": True}

    config: HttpSourceConfig
    requests: HttpRequests
    responses: HttpResponses
    _log_filter: RedactingFilter
    bounds: Bounds = Bounds()
    secrets: SourceSecrets

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.config = apply_source(crawler, spider.source, load_http_source)
        spider.bounds = Bounds.from_settings(crawler.settings)
        config = spider.config
        spider.secrets = SourceSecrets.of(
            urls=[config.base_url, *(seed.url for seed in config.seeds)],
            headers=config.headers,
            params=config.params,
            secret_headers=config.secret_headers,
            secret_params=config.secret_params,
        )
        spider._log_filter = RedactingFilter(spider.secrets)
        crawler.signals.connect(spider._filter_logs, signal=signals.engine_started)
        crawler.signals.connect(spider._unfilter_logs, signal=signals.engine_stopped)
        site = HttpSite(
            config,
            spider.secrets,
            spider.bounds,
            stats=spider._stats,  # the crawler's stats are set when the crawl starts
            frontier=spider.frontier,
        )
        callbacks = HttpCallbacks(
            spider.parse_resource, spider.parse_listing, spider.request_failed
        )
        spider.requests = HttpRequests(site, callbacks, conditional=spider.recrawl == "changed")
        spider.responses = HttpResponses(site, spider.new_work_item, spider.requests)
        return spider

    def _stats(self) -> StatsCollector:
        return self.stats  # the crawler's stats are set when the crawl starts

    @property
    def source_name(self) -> str:
        return self.config.name

    async def start(self) -> AsyncIterator[Any]:
        # The SQL frontier schedules all the work (see holocron_scrapy.frontier.extension);
        # recrawl=changed
        # first puts the completed resources back into the queue (the engine keeps the crawl
        # open until this generator ends).
        if self.recrawl == "changed":
            await self._requeue_completed()
        return
        yield

    async def _requeue_completed(self) -> None:
        """``recrawl=changed``: every completed resource goes back to the queue, to be asked for
        with its validators (``If-None-Match`` / ``If-Modified-Since``): a 304 completes it as it
        was, anything else is recorded if its payload changed. Listings are not run again."""
        frontier = self.frontier()
        if frontier.spider is None:
            return  # the state database could not be opened: the crawl is closing
        # All ids first: what this run completes meanwhile (new ids) is not asked for twice.
        ids: list[int] = []
        while True:
            rows = await run_in_thread(
                frontier.store.completed_versions,
                source_system=self.source_system,
                source_name=self.source_name,
                resource_type=self.config.resource_type,
                after_id=ids[-1] if ids else 0,
                limit=RECRAWL_READ_SIZE,
            )
            if not rows:
                break
            ids += [row[0] for row in rows]
        for start in range(0, len(ids), RECRAWL_READ_SIZE):
            n = await frontier.requeue(ids[start : start + RECRAWL_READ_SIZE])
            self.stats.inc_value("holocron/http/recrawl_requeued", n)
        logger.info("recrawl=changed: %(n)d resources asked for again if changed", {"n": len(ids)})

    # -- the frontier's side -------------------------------------------------------------------

    def priority_for(self, depth: int) -> int:
        return -depth if self.config.discovery.strategy == "breadth" else depth

    def new_work_item(
        self,
        resource_id: str,
        depth: int,
        parent: WorkItem | None,
        resource_type: str = "",
        hops: int = 0,
    ) -> NewWorkItem:
        """``hops``: the redirects that led to it (see :mod:`holocron_scrapy.bounds`)."""
        return NewWorkItem(
            source_system=self.source_system,
            source_name=self.source_name,
            resource_type=resource_type or self.config.resource_type,
            resource_id=resource_id,
            depth=depth,
            priority=self.priority_for(depth),
            discovered_from=parent.id if parent else None,
            hops=hops,
        )

    def expand_stored(self, item: WorkItem, stored: Stored) -> list[NewWorkItem] | None:
        """What a completed resource found again by a shorter path leads to at its new depth,
        read from its last record (:mod:`holocron_scrapy.reexpand`) as :meth:`parse` reads a
        response: its JSON fields, or its HTML links. None (fetch it again) for a POST."""
        if not item.resource_id.startswith(("http://", "https://")):
            return None
        if item.depth >= self.config.discovery.max_depth:
            return []
        data, response = None, None
        if http_api.is_json_type(stored.content_type):
            data = json.loads(stored.payload)
            response = TextResponse(item.resource_id, body=b"", encoding="utf-8")
        else:
            wrapped = json.loads(stored.payload)
            if "text" not in wrapped:
                return []  # not text: nothing to discover
            cls = (
                HtmlResponse if "html" in http_api.media_type(stored.content_type) else TextResponse
            )
            body = wrapped["text"].encode(wrapped["encoding"])
            response = cls(item.resource_id, body=body, encoding=wrapped["encoding"])
        return [
            self.new_work_item(url, item.depth + 1, item)
            for url in self.responses.discovered_urls(response, data)
        ]

    def seed_work_items(self) -> list[NewWorkItem]:
        kind = RESOURCE_LISTING if self.config.pagination else ""
        return [self.new_work_item(seed.resource_id, 0, None, kind) for seed in self.config.seeds]

    def requests_for(self, items: Sequence[WorkItem]) -> list[scrapy.Request]:
        requests = []
        for item in items:
            if item.resource_type == RESOURCE_LISTING:
                request = self.requests.listing(item)
            else:
                request = self.requests.resource(item)
            if request is not None:
                requests.append(request)
        return requests

    def _filter_logs(self) -> None:
        """Mask the source's secrets in every log line of the crawl
        (:mod:`holocron_scrapy.secrets`)."""
        for handler in logging.root.handlers:
            handler.addFilter(self._log_filter)

    def _unfilter_logs(self) -> None:
        for handler in logging.root.handlers:
            handler.removeFilter(self._log_filter)

    # -- responses (methods of the spider: JOBDIR serializes them by name) --------------------

    def parse_resource(self, response: Response) -> Iterator[Any]:
        """One record per resource; its discoveries first (they are queued before the record
        completes its work item)."""
        yield from self.responses.parse_resource(response)

    async def parse_listing(self, response: Response) -> AsyncIterator[Any]:
        """One page of a listing: what it lists into the queue (at the listing's depth), then
        the next page's URL saved as its cursor, then that page requested; at the end the
        listing is completed."""
        async for obj in self.responses.parse_listing(response):
            yield obj

    def request_failed(self, failure: Failure) -> None:
        """Errback: a request that failed for good (after retries) ends its work item."""
        request: scrapy.Request = failure.request  # type: ignore[attr-defined]
        error = failure.value
        if isinstance(error, StaleClaim):
            return
        status = Status.FAILED
        if isinstance(error, HttpError) and error.response.status in GONE_STATUSES:
            status = Status.SKIPPED
        # Messages name the URL without the source's params (they may hold a key).
        shown = request.replace(url=request.meta.get("holocron_url", request.url))
        if isinstance(error, IgnoreRequest) and not isinstance(error, HttpError):  # robots.txt
            message = f"{error or 'ignored'}: {shown.url}"
            status = Status.SKIPPED
        else:
            default_maxsize = self.crawler.settings.getint("DOWNLOAD_MAXSIZE")
            message = failure_message(failure, shown, default_maxsize)
        message = self.secrets.redact(message)
        logger.warning("Request failed: %(msg)s", {"msg": message})
        frontier = self.frontier()
        for item in work_items_of(request):
            if frontier.is_claimed(item):
                frontier.finish(Outcome(item.id, status, message, depth=item.depth))
