"""The SQL queue as Scrapy sees it.

The queue in SQL is the source of truth. This extension claims leased batches of work items
whenever Scrapy's scheduler runs dry (``scheduler_empty``, ``spider_idle``), turns them into
requests through the spider, and buffers what the crawl learns (outcomes, discovered links) into
batched writes made in a thread, never on the reactor. Scrapy's scheduler therefore only ever
holds claimed work: memory does not grow with the frontier. The crawl ends when nothing is
claimable, nothing is buffered and nothing is in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

from scrapy import signals
from scrapy.exceptions import DontCloseSpider, NotConfigured
from scrapy.utils.asyncio import run_in_thread, sleep
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from twisted.internet.task import LoopingCall

from holocron_scrapy import defaults
from holocron_scrapy.frontier.leases import Leases
from holocron_scrapy.frontier.runs import close_run, open_run
from holocron_scrapy.frontier.settings import (
    SQLSERVER_HINT,
    retry_policy_from_settings,
    state_store_from_settings,
)
from holocron_scrapy.frontier.waits import WaitPlanner
from holocron_scrapy.frontier.writes import CrawlStateError, WriteBuffer
from holocron_scrapy.model import (
    NewWorkItem,
    Outcome,
    RetryPolicy,
    Status,
    WorkItem,
)
from holocron_scrapy.outage import Outage, database_unreachable, short_error
from holocron_scrapy.reexpand import expand_from_stored
from holocron_scrapy.signals import run_closed
from holocron_scrapy.store import limits

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.statscollectors import StatsCollector
    from twisted.internet.defer import Deferred

    from holocron_scrapy.model import Applied, IngestRow
    from holocron_scrapy.store.state_store import StateStore

__all__ = [
    "SQLSERVER_HINT",
    "CrawlStateError",
    "Frontier",
    "FrontierSpider",
    "frontier_of",
    "retry_policy_from_settings",
    "state_store_from_settings",
    "work_items_of",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class FrontierSpider(Protocol):
    """What a spider offers the frontier."""

    source_system: str
    source_name: str
    recrawl: str | None

    def seed_work_items(self) -> list[NewWorkItem]: ...

    def requests_for(self, items: Sequence[WorkItem]) -> list[Request]: ...


def frontier_of(crawler: Crawler) -> Frontier:
    """The crawl's Frontier, for the components built on it (``NotConfigured`` without one)."""
    frontier = crawler.get_extension(Frontier)
    if frontier is None:
        raise NotConfigured("the holocron Frontier extension is not enabled")
    return frontier


def work_items_of(request: Request) -> list[WorkItem]:
    """The work items a request serves (documented meta key ``holocron_work_items``)."""
    return list(request.meta.get("holocron_work_items", ()))


class Frontier:
    """The extension: claims work for Scrapy and ends the crawl when none is left.

    It owns its collaborators: :class:`WriteBuffer` (buffered discoveries and outcomes),
    :class:`Leases` (renewal, lost claims, releases) and :class:`WaitPlanner` (waits for
    retries and other workers); ``frontier_runs`` starts and ends its run.
    """

    def __init__(
        self,
        crawler: Crawler,
        store: StateStore,
        *,
        claim_size: int,
        lease_seconds: float,
        flush_interval: float,
        flush_size: int,
        worker_id: str,
        discovery_cache_size: int = 200_000,
        retry: RetryPolicy | None = None,
        retry_wait_max: float = 600.0,
        idle_poll: float = 2.0,
        outage_max_seconds: float = 3600.0,
        dead_after_leases: float = 2.0,
    ) -> None:
        self.crawler = crawler
        self.store = store
        assert crawler.stats is not None
        self.stats: StatsCollector = crawler.stats
        self.claim_size = claim_size
        self.lease_seconds = lease_seconds
        # A running run without a heartbeat for this long is dead (heartbeats: every lease / 3).
        self.dead_after_seconds = dead_after_leases * lease_seconds
        self.flush_interval = flush_interval
        self.worker_id = worker_id
        self.run_id = ""
        self.owner = ""
        self.spider: FrontierSpider | None = None
        self.in_flight: set[int] = set()
        # The claim (attempt) of each work item in flight: outcomes and renewals are fenced by
        # it, so nothing of an earlier claim applies to a later one of the same item.
        self.claim_attempts: dict[int, int] = {}
        self.retry = retry or RetryPolicy()
        self.db_outage = Outage(
            "database", "State database", self.stats, max_seconds=outage_max_seconds
        )
        self.writes = WriteBuffer(
            self, flush_size=flush_size, discovery_cache_size=discovery_cache_size
        )
        self.leases = Leases(self)
        self.waits = WaitPlanner(self, retry_wait_max=retry_wait_max, idle_poll=idle_poll)
        self.dirty = True  # something was written since the last claim: claim again
        self.closing = False
        self._claiming = False
        self._exhausted = False  # the last claim found nothing
        self._claim_failures = 0
        self._claim_task: Deferred[None] | None = None
        self._flusher: LoopingCall | None = None
        self._claim_uncertain = False  # a claim failed in transit: it may have leased items
        # Set once spider_opened is done (the run started, or could not): the lake's reconcile
        # waits for it, so that dead owners' claims are released first.
        self.opened = asyncio.Event()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not settings.getbool("HOLOCRON_ENABLED", defaults.ENABLED):
            raise NotConfigured("HOLOCRON_ENABLED is off")
        dead_after_leases = settings.getfloat(
            "HOLOCRON_DEAD_AFTER_LEASES", defaults.DEAD_AFTER_LEASES
        )
        if dead_after_leases < 1:
            raise NotConfigured(
                f"HOLOCRON_DEAD_AFTER_LEASES must be 1 or more, not {dead_after_leases}: "
                "live runs write their heartbeat every third of a lease"
            )
        store = state_store_from_settings(settings)
        frontier = cls(
            crawler,
            store,
            claim_size=settings.getint("HOLOCRON_CLAIM_SIZE", defaults.CLAIM_SIZE),
            lease_seconds=settings.getfloat("HOLOCRON_LEASE_SECONDS", defaults.LEASE_SECONDS),
            flush_interval=settings.getfloat("HOLOCRON_FLUSH_INTERVAL", defaults.FLUSH_INTERVAL),
            flush_size=settings.getint("HOLOCRON_FLUSH_SIZE", defaults.FLUSH_SIZE),
            worker_id=settings.get("HOLOCRON_WORKER_ID", defaults.WORKER_ID)
            or socket.gethostname(),
            discovery_cache_size=settings.getint(
                "HOLOCRON_DISCOVERY_CACHE_SIZE", defaults.DISCOVERY_CACHE_SIZE
            ),
            retry=retry_policy_from_settings(settings),
            retry_wait_max=settings.getfloat("HOLOCRON_RETRY_WAIT_MAX", defaults.RETRY_WAIT_MAX),
            idle_poll=settings.getfloat("HOLOCRON_IDLE_POLL", defaults.IDLE_POLL),
            outage_max_seconds=settings.getfloat("HOLOCRON_OUTAGE_MAX", defaults.OUTAGE_MAX),
            dead_after_leases=dead_after_leases,
        )
        crawler.signals.connect(frontier.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(frontier.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(frontier.scheduler_empty, signal=signals.scheduler_empty)
        crawler.signals.connect(frontier.spider_idle, signal=signals.spider_idle)
        return frontier

    # -- lifecycle -------------------------------------------------------------------------

    async def spider_opened(self, spider: Spider) -> None:
        try:
            await self._open(spider)
        finally:
            self.opened.set()

    async def _open(self, spider: Spider) -> None:
        if not isinstance(spider, FrontierSpider):
            logger.info("Spider %s does not use the SQL frontier", spider.name)
            return
        try:
            await open_run(self, spider)
        except Exception as exc:
            logger.error(
                "Cannot use the state database %(url)s: %(error)s",
                {"url": self.store.url_for_log, "error": short_error(exc)},
            )
            logger.debug("State database error", exc_info=True)
            self.spider = None
            engine = self.crawler.engine
            assert engine is not None
            deferred_from_coro(engine.close_spider_async(reason="state_database_error"))
            return
        self._flusher = LoopingCall(self._periodic_flush)
        self._flusher.start(self.flush_interval, now=False)

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        if self.spider is None:
            self.store.dispose()
            return
        self.closing = True
        self.waits.cancel()
        if self._flusher is not None and self._flusher.running:
            self._flusher.stop()
        if self._claiming and self._claim_task is not None:
            await maybe_deferred_to_future(self._claim_task)  # its items are released below
        await self.flush()
        try:
            await close_run(self, reason)
        except Exception as exc:
            logger.error(
                "Could not record the end of run %(run)s (%(error)s): its unfinished claims go "
                "back to the queue when their lease expires, or at once when this worker "
                "starts again",
                {"run": self.run_id, "error": short_error(exc)},
            )
        else:
            await self.crawler.signals.send_catch_log_async(
                run_closed,
                run_id=self.run_id,
                source_system=self.spider.source_system,
                source_name=self.spider.source_name,
                reason=reason,
                store=self.store,
            )
        finally:
            await run_in_thread(self.store.dispose)

    # -- what the crawl reports -------------------------------------------------------------

    def discover(self, item: NewWorkItem) -> None:
        """Buffer a discovered resource; it is inserted if new at the next flush (see
        :meth:`WriteBuffer.discover`)."""
        fitted = limits.fit_work_item(item)
        if fitted is not item:
            self.stats.inc_value("holocron/limits/work_item_fitted")
        self.writes.discover(fitted)

    def finish(self, outcome: Outcome) -> None:
        """Buffer the end of a work item (skipped or failed; completion comes with its record).

        An outcome that names no claim ends the claim this run holds on the item."""
        held = self.claim_attempts.get(outcome.work_item_id)
        if outcome.attempt is None and held is not None:
            outcome = dataclasses.replace(outcome, attempt=held)
        elif outcome.attempt is not None and held is not None and outcome.attempt < held:
            # An earlier claim's (the store would refuse it): it must not take the place of
            # the held claim's outcome in the buffer.
            self.stats.inc_value("holocron/outcomes/stale_lease")
            logger.debug(
                "Dropped the outcome of attempt %(old)d of work item %(id)d (attempt %(new)d "
                "holds it)",
                {"old": outcome.attempt, "id": outcome.work_item_id, "new": held},
            )
            return
        self._ended(outcome)
        self.writes.finish(self._fit(outcome))

    def _fit(self, outcome: Outcome) -> Outcome:
        """``outcome`` with values its columns can store (see
        :mod:`holocron_scrapy.store.limits`)."""
        fitted = limits.fit_outcome(outcome)
        if fitted is not outcome:
            self.stats.inc_value("holocron/limits/outcome_fitted")
        return fitted

    def fail(self, items: Iterable[WorkItem], message: str, *, final: bool = False) -> None:
        """Fail ``items`` with ``message``; ``final``: not retried, whatever the retry policy."""
        for item in items:
            self.finish(Outcome.failed(item, message, final=final))

    def _ended(self, outcome: Outcome) -> None:
        """The claim the outcome ends is no longer in flight (a later claim of the item is)."""
        held = self.claim_attempts.get(outcome.work_item_id)
        if outcome.attempt is None or held is None or held == outcome.attempt:
            self.in_flight.discard(outcome.work_item_id)

    def hold(self, items: Sequence[WorkItem]) -> None:
        """The claimed ``items`` are in flight, under their claims (their attempts)."""
        self.claim_attempts = {
            i: attempt for i, attempt in self.claim_attempts.items() if i in self.in_flight
        }
        self.in_flight.update(item.id for item in items)
        self.claim_attempts.update((item.id, item.attempt) for item in items)

    async def requeue(self, work_item_ids: Sequence[int], dedupe_keys: Sequence[str] = ()) -> int:
        """Put completed items back into the queue (in a thread) and claim them soon: the
        ``work_item_ids``, and the completed or skipped items with these ``dedupe_keys`` (a
        changed page's other resources)."""
        if not work_item_ids and not dedupe_keys:
            return 0
        n: int = await run_in_thread(self.store.requeue_ids, work_item_ids)
        if dedupe_keys:
            related: int = await run_in_thread(self.store.requeue_keys, dedupe_keys)
            self.stats.inc_value("holocron/frontier/requeued_related", related)
            n += related
        self.stats.inc_value("holocron/frontier/requeued", n)
        self.dirty = True
        self.maybe_claim()
        return n

    async def save_cursor(self, item: WorkItem, cont: Mapping[str, str] | None) -> bool:
        """Save where a listing stands (its next ``continue``) and renew its lease, in a thread
        (see :meth:`Leases.save_cursor`). False when the claim was lost."""
        return await self.leases.save_cursor(item, cont)

    def is_claimed(self, item: WorkItem) -> bool:
        """``item`` is in flight under this very claim (not an earlier claim of the item)."""
        held = self.claim_attempts.get(item.id, item.attempt)
        return item.id in self.in_flight and held == item.attempt

    async def commit_records(
        self, rows: Sequence[IngestRow], outcomes: Sequence[Outcome]
    ) -> Applied:
        """Write records and complete their work items in one transaction (in a thread).

        Buffered discoveries are written first: a page is never completed before its links are
        in the queue. While the database is unreachable this waits (the items wait with it) and
        tries again; a retry after a commit whose answer was lost finds the items completed and
        inserts nothing twice. Only the items still leased to this run are completed and get
        their rows (see :meth:`StateStore.commit_records`).
        """
        await self.writes.flush_or_wait("links not queued")
        outcomes = [self._fit(outcome) for outcome in outcomes]
        ids = {outcome.work_item_id for outcome in outcomes}
        self.leases.committing |= ids
        try:
            applied: Applied = await self.writes.call(
                self.store.commit_records, rows, outcomes, owner=self.owner, retry=self.retry
            )
        finally:
            self.leases.committing -= ids
        self.dirty = True  # an outcome can reopen its item (found closer while in flight)
        for outcome in outcomes:
            self._ended(outcome)
        self.writes.count(applied)
        self.stats.inc_value("holocron/records/written", len(applied.ingest_ids))
        return applied

    def stopping(self) -> bool:
        """The crawl is being stopped (Ctrl-C, or it is closing): waiting out an outage ends
        (what is unwritten is fetched again by the next run)."""
        engine = self._engine()
        return self.closing or (engine is not None and not getattr(engine, "running", True))

    def _engine(self) -> Any:
        """The crawl's engine, or None before the crawl starts."""
        try:
            return self.crawler.engine
        except RuntimeError:  # Scrapy: "Crawler.engine is not set yet"
            return None

    def give_up(self, exc: BaseException) -> None:
        """The database stayed out of reach longer than HOLOCRON_OUTAGE_MAX: stop the crawl
        (what is unwritten is fetched again by the next run: the claims' leases expire)."""
        if self.closing:
            return
        logger.error(
            "State database unreachable for more than %(limit).0f s (%(error)s): stopping",
            {"limit": self.db_outage.max_seconds, "error": short_error(exc)},
        )
        self.closing = True
        engine = self._engine()
        if engine is not None:
            deferred_from_coro(engine.close_spider_async(reason="state_database_unreachable"))

    # -- writes ------------------------------------------------------------------------------

    def _periodic_flush(self) -> Any:
        renew = self.leases.renewal_due()  # the heartbeat too: claims in flight or none
        if self.writes.pending() or renew:
            return deferred_from_coro(self._periodic(renew=renew))
        return None

    async def _periodic(self, *, renew: bool) -> None:
        await self.flush()
        if renew and not self.db_outage.waiting():
            await self.renew_leases()

    async def flush(self) -> bool:
        """Write buffered discoveries and outcomes; False when a write failed (what could not be
        written stays buffered for the next try)."""
        return await self.writes.flush()

    async def renew_leases(self) -> int:
        """Extend the leases of this run's claims in flight (see :meth:`Leases.renew`)."""
        return await self.leases.renew()

    # -- claims ------------------------------------------------------------------------------

    def scheduler_empty(self) -> None:
        self.maybe_claim()

    def spider_idle(self, spider: Spider) -> None:
        if self.spider is None:
            return
        logger.debug(
            "Idle: claiming=%s buffered=%d/%d dirty=%s exhausted=%s waiting=%s in_flight=%d",
            self._claiming,
            len(self.writes.discovered),
            len(self.writes.outcomes),
            self.dirty,
            self._exhausted,
            self.waits.waiting,
            len(self.in_flight),
        )
        if (
            self.in_flight
            and self._exhausted
            and not self._claiming
            and not self.writes.discovered
            and not self.db_outage.active
        ):
            # The engine is idle, so nothing can finish these any more: a request was dropped
            # without reaching a callback or errback. Fail them rather than hang or lose them.
            lost = sorted(self.in_flight)
            logger.warning("%(n)d claimed work items were dropped in flight", {"n": len(lost)})
            self.stats.inc_value("holocron/frontier/lost_in_flight", len(lost))
            for work_item_id in lost:
                self.finish(Outcome(work_item_id, Status.FAILED, "request dropped in flight"))
            self.dirty = True  # write them, and claim them again if they are to be retried
        if not self.done():
            self.maybe_claim()
            raise DontCloseSpider

    def maybe_claim(self) -> None:
        """Claim a batch unless one is under way or the queue is known to hold nothing new."""
        if self.spider is None or self._claiming or self.closing or self.waits.waiting:
            return
        if self._exhausted and not self.dirty and not self.writes.pending():
            return
        if self.db_outage.waiting():
            return  # the claim after the back-off is scheduled already
        self._claiming = True
        self._claim_task = deferred_from_coro(self._claim_and_schedule())

    async def claim_batch(self) -> list[WorkItem]:
        """Flush what is buffered, then claim up to ``claim_size`` work items for this run.

        When it finds nothing and this run has nothing in flight, it asks the queue what may
        still come (:meth:`WaitPlanner.plan`).
        """
        assert self.spider is not None
        if self.writes.pending():
            await self.flush()
        if self._claim_uncertain:
            await self.leases.release_orphans()
            self._claim_uncertain = False
        self.dirty = False
        try:
            items: list[WorkItem] = await run_in_thread(
                self.store.claim,
                source_system=self.spider.source_system,
                source_name=self.spider.source_name,
                owner=self.owner,
                run_id=self.run_id,
                limit=self.claim_size,
                lease_seconds=self.lease_seconds,
            )
        except Exception as exc:
            if database_unreachable(exc):
                self._claim_uncertain = True  # the claim may have committed, its answer lost
            raise
        self.db_outage.recovered()
        logger.debug("Claimed %(n)d work items", {"n": len(items)})
        if items:
            self.waits.claimed()
        self._exhausted = not items
        self.hold(items)
        self.stats.inc_value("holocron/frontier/claimed", len(items))
        if not items and not self.in_flight and not self.writes.pending():
            await self.waits.plan()
        return items

    async def _claim_and_schedule(self) -> None:
        assert self.spider is not None
        engine = self.crawler.engine
        assert engine is not None
        items: list[WorkItem] = []
        try:
            items = await self.claim_batch()
            if self.closing:
                return  # spider_closed waits for this claim, then releases what it got
            # Completed items found closer are expanded from their records, not fetched again.
            to_fetch = await expand_from_stored(self, self.spider, items)
            for request in self.spider.requests_for(to_fetch):
                engine.crawl(request)
            if not to_fetch:
                items = []  # nothing to download: claim again once their outcomes are written
        except Exception as exc:
            self._exhausted = False
            self.stats.inc_value("holocron/frontier/claim_errors")
            if database_unreachable(exc):
                delay = self.db_outage.failed(exc)
                if self.db_outage.exceeded():
                    self.give_up(exc)
            else:
                self._claim_failures += 1
                delay = min(2.0**self._claim_failures, 60.0)
                logger.warning(
                    "Could not claim work items (%(error)s); retrying in %(delay).0f s",
                    {"error": short_error(exc), "delay": delay},
                    exc_info=self._claim_failures == 1,
                )
            await sleep(delay)
            self.dirty = True  # claim again after the back-off
        else:
            self._claim_failures = 0
        finally:
            self._claiming = False
        if items or self.closing or self.waits.waiting:
            return
        if self.dirty or self.writes.pending():
            self.maybe_claim()  # discoveries or outcomes arrived while claiming
        elif self.done() and engine.spider_is_idle():
            # Closing now spares the engine's 5 s idle heartbeat; spider_closed flushes.
            self.closing = True
            deferred_from_coro(engine.close_spider_async(reason="finished"))

    def done(self) -> bool:
        """Nothing claimable, nothing in flight, nothing buffered (a discovery adds work, a
        failure may be retried), no wait for other workers or scheduled retries under way."""
        return (
            self._exhausted
            and not self.dirty
            and not self.writes.pending()
            and not self._claiming
            and not self.waits.waiting
            and not self.writes.lock.locked()
            and not self.in_flight
        )
