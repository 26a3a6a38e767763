"""``-a recrawl=changed`` by the wiki's change feeds (see :mod:`holocron_scrapy.mediawiki.feeds`).

A crawl that is not a recrawl records the source's sync point at its start (the start of the
source's first run), unless it has one. A refresh then asks, in order, one request each:

1. the probe: do recent changes reach back to the sync point? If not, the full ``prop=info``
   pass of :class:`.revision_check.RevisionCheck` runs instead, and when every check was
   answered the sync point moves to the wiki's clock at the probe;
2. the feeds from the sync point on, continued to the end; after each response its changes
   are in the queue (requeued, or new items added) before the next is asked for;
3. ``list=embeddedin`` of each edited template or module, continued: the archived pages using
   it are requeued;
4. the sync point moves past the last entry read. Any error on the way leaves it where it was
   (what was queued stays queued): the next refresh reads the same changes again.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import scrapy
from scrapy.utils.asyncio import run_in_thread

from holocron_scrapy.mediawiki import api as mwapi
from holocron_scrapy.mediawiki import feeds, listings, resources
from holocron_scrapy.mediawiki.responses import decode_json
from holocron_scrapy.model import dedupe_key
from holocron_scrapy.store.sql import utcnow
from holocron_scrapy.store.sync import Reach, SyncPoint

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection, Mapping

    from scrapy.http import Response
    from twisted.python.failure import Failure

    from holocron_scrapy.frontier.extension import Frontier
    from holocron_scrapy.spiders.mediawiki import MediaWikiSpider
    from holocron_scrapy.store.sync import KnownItem

logger = logging.getLogger(__name__)


class FeedSync:
    def __init__(self, spider: MediaWikiSpider) -> None:
        self.spider = spider
        self.point: SyncPoint | None = None  # where this refresh reads from
        self.reached: SyncPoint | None = None  # how far it got
        self.transcluded: set[str] = set()
        self.failed = False
        self.run = ""  # the run whose chain of requests this is (cb_kwargs ``run``)

    def _frontier(self) -> Frontier | None:
        frontier = self.spider.frontier()
        return frontier if frontier.spider is not None else None

    async def record_start(self) -> None:
        """A crawl (not a refresh): the source's first run's start is its sync point, unless it
        has one."""
        frontier = self._frontier()
        if frontier is None:
            return
        spider = self.spider
        started = await run_in_thread(
            frontier.store.first_run_started,
            source_system=spider.source_system,
            source_name=spider.source_name,
        )
        written = await run_in_thread(
            frontier.store.set_sync_point,
            SyncPoint(started or utcnow()),
            source_system=spider.source_system,
            source_name=spider.source_name,
            run_id=frontier.run_id,
            only_if_absent=True,
        )
        await self.widen(frontier)
        if written:
            logger.info(
                "Sync point of %(source)s: %(at)s", {"source": spider.source_name, "at": started}
            )

    async def widen(self, frontier: Frontier) -> None:
        """Record what the archive is expanded with (``max_depth``, the discovery switches on);
        when this run's settings reach further, the completed pages they expand further go
        back into the queue (their refetch discovers what the new settings reach)."""
        spider = self.spider
        discovery = spider.config.discovery
        switches = {
            "links": discovery.links,
            "categories": discovery.categories,
            "templates": discovery.templates,
            "backlinks": discovery.backlinks,
        }
        reach = Reach(discovery.max_depth, frozenset(k for k, on in switches.items() if on))
        n = await run_in_thread(
            frontier.store.widen,
            reach,
            source_system=spider.source_system,
            source_name=spider.source_name,
            resource_types=resources.PAGE_TYPES,
        )
        spider.stats.inc_value("holocron/recrawl/widened", n)
        if n:
            logger.info(
                "The settings reach further than the archive's (max_depth %(depth)d, %(on)s): "
                "%(n)d completed pages back in the queue to expand",
                {"depth": reach.max_depth, "on": ", ".join(sorted(reach.expansions)), "n": n},
            )
            frontier.dirty = True
            frontier.maybe_claim()

    async def requests(self) -> AsyncIterator[scrapy.Request]:
        """The probe (a source without a sync point: from the start of its first run)."""
        frontier = self._frontier()
        if frontier is None:
            return
        spider = self.spider
        point = await run_in_thread(
            frontier.store.sync_point,
            source_system=spider.source_system,
            source_name=spider.source_name,
        )
        if point is None:
            started = await run_in_thread(
                frontier.store.first_run_started,
                source_system=spider.source_system,
                source_name=spider.source_name,
            )
            point = SyncPoint(started or utcnow())
        else:
            await self.widen(frontier)
        self.point = self.reached = point
        self.run = frontier.run_id
        yield self._request(
            feeds.probe_url(spider.config.api_url, point, spider.maxlag), spider.parse_feed_probe
        )

    def _request(self, url: str, callback: Any, **kwargs: Any) -> scrapy.Request:
        return scrapy.Request(
            url,
            callback=callback,
            errback=self.spider.feed_failed,
            dont_filter=True,
            priority=1_000_000,  # before the refetches it queues
            cb_kwargs={**kwargs, "run": self.run},
        )

    def _data(self, response: Response, what: str, run: str) -> dict[str, Any] | None:
        if self.point is None or run != self.run:  # restored by JOBDIR from an earlier run
            self.spider.stats.inc_value("holocron/recrawl/feed_stale_requests")
            return None
        try:
            return mwapi.check_envelope(decode_json(response))
        except mwapi.ApiError as exc:
            self.fail(f"{what}: {exc}")
            return None

    def fail(self, message: str) -> None:
        self.failed = True
        self.spider.stats.inc_value("holocron/recrawl/feed_errors")
        logger.warning(
            "Change feed sync failed (%(error)s): the sync point stays where it was, the next "
            "refresh reads these changes again",
            {"error": message},
        )

    def request_failed(self, failure: Failure) -> None:
        self.fail(f"{type(failure.value).__name__}: {failure.getErrorMessage()}")

    async def parse_probe(self, response: Response, run: str) -> AsyncIterator[scrapy.Request]:
        data = self._data(response, "probe", run)
        if data is None or self.point is None:
            return
        spider = self.spider
        if feeds.covered(data):
            yield self._request(self._feed_url(None), spider.parse_feed)
            return
        spider.stats.inc_value("holocron/recrawl/fallback")
        logger.info(
            "Recent changes do not reach back to the sync point %(at)s: checking every archived "
            "page (prop=info)",
            {"at": self.point.timestamp},
        )
        after = feeds.point_of_probe(data)
        async for request in spider.revision_check.requests(
            on_complete=(lambda: self._write(after)) if after else None
        ):
            yield request

    def _feed_url(self, cont: Mapping[str, str] | None) -> str:
        assert self.point is not None
        spider = self.spider
        return feeds.feed_url(
            spider.config.api_url, self.point, cont, limit=spider.list_limit, maxlag=spider.maxlag
        )

    async def parse_feed(self, response: Response, run: str) -> AsyncIterator[scrapy.Request]:
        data = self._data(response, "feed", run)
        if data is None or self.point is None or self.reached is None:
            return
        page = feeds.read_feed(data, self.point)
        stats = self.spider.stats
        stats.inc_value("holocron/recrawl/feed_changes", len(page.changes))
        frontier = self._frontier()
        if frontier is None:
            return
        await self._apply(frontier, page.changes)
        self.reached = page.advance(self.reached)
        cont = mwapi.next_continue(data)
        if cont is not None:
            yield self._request(self._feed_url(cont), self.spider.parse_feed)
            return
        async for request in self._next_template():
            yield request

    async def _apply(self, frontier: Frontier, changes: Collection[feeds.Change]) -> None:
        spider = self.spider
        discovery = spider.config.discovery
        titles = feeds.titles_of(changes)
        known = await self._known(frontier, titles)
        plan = feeds.plan(
            changes, known, allpages=spider.config.seeds.allpages, namespaces=discovery.namespaces
        )
        self.transcluded |= plan.transcluded
        new = [
            dataclasses.replace(
                spider.discoverer.work_item(
                    title, depth, None, spider.discoverer.resource_type_for(ns)
                ),
                run_id=frontier.run_id,
            )
            for title, (ns, depth) in sorted(plan.new.items())
        ]
        await self._queue(frontier, [known[t] for t in sorted(plan.requeue)], new)
        spider.stats.inc_value("holocron/recrawl/new", len(new))
        if plan.categories:
            # Completed category listings run again (unknown ones: nothing to requeue).
            keys = [
                dedupe_key(
                    spider.source_system,
                    spider.source_name,
                    listings.RESOURCE_LISTING,
                    listings.categorymembers(title).resource_id,
                )
                for title in sorted(plan.categories)
            ]
            n = await frontier.requeue([], keys)
            spider.stats.inc_value("holocron/recrawl/listings", n)

    async def _known(self, frontier: Frontier, titles: Mapping[str, int]) -> dict[str, KnownItem]:
        """The page-type work item of each title (by its namespace's resource type)."""
        spider = self.spider
        kinds = {
            title: spider.discoverer.resource_type_for(ns if ns >= 0 else mwapi.namespace_of(title))
            for title, ns in titles.items()
        }
        keys = [
            dedupe_key(spider.source_system, spider.source_name, kind, title)
            for title, kind in kinds.items()
        ]
        found = await run_in_thread(frontier.store.items_by_keys, keys)
        return {
            item.resource_id: item
            for item in found
            if kinds.get(item.resource_id) == item.resource_type
        }

    async def _queue(self, frontier: Frontier, items: list[KnownItem], new: list[Any]) -> None:
        """Requeue ``items`` (and their other resources), add the ``new`` work items."""
        spider = self.spider
        if new:
            await run_in_thread(frontier.store.add_work_items, new)
        keys = [
            dedupe_key(spider.source_system, spider.source_name, kind, item.resource_id)
            for item in items
            for kind in (item.resource_type, *spider.config.resources)
            if kind != resources.PAGE or item.resource_type == resources.PAGE
        ]
        spider.stats.inc_value("holocron/recrawl/changed", len(items))
        if keys:
            await frontier.requeue([], keys)
        elif new:
            frontier.dirty = True
            frontier.maybe_claim()

    async def _next_template(self) -> AsyncIterator[scrapy.Request]:
        if self.transcluded:
            title = min(self.transcluded)
            self.transcluded.discard(title)
            yield self._embeddedin_request(title, None)
            return
        if not self.failed:
            await self._write(self.reached)

    def _embeddedin_request(self, title: str, cont: Mapping[str, str] | None) -> scrapy.Request:
        spider = self.spider
        url = feeds.embeddedin_url(
            spider.config.api_url, title, cont, limit=spider.list_limit, maxlag=spider.maxlag
        )
        return self._request(url, spider.parse_feed_embeddedin, template=title)

    async def parse_embeddedin(
        self, response: Response, template: str, run: str
    ) -> AsyncIterator[scrapy.Request]:
        data = self._data(response, f"pages using {template}", run)
        frontier = self._frontier()
        if data is None or frontier is None:
            return
        users = feeds.embedding_titles(data)
        known = await self._known(frontier, {title: ns for ns, title in users})
        items = [item for item in known.values() if item.status == "completed"]
        self.spider.stats.inc_value("holocron/recrawl/transcluding", len(items))
        await self._queue(frontier, sorted(items, key=lambda item: item.id), [])
        cont = mwapi.next_continue(data)
        if cont is not None:
            yield self._embeddedin_request(template, cont)
            return
        async for request in self._next_template():
            yield request

    async def _write(self, point: SyncPoint | None) -> None:
        frontier = self._frontier()
        if point is None or frontier is None:
            return
        spider = self.spider
        await run_in_thread(
            frontier.store.set_sync_point,
            point,
            source_system=spider.source_system,
            source_name=spider.source_name,
            run_id=frontier.run_id,
        )
        spider.stats.set_value("holocron/recrawl/synced", 1)
        logger.info(
            "Change feeds of %(source)s synced up to %(at)s (rcid %(rc)s, logid %(log)s)",
            {
                "source": spider.source_name,
                "at": point.timestamp,
                "rc": point.rc_id,
                "log": point.log_id,
            },
        )
