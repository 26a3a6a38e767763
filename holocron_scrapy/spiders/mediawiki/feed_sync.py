"""``-a recrawl=changed`` by the wiki's change feeds (see :mod:`holocron_scrapy.mediawiki.feeds`).

A crawl that is not a recrawl records the source's sync point at its start (the start of the
source's first run), unless it has one (:mod:`.sync_points`). A refresh then asks, in order,
one request each:

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import scrapy
from scrapy.utils.asyncio import run_in_thread

from holocron_scrapy.mediawiki import api as mwapi
from holocron_scrapy.mediawiki import errors, feed_plan, feeds, listings, resources
from holocron_scrapy.model import RESOURCE_LISTING
from holocron_scrapy.spiders.mediawiki.sync_points import SyncPoints

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Collection, Mapping

    from scrapy.http import Response
    from twisted.python.failure import Failure

    from holocron_scrapy.frontier.extension import Frontier
    from holocron_scrapy.spiders.mediawiki.options import Wiki
    from holocron_scrapy.spiders.mediawiki.revision_check import RevisionCheck
    from holocron_scrapy.store.sync import KnownItem, SyncPoint

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FeedCallbacks:
    """The spider's methods the requests name (``JOBDIR`` serializes them by name)."""

    probe: Callable[..., Any]
    feed: Callable[..., Any]
    embeddedin: Callable[..., Any]
    errback: Callable[[Failure], None]


class FeedSync:
    """``new_work``: called when new work items were added (claim them soon);
    ``revision_check``: the full ``prop=info`` pass, when the feeds do not reach back to the
    sync point."""

    def __init__(
        self,
        wiki: Wiki,
        *,
        revision_check: RevisionCheck,
        new_work: Callable[[], None],
        callbacks: FeedCallbacks,
    ) -> None:
        self.wiki = wiki
        self.revision_check = revision_check
        self.new_work = new_work
        self.callbacks = callbacks
        self.sync_points = SyncPoints(
            wiki.config,
            source_system=wiki.discoverer.source_system,
            stats=wiki.stats,
            new_work=new_work,
        )
        self.point: SyncPoint | None = None  # where this refresh reads from
        self.reached: SyncPoint | None = None  # how far it got
        self.transcluded: set[str] = set()
        self.failed = False
        self.run = ""  # the run whose chain of requests this is (cb_kwargs ``run``)

    def _frontier(self) -> Frontier | None:
        frontier = self.wiki.frontier()
        return frontier if frontier.spider is not None else None

    async def record_start(self) -> None:
        """A crawl (not a refresh): see :meth:`.SyncPoints.record_start`."""
        frontier = self._frontier()
        if frontier is not None:
            await self.sync_points.record_start(frontier)

    async def requests(self) -> AsyncIterator[scrapy.Request]:
        """The probe (a source without a sync point: from the start of its first run)."""
        frontier = self._frontier()
        if frontier is None:
            return
        point = await self.sync_points.read(frontier)
        self.point = self.reached = point
        self.run = frontier.run_id
        options = self.wiki.options
        yield self._request(
            feeds.probe_url(options.api_url, point, options.maxlag), self.callbacks.probe
        )

    def _request(self, url: str, callback: Any, **kwargs: Any) -> scrapy.Request:
        return scrapy.Request(
            url,
            callback=callback,
            errback=self.callbacks.errback,
            dont_filter=True,
            priority=1_000_000,  # before the refetches it queues
            cb_kwargs={**kwargs, "run": self.run},
        )

    def _data(self, response: Response, what: str, run: str) -> dict[str, Any] | None:
        if self.point is None or run != self.run:  # restored by JOBDIR from an earlier run
            self.wiki.stats().inc_value("holocron/recrawl/feed_stale_requests")
            return None
        try:
            return errors.check_envelope(errors.decode_json(response))
        except errors.ApiError as exc:
            self.fail(f"{what}: {exc}")
            return None

    def fail(self, message: str) -> None:
        self.failed = True
        self.wiki.stats().inc_value("holocron/recrawl/feed_errors")
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
        if feeds.covered(data):
            yield self._request(self._feed_url(None), self.callbacks.feed)
            return
        self.wiki.stats().inc_value("holocron/recrawl/fallback")
        logger.info(
            "Recent changes do not reach back to the sync point %(at)s: checking every archived "
            "page (prop=info)",
            {"at": self.point.timestamp},
        )
        after = feeds.point_of_probe(data)
        async for request in self.revision_check.requests(
            on_complete=(lambda: self._write(after)) if after else None
        ):
            yield request

    def _feed_url(self, cont: Mapping[str, str] | None) -> str:
        assert self.point is not None
        options = self.wiki.options
        return feeds.feed_url(
            options.api_url, self.point, cont, limit=options.list_limit, maxlag=options.maxlag
        )

    async def parse_feed(self, response: Response, run: str) -> AsyncIterator[scrapy.Request]:
        data = self._data(response, "feed", run)
        if data is None or self.point is None or self.reached is None:
            return
        page = feeds.read_feed(data, self.point)
        self.wiki.stats().inc_value("holocron/recrawl/feed_changes", len(page.changes))
        frontier = self._frontier()
        if frontier is None:
            return
        await self._apply(frontier, page.changes)
        self.reached = page.advance(self.reached)
        cont = mwapi.next_continue(data)
        if cont is not None:
            yield self._request(self._feed_url(cont), self.callbacks.feed)
            return
        async for request in self._next_template():
            yield request

    async def _apply(self, frontier: Frontier, changes: Collection[feeds.Change]) -> None:
        discovery = self.wiki.config.discovery
        titles = feed_plan.titles_of(changes)
        known = await self._known(frontier, titles)
        plan = feed_plan.plan(
            changes,
            known,
            allpages=self.wiki.config.seeds.allpages,
            namespaces=discovery.namespaces,
        )
        self.transcluded |= plan.transcluded
        new = [
            dataclasses.replace(
                self.wiki.discoverer.work_item(
                    title, depth, None, self.wiki.discoverer.resource_type_for(ns)
                ),
                run_id=frontier.run_id,
            )
            for title, (ns, depth) in sorted(plan.new.items())
        ]
        await self._queue(frontier, [known[t] for t in sorted(plan.requeue)], new)
        self.wiki.stats().inc_value("holocron/recrawl/new", len(new))
        if plan.categories:
            # Completed category listings run again (unknown ones: nothing to requeue).
            keys = [
                self.wiki.dedupe_key(
                    RESOURCE_LISTING,
                    listings.categorymembers(title).resource_id,
                )
                for title in sorted(plan.categories)
            ]
            n = await frontier.requeue([], keys)
            self.wiki.stats().inc_value("holocron/recrawl/listings", n)

    async def _known(self, frontier: Frontier, titles: Mapping[str, int]) -> dict[str, KnownItem]:
        """The page-type work item of each title (by its namespace's resource type)."""
        resource_type_for = self.wiki.discoverer.resource_type_for
        kinds = {
            title: resource_type_for(ns if ns >= 0 else mwapi.namespace_of(title))
            for title, ns in titles.items()
        }
        keys = [self.wiki.dedupe_key(kind, title) for title, kind in kinds.items()]
        found = await run_in_thread(frontier.store.items_by_keys, keys)
        return {
            item.resource_id: item
            for item in found
            if kinds.get(item.resource_id) == item.resource_type
        }

    async def _queue(self, frontier: Frontier, items: list[KnownItem], new: list[Any]) -> None:
        """Requeue ``items`` (and their other resources), add the ``new`` work items."""
        if new:
            await run_in_thread(frontier.store.add_work_items, new)
        keys = [
            self.wiki.dedupe_key(kind, item.resource_id)
            for item in items
            for kind in (item.resource_type, *self.wiki.config.resources)
            if kind != resources.PAGE or item.resource_type == resources.PAGE
        ]
        self.wiki.stats().inc_value("holocron/recrawl/changed", len(items))
        if keys:
            await frontier.requeue([], keys)
        elif new:
            self.new_work()

    async def _next_template(self) -> AsyncIterator[scrapy.Request]:
        if self.transcluded:
            title = min(self.transcluded)
            self.transcluded.discard(title)
            yield self._embeddedin_request(title, None)
            return
        if not self.failed:
            await self._write(self.reached)

    def _embeddedin_request(self, title: str, cont: Mapping[str, str] | None) -> scrapy.Request:
        options = self.wiki.options
        url = feeds.embeddedin_url(
            options.api_url, title, cont, limit=options.list_limit, maxlag=options.maxlag
        )
        return self._request(url, self.callbacks.embeddedin, template=title)

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
        self.wiki.stats().inc_value("holocron/recrawl/transcluding", len(items))
        await self._queue(frontier, sorted(items, key=lambda item: item.id), [])
        cont = mwapi.next_continue(data)
        if cont is not None:
            yield self._embeddedin_request(template, cont)
            return
        async for request in self._next_template():
            yield request

    async def _write(self, point: SyncPoint | None) -> None:
        frontier = self._frontier()
        if point is not None and frontier is not None:
            await self.sync_points.write(frontier, point)
