"""``scrapy crawl mediawiki -a source=NAME``: a wiki's pages, through its Action API.

Work items are page titles. Up to ``MEDIAWIKI_TITLES_PER_REQUEST`` (50, the API's limit for
content) claimed titles go into one ``action=query`` for the current revision with its content,
the page's links and its info, following ``continue`` until every prop is complete (a page with
5,000 links loses none); the pages are merged by page id across those responses. Then each
title ends one of three ways:

* a page: a :class:`ResourceRecord` (the merged page as the API served it) and, while its depth
  is below ``max_depth``, its links in the configured namespaces as new work items;
* a redirect or a non-canonical title: skipped, and the target page queued at the same depth
  (the target is the record, the redirect is not);
* missing or invalid: skipped with the reason.

An API error envelope or an unreadable response fails every work item of the request with the
API's code and info; the crawl goes on.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import scrapy
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import CloseSpider, DownloadCancelledError, UsageError
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.asyncio import run_in_thread

from holocron_scrapy import listings, mwapi, resources
from holocron_scrapy.frontier import Frontier, work_items_of
from holocron_scrapy.items import ResourceRecord
from holocron_scrapy.middlewares.claims import StaleClaim
from holocron_scrapy.model import (
    DELETED_VERSION,
    NewWorkItem,
    Outcome,
    Status,
    WorkItem,
    dedupe_key,
)
from holocron_scrapy.recrawl import KnownPage, compare, deletion_payload, info_url
from holocron_scrapy.sources import SourceConfig, SourceConfigError, load_source

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence

    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.statscollectors import StatsCollector
    from twisted.python.failure import Failure

logger = logging.getLogger(__name__)

RESOURCE_PAGE = "page"
#: Category and template pages are resources of their own type when their discovery is on
#: (``discovery.categories``, ``discovery.templates``); they are fetched as pages are.
RESOURCE_CATEGORY = "category"
RESOURCE_TEMPLATE = "template"
TEMPLATE_NAMESPACE = 10
RECRAWL_MODES = ("all", "changed")
#: Completed work items read per state-database query by ``recrawl=changed``.
RECRAWL_READ_SIZE = 1000


def _headers(headers: Any) -> dict[str, str]:
    return {k.decode("latin-1"): b", ".join(v).decode("latin-1") for k, v in headers.items()}


class MediaWikiSpider(scrapy.Spider):
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

    @property
    def _stats(self) -> StatsCollector:
        assert self.crawler.stats is not None
        return self.crawler.stats

    def __init__(self, source: str | None = None, recrawl: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if not source:
            raise UsageError("missing -a source=NAME (a file in sources/ or a path to a YAML file)")
        if recrawl is not None and recrawl not in RECRAWL_MODES:
            raise UsageError(f"-a recrawl={recrawl!r}: expected one of {', '.join(RECRAWL_MODES)}")
        self.source = source
        self.recrawl = recrawl

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        sources_dir = crawler.settings.get("HOLOCRON_SOURCES_DIR")
        try:
            spider.config = load_source(spider.source, Path(sources_dir) if sources_dir else None)
        except SourceConfigError as exc:
            raise UsageError(str(exc)) from exc
        if spider.config.type != "mediawiki":
            raise UsageError(
                f"{spider.config.path}: type: run this source with the spider "
                f"named {spider.config.type!r}, not 'mediawiki'"
            )
        # The source's own Scrapy settings, for this crawl only (settings are not frozen yet).
        crawler.settings.setdict(dict(spider.config.settings), priority="spider")
        crawler.settings.set("USER_AGENT", spider.config.user_agent, priority="spider")
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

    def _frontier(self) -> Frontier:
        frontier: Frontier | None = self.__dict__.get("_frontier_ext")
        if frontier is None:
            frontier = self.crawler.get_extension(Frontier)
            if frontier is None:
                raise CloseSpider("the holocron Frontier extension is not enabled")
            self._frontier_ext = frontier
        return frontier

    # -- the frontier's side -------------------------------------------------------------------

    def priority_for(self, depth: int) -> int:
        return -depth if self.config.discovery.strategy == "breadth" else depth

    def new_work_item(
        self,
        title: str,
        depth: int,
        parent: WorkItem | None,
        resource_type: str = RESOURCE_PAGE,
    ) -> NewWorkItem:
        return NewWorkItem(
            source_system=self.source_system,
            source_name=self.source_name,
            resource_type=resource_type,
            resource_id=title,
            depth=depth,
            priority=self.priority_for(depth),
            discovered_from=parent.id if parent else None,
        )

    def seed_work_items(self) -> list[NewWorkItem]:
        seeds = [self.new_work_item(t, 0, None) for t in self.config.seeds.titles]
        seeds += [
            self._listing_work_item(lst, 0, None)
            for lst in listings.seed_listings(self.config.seeds)
        ]
        return seeds

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
                self._frontier().fail(group, f"no request builder for {resource_type!r}")
                continue
            requests.extend(builder(group))
        return requests

    def request_builders(
        self,
    ) -> dict[str, Callable[[list[WorkItem]], list[scrapy.Request]]]:
        """resource_type -> the method that turns claimed items of that type into requests."""
        return {
            RESOURCE_PAGE: self._page_requests,
            RESOURCE_CATEGORY: self._page_requests,
            RESOURCE_TEMPLATE: self._page_requests,
            listings.RESOURCE_LISTING: self._listing_requests,
            resources.HTML: self._html_requests,
            resources.REVISIONS: self._history_requests,
            resources.INFO: self._info_requests,
        }

    def _page_requests(self, items: list[WorkItem]) -> list[scrapy.Request]:
        n = self.titles_per_request
        return [self._request(items[i : i + n], {}) for i in range(0, len(items), n)]

    def _request(
        self, items: list[WorkItem], state: dict[str, Any], cont: dict[str, str] | None = None
    ) -> scrapy.Request:
        discovery = self.config.discovery
        props = [
            prop
            for prop, on in (
                ("categories", discovery.categories),
                ("templates", discovery.templates),
            )
            if on
        ]
        url = mwapi.query_url(
            self.config.api_url, [i.resource_id for i in items], cont, self.maxlag, props=props
        )
        return scrapy.Request(
            url,
            callback=self.parse_query,
            errback=self.request_failed,
            dont_filter=True,  # the SQL queue is the dedupe; JOBDIR's dupefilter must not drop
            priority=max(i.priority for i in items),
            meta={"holocron_work_items": items, "holocron_state": state},
        )

    async def start(self) -> AsyncIterator[Any]:
        # The SQL frontier schedules all the work (see holocron_scrapy.frontier); recrawl=changed
        # first asks the API which completed pages changed (the engine keeps the crawl open
        # until this generator ends, and the frontier then claims what was requeued).
        if self.recrawl == "changed":
            async for request in self._revision_checks():
                yield request

    async def _revision_checks(self) -> AsyncIterator[scrapy.Request]:
        """One ``prop=info`` request per batch of completed pages, read from the queue in pages
        (by id); batches stay full across reads."""
        frontier = self._frontier()
        if frontier.spider is None:
            return  # the state database could not be opened: the crawl is closing
        n = self.titles_per_request
        after_id = 0
        batch: list[KnownPage] = []
        while True:
            rows = await run_in_thread(
                frontier.store.completed_versions,
                source_system=self.source_system,
                source_name=self.source_name,
                resource_type=RESOURCE_PAGE,
                after_id=after_id,
                limit=RECRAWL_READ_SIZE,
            )
            if not rows:
                break
            after_id = rows[-1][0]
            batch.extend(KnownPage(*row) for row in rows)
            while len(batch) >= n:
                yield self._revisions_request(batch[:n])
                batch = batch[n:]
        if batch:
            yield self._revisions_request(batch)

    def _revisions_request(self, pages: list[KnownPage]) -> scrapy.Request:
        return scrapy.Request(
            info_url(self.config.api_url, [page.title for page in pages], self.maxlag),
            callback=self.parse_revisions,
            errback=self.revisions_failed,
            dont_filter=True,
            # No holocron_work_items: these pages are not claimed (the claim check lets it by).
            cb_kwargs={"pages": pages},
        )

    async def parse_revisions(self, response: Response, pages: list[KnownPage]) -> None:
        """``recrawl=changed``: requeue the pages whose revision changed, or that were deleted,
        since their last record, and their other configured resources (``html``,
        ``revisions``, ``info`` items of the same title, if completed or skipped); the frontier
        claims them and the refetch records them (content_hash: an unchanged one writes
        nothing)."""
        try:
            data = mwapi.check_envelope(self._json(response))
        except mwapi.ApiError as exc:
            self._stats.inc_value("holocron/recrawl/check_errors")
            logger.warning(
                "Revision check of %(n)d pages failed (%(error)s); they are not refreshed",
                {"n": len(pages), "error": exc},
            )
            return
        verdict = compare(data, pages)
        self._stats.inc_value("holocron/recrawl/checked", len(pages))
        self._stats.inc_value("holocron/recrawl/changed", len(verdict.changed))
        self._stats.inc_value("holocron/recrawl/deleted", len(verdict.deleted))
        if verdict.unanswered:
            self._stats.inc_value("holocron/recrawl/unanswered", len(verdict.unanswered))
            logger.warning(
                "The API did not answer for %(n)d pages, e.g. %(title)r; they are not refreshed",
                {"n": len(verdict.unanswered), "title": verdict.unanswered[0].title},
            )
        refetch = verdict.to_refetch
        await self._frontier().requeue(
            [page.work_item_id for page in refetch],
            [
                dedupe_key(self.source_system, self.source_name, resource_type, page.title)
                for page in refetch
                for resource_type in self.config.resources
                if resource_type != RESOURCE_PAGE
            ],
        )

    def revisions_failed(self, failure: Failure) -> None:
        """Errback of a revision check: its pages are not refreshed this time."""
        self._stats.inc_value("holocron/recrawl/check_errors")
        logger.warning(
            "Revision check failed: %(error)s; its pages are not refreshed",
            {"error": f"{type(failure.value).__name__}: {failure.getErrorMessage()}"},
        )

    # -- responses -----------------------------------------------------------------------------

    def parse_query(self, response: Response) -> Any:
        request = response.request
        assert request is not None
        items = work_items_of(request)
        state: dict[str, Any] = request.meta["holocron_state"]
        data, failures = self._api_data(response, request, items)
        if data is None:
            yield from failures
            return
        pages: mwapi.PageSet = state.setdefault("pages", mwapi.PageSet())
        pages.add(data)
        state.setdefault("first_url", response.url)
        state.setdefault("fetched_at", datetime.now(UTC).replace(tzinfo=None))
        state.setdefault("request_headers", _headers(request.headers))
        state.setdefault("response_headers", _headers(response.headers))
        state["latency"] = state.get("latency", 0.0) + request.meta.get("download_latency", 0.0)
        cont = mwapi.next_continue(data)
        if cont is not None:
            self._stats.inc_value("holocron/mediawiki/continuations")
            yield self._request(items, state, cont)
            return
        for item in items:
            yield from self._finish(item, pages, state, response)

    def _api_data(
        self, response: Response, request: scrapy.Request, items: list[WorkItem]
    ) -> tuple[dict[str, Any] | None, list[Any]]:
        """The response's API data (its warnings logged), or ``None`` and what the error means
        for ``items`` (a retry request or their outcomes): one path for every callback."""
        try:
            data = mwapi.check_envelope(self._json(response))
        except mwapi.ApiError as exc:
            return None, list(self._api_error(exc, request, items))
        self._log_warnings(data)
        return data, []

    def _api_error(
        self, exc: mwapi.ApiError, request: scrapy.Request, items: list[WorkItem]
    ) -> Iterator[Any]:
        """The request again (``badcontinue``, ``internal_api_error_*``, within RETRY_TIMES), or
        an outcome per work item: skipped or failed with the API's message (see
        :data:`mwapi.API_ERRORS`)."""
        self._stats.inc_value(f"holocron/mediawiki/api_error/{exc.code}")
        rule = mwapi.error_rule(exc.code)
        if rule.on_error is mwapi.OnError.RETRY:
            retry = get_retry_request(request, spider=self, reason=f"api_error/{exc.code}")
            if retry is not None:
                yield retry
                return
        logger.warning("%(error)s for %(url)s", {"error": exc, "url": request.url})
        status = Status.SKIPPED if rule.on_error is mwapi.OnError.SKIP else Status.FAILED
        yield from (Outcome(i.id, status, str(exc)) for i in items)

    def _json(self, response: Response) -> Any:
        try:
            return json.loads(response.body)
        except ValueError as exc:
            snippet = response.body[:120].decode("utf-8", "replace")
            ctype = (response.headers.get("Content-Type") or b"").decode("latin-1")
            raise mwapi.ApiError(
                "badjson", f"not JSON ({exc}); Content-Type {ctype!r}, body starts {snippet!r}"
            ) from exc

    def _log_warnings(self, data: dict[str, Any]) -> None:
        seen: set[str] = self.__dict__.setdefault("_warned", set())
        for module, text in mwapi.warnings_of(data):
            self._stats.inc_value(f"holocron/mediawiki/warnings/{module}")
            if module not in seen:
                seen.add(module)
                logger.warning(
                    "API warning from %(module)s: %(text)s (logged once)",
                    {"module": module, "text": text},
                )

    def _finish(
        self, item: WorkItem, pages: mwapi.PageSet, state: dict[str, Any], response: Response
    ) -> Any:
        target = pages.resolve(item.resource_id)
        page = pages.page(target)
        if page is None:
            reason = "interwiki" if target in pages.interwiki else "not in the API's answer"
            yield Outcome.skipped(item, f"unresolved title {target!r} ({reason})")
            return
        if page.get("invalid"):
            yield Outcome.skipped(item, f"invalid title: {page.get('invalidreason')}")
            return
        if page.get("missing"):
            if item.version is not None and item.version != DELETED_VERSION:
                # It had a record: record that it is gone (recrawl=changed requeues such pages).
                yield self._record(item, deletion_payload(page, item.version), state, response)
                return
            yield Outcome.skipped(item, "missing: the page does not exist")
            return
        if target != item.resource_id:
            how = "redirect" if pages.normalized.get(item.resource_id) != target else "normalized"
            resource_type = self.resource_type_for(page.get("ns"))
            yield self.new_work_item(target, item.depth, item, resource_type)
            yield Outcome.skipped(item, f"{how} to {target!r}")
            return
        # Links first: the state middleware buffers them before the record reaches the
        # pipelines, and the frontier writes them before it completes the record's work item,
        # so a crash can never leave a completed page whose links were not queued.
        if item.depth < self.config.discovery.max_depth:
            yield from self._discoveries(item, page)
        yield from self._other_resources(item)
        yield self._record(item, page, state, response)

    def _record(
        self, item: WorkItem, page: dict[str, Any], state: dict[str, Any], response: Response
    ) -> ResourceRecord:
        """The record of a page (or of its deletion: version ``"deleted"``)."""
        deleted = bool(page.get("deleted"))
        lastrevid = page.get("lastrevid")
        return ResourceRecord(
            work_item=item,
            resource_type=item.resource_type,
            resource_id=item.resource_id,
            payload=page,
            request_uri=state["first_url"],
            request_headers=state["request_headers"],
            status_code=response.status,
            response_headers=state["response_headers"],
            fetched_at_utc=state["fetched_at"],
            duration_ms=round(state["latency"] * 1000),
            version=DELETED_VERSION if deleted else None if lastrevid is None else str(lastrevid),
        )

    # -- discovery -----------------------------------------------------------------------------

    def resource_type_for(self, ns: object) -> str:
        """The resource type of a title in namespace ``ns``: ``category`` (14) with
        ``discovery.categories``, ``template`` (10) with ``discovery.templates``, else ``page``."""
        discovery = self.config.discovery
        if ns == listings.CATEGORY_NAMESPACE and discovery.categories:
            return RESOURCE_CATEGORY
        if ns == TEMPLATE_NAMESPACE and discovery.templates:
            return RESOURCE_TEMPLATE
        return RESOURCE_PAGE

    def _discoveries(self, item: WorkItem, page: dict[str, Any]) -> Iterator[NewWorkItem]:
        """What a page below ``max_depth`` queues at depth + 1: its links, categories and
        templates in the configured namespaces (each title once, links first), the members of a
        category page (``discovery.categories``) and the pages linking to it
        (``discovery.backlinks``), both as listings."""
        discovery = self.config.discovery
        depth = item.depth + 1
        seen: set[str] = set()
        for prop, on in (
            ("links", discovery.links),
            ("categories", discovery.categories),
            ("templates", discovery.templates),
        ):
            if not on:
                continue
            for link in page.get(prop, ()):
                title, ns = link.get("title"), link.get("ns")
                if ns in discovery.namespaces and title and title not in seen:
                    seen.add(title)
                    yield self.new_work_item(title, depth, item, self.resource_type_for(ns))
        if discovery.categories and page.get("ns") == listings.CATEGORY_NAMESPACE:
            members = listings.categorymembers(item.resource_id)
            yield self._listing_work_item(members, depth, item)
        if discovery.backlinks:
            yield self._listing_work_item(listings.backlinks(item.resource_id), depth, item)

    def _listed(self, listing: listings.Listing, member: listings.Member) -> bool:
        """Whether a listing's member is queued: every member, except that the listings of
        discovery (backlinks; category members with ``discovery.categories``) keep only the
        configured namespaces."""
        discovery = self.config.discovery
        filtered = listing.module == "backlinks" or (
            listing.module == "categorymembers" and discovery.categories
        )
        return not filtered or member.ns in discovery.namespaces

    # -- listings ------------------------------------------------------------------------------

    def _listing_work_item(
        self, listing: listings.Listing, depth: int, parent: WorkItem | None
    ) -> NewWorkItem:
        return NewWorkItem(
            source_system=self.source_system,
            source_name=self.source_name,
            resource_type=listings.RESOURCE_LISTING,
            resource_id=listing.resource_id,
            depth=depth,
            priority=self.priority_for(depth),
            discovered_from=parent.id if parent else None,
        )

    def _listing_requests(self, items: list[WorkItem]) -> list[scrapy.Request]:
        """One request per claimed listing, from its saved cursor when it has one."""
        requests = []
        for item in items:
            try:
                listing = listings.Listing.parse(item.resource_id)
            except listings.ListingError as exc:
                self._frontier().fail([item], str(exc))
                continue
            cont = None
            if item.cursor:
                cont = json.loads(item.cursor)
                self._stats.inc_value("holocron/listings/resumed")
                logger.info(
                    "Listing %(listing)s resumes from its cursor %(cursor)s",
                    {"listing": item.resource_id, "cursor": item.cursor},
                )
            requests.append(self._listing_request(item, listing, cont))
        return requests

    def _listing_request(
        self, item: WorkItem, listing: listings.Listing, cont: dict[str, str] | None
    ) -> scrapy.Request:
        url = listings.listing_url(
            self.config.api_url,
            listing,
            cont,
            limit=self.list_limit,
            maxlag=self.maxlag,
        )
        return scrapy.Request(
            url,
            callback=self.parse_listing,
            errback=self.request_failed,
            dont_filter=True,
            priority=item.priority,
            meta={"holocron_work_items": [item]},
            cb_kwargs={"listing": listing},
        )

    async def parse_listing(
        self, response: Response, listing: listings.Listing
    ) -> AsyncIterator[Any]:
        """One batch of a listing: its members into the queue, then its cursor saved, then the
        next batch requested; without ``continue`` the listing is completed."""
        request = response.request
        assert request is not None
        [item] = work_items_of(request)
        data, failures = self._api_data(response, request, [item])
        if data is None:
            for obj in failures:
                yield obj
            return
        frontier = self._frontier()
        found = listings.members(listing, data)
        category_depth = self.config.discovery.category_depth
        for member in found:
            # Straight into the frontier's buffer: save_cursor flushes it before the cursor.
            if self._listed(listing, member):
                resource_type = self.resource_type_for(member.ns)
                frontier.discover(self.new_work_item(member.title, item.depth, item, resource_type))
            if member.subcategory and item.depth < category_depth:
                sub = listings.categorymembers(member.title)
                frontier.discover(self._listing_work_item(sub, item.depth + 1, item))
        self._stats.inc_value("holocron/listings/batches")
        self._stats.inc_value("holocron/listings/members", len(found))
        cont = mwapi.next_continue(data)
        if cont is None:
            yield Outcome(item.id, Status.COMPLETED, depth=item.depth)
            return
        if await frontier.save_cursor(item, cont):
            yield self._listing_request(item, listing, cont)

    # -- the page's other resources (holocron_scrapy.resources) --------------------------------

    def _other_resources(self, item: WorkItem) -> Iterator[NewWorkItem]:
        """A completed page's other configured resources, as work items under its canonical
        title at its depth (their own dedupe keys: each is fetched and recorded on its own)."""
        for resource_type in self.config.resources:
            if resource_type != RESOURCE_PAGE:
                yield NewWorkItem(
                    source_system=self.source_system,
                    source_name=self.source_name,
                    resource_type=resource_type,
                    resource_id=item.resource_id,
                    depth=item.depth,
                    priority=self.priority_for(item.depth),
                    discovered_from=item.id,
                )

    def _html_requests(self, items: list[WorkItem]) -> list[scrapy.Request]:
        """One ``action=parse`` per title (the API parses one page per request)."""
        api = self.config.api_url
        return [
            self._resource_request(
                resources.parse_url(api, i.resource_id, self.maxlag), [i], self.parse_html
            )
            for i in items
        ]

    def _history_requests(self, items: list[WorkItem]) -> list[scrapy.Request]:
        """One revision history per title (``rvlimit`` takes one title per request)."""
        content = self.revisions_content
        api = self.config.api_url
        return [
            self._resource_request(
                resources.history_url(api, i.resource_id, None, self.maxlag, content=content),
                [i],
                self.parse_history,
            )
            for i in items
        ]

    def _info_requests(self, items: list[WorkItem]) -> list[scrapy.Request]:
        n = self.titles_per_request
        api = self.config.api_url
        return [
            self._resource_request(
                resources.info_url(api, [i.resource_id for i in batch], None, self.maxlag),
                batch,
                self.parse_info,
            )
            for batch in (items[i : i + n] for i in range(0, len(items), n))
        ]

    def _resource_request(
        self,
        url: str,
        items: list[WorkItem],
        callback: Callable[[Response], Any],
        state: dict[str, Any] | None = None,
    ) -> scrapy.Request:
        """A request for other resources; ``state["first_url"]`` is the URL that continuations
        extend (see :func:`resources.continued`)."""
        return scrapy.Request(
            url,
            callback=callback,
            errback=self.request_failed,
            dont_filter=True,
            priority=max(i.priority for i in items),
            meta={"holocron_work_items": items, "holocron_state": state or {"first_url": url}},
        )

    def _response_state(
        self, state: dict[str, Any], request: scrapy.Request, response: Response
    ) -> None:
        """What a record tells of its (first) response, and the latency of all of them."""
        state.setdefault("fetched_at", datetime.now(UTC).replace(tzinfo=None))
        state.setdefault("request_headers", _headers(request.headers))
        state.setdefault("response_headers", _headers(response.headers))
        state["latency"] = state.get("latency", 0.0) + request.meta.get("download_latency", 0.0)

    def _resource_record(
        self,
        item: WorkItem,
        resource_type: str,
        payload: dict[str, Any],
        state: dict[str, Any],
        response: Response,
        *,
        version: object,
    ) -> ResourceRecord:
        return ResourceRecord(
            work_item=item,
            resource_type=resource_type,
            resource_id=item.resource_id,
            payload=payload,
            request_uri=state["first_url"],
            request_headers=state["request_headers"],
            status_code=response.status,
            response_headers=state["response_headers"],
            fetched_at_utc=state["fetched_at"],
            duration_ms=round(state["latency"] * 1000),
            version=None if version is None else str(version),
        )

    def parse_html(self, response: Response) -> Iterator[Any]:
        """The ``parse`` object is the record; ``missingtitle`` skips the item (see
        :data:`mwapi.API_ERRORS`)."""
        request = response.request
        assert request is not None
        items = work_items_of(request)
        data, failures = self._api_data(response, request, items)
        if data is None:
            yield from failures
            return
        state: dict[str, Any] = request.meta["holocron_state"]
        self._response_state(state, request, response)
        parsed = data.get("parse")
        for item in items:
            if isinstance(parsed, dict):
                yield self._resource_record(
                    item, resources.HTML, parsed, state, response, version=parsed.get("revid")
                )
            else:
                yield Outcome(item.id, Status.FAILED, "action=parse answered without 'parse'")

    def parse_history(self, response: Response) -> Iterator[Any]:
        """Every revision, oldest first, merged across ``continue`` into one page object."""
        yield from self._merged_query(response, resources.REVISIONS)

    def parse_info(self, response: Response) -> Iterator[Any]:
        """One record per page of the batch: its page info and page props."""
        yield from self._merged_query(response, resources.INFO)

    def _merged_query(self, response: Response, resource_type: str) -> Iterator[Any]:
        request = response.request
        assert request is not None
        items = work_items_of(request)
        data, failures = self._api_data(response, request, items)
        if data is None:
            yield from failures
            return
        state: dict[str, Any] = request.meta["holocron_state"]
        self._response_state(state, request, response)
        pages: mwapi.PageSet = state.setdefault("pages", mwapi.PageSet())
        pages.add(data)
        cont = mwapi.next_continue(data)
        if cont is not None:
            self._stats.inc_value("holocron/mediawiki/continuations")
            url = resources.continued(state["first_url"], cont)
            assert request.callback is not None
            yield self._resource_request(url, items, request.callback, state)
            return
        for item in items:
            page = pages.page(pages.resolve(item.resource_id))
            if page is None:
                yield Outcome.skipped(item, f"{item.resource_id!r} not in the API's answer")
            elif page.get("invalid"):
                yield Outcome.skipped(item, f"invalid title: {page.get('invalidreason')}")
            elif page.get("missing"):
                yield Outcome.skipped(item, "missing: the page does not exist")
            else:
                revisions = page.get("revisions") or [{}]
                version = (
                    revisions[-1].get("revid")
                    if resource_type == resources.REVISIONS
                    else page.get("lastrevid")
                )
                yield self._resource_record(
                    item, resource_type, page, state, response, version=version
                )

    def request_failed(self, failure: Failure) -> None:
        """Errback: a request that failed for good (after retries) fails its work items."""
        request: scrapy.Request = failure.request  # type: ignore[attr-defined]
        error = failure.value
        if isinstance(error, StaleClaim):
            return
        if isinstance(error, HttpError):
            message = f"HTTP {error.response.status} from {request.url}"
        elif isinstance(error, DownloadCancelledError) and not str(error):
            # Scrapy cancels a body that grows past the size limit without a message (one with
            # a Content-Length over the limit is refused with one).
            maxsize = request.meta.get(
                "download_maxsize", self.crawler.settings.getint("DOWNLOAD_MAXSIZE")
            )
            message = (
                f"DownloadCancelledError: Received a body larger than download max size "
                f"({maxsize} bytes, DOWNLOAD_MAXSIZE) in request <GET {request.url}>"
            )
        else:
            message = f"{type(error).__name__}: {failure.getErrorMessage()}"
        logger.warning("Request failed: %(msg)s", {"msg": message})
        items = [i for i in work_items_of(request) if self._frontier().is_claimed(i)]
        self._frontier().fail(items, message)
