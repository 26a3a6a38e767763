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
import os
import socket
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

from scrapy import signals
from scrapy.exceptions import DontCloseSpider, NotConfigured
from scrapy.utils.asyncio import run_in_thread, sleep
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from twisted.internet.task import LoopingCall

from holocron_scrapy.dburl import resolve_db_url, resolve_schema
from holocron_scrapy.model import NewWorkItem, Outcome, Status, WorkItem, canonical_json
from holocron_scrapy.store import StateStore

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings
    from scrapy.statscollectors import StatsCollector
    from twisted.internet.defer import Deferred

    from holocron_scrapy.model import IngestRow

logger = logging.getLogger(__name__)

SQLSERVER_HINT = (
    "to use SQL Server set HOLOCRON_DB_URL=mssql+pyodbc://USER:PASSWORD@HOST:1433/DB"
    "?driver=ODBC+Driver+18+for+SQL+Server (or DB_BACKEND=sqlserver with SQLSERVER_HOST, "
    "SQLSERVER_DATABASE, SQLSERVER_USERNAME, SQLSERVER_PASSWORD)"
)


@runtime_checkable
class FrontierSpider(Protocol):
    """What a spider offers the frontier."""

    source_system: str
    source_name: str
    recrawl: str | None

    def seed_work_items(self) -> list[NewWorkItem]: ...

    def requests_for(self, items: Sequence[WorkItem]) -> list[Request]: ...


def state_store_from_settings(settings: BaseSettings) -> StateStore:
    """The state store named by ``HOLOCRON_DB_URL`` / ``HOLOCRON_DB_SCHEMA`` (settings or env)."""
    url = resolve_db_url(settings.get("HOLOCRON_DB_URL"), os.environ)
    schema = resolve_schema(settings.get("HOLOCRON_DB_SCHEMA"), os.environ, url)
    return StateStore.from_url(url, schema)


def frontier_of(crawler: Crawler) -> Frontier:
    """The crawl's Frontier, for the components built on it (``NotConfigured`` without one)."""
    frontier = crawler.get_extension(Frontier)
    if frontier is None:
        raise NotConfigured("the holocron Frontier extension is not enabled")
    return frontier


def short_error(exc: BaseException) -> str:
    """The first line of a database error, without SQLAlchemy's background link."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"


_NEVER = 1 << 62  # a depth no item has


class CrawlStateError(Exception):
    """The crawl state (queue, outcomes) could not be written."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def work_items_of(request: Request) -> list[WorkItem]:
    """The work items a request serves (documented meta key ``holocron_work_items``)."""
    return list(request.meta.get("holocron_work_items", ()))


class Frontier:
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
    ) -> None:
        self.crawler = crawler
        self.store = store
        assert crawler.stats is not None
        self.stats: StatsCollector = crawler.stats
        self.claim_size = claim_size
        self.lease_seconds = lease_seconds
        self.flush_interval = flush_interval
        self.flush_size = flush_size
        self.worker_id = worker_id
        self.run_id = ""
        self.owner = ""
        self.spider: FrontierSpider | None = None
        self.in_flight: set[int] = set()
        self._outcomes: dict[int, Outcome] = {}
        self._discovered: dict[str, NewWorkItem] = {}
        self._flush_lock = asyncio.Lock()
        self._claiming = False
        self._exhausted = False  # the last claim found nothing
        self._dirty = True  # something was written since that claim: claim again
        self._closing = False
        self._claim_failures = 0
        self._flush_scheduled = False
        self._claim_task: Deferred[None] | None = None
        self._queued: dict[str, int] = {}  # dedupe key -> smallest depth queued by this run
        self.discovery_cache_size = discovery_cache_size
        self._flusher: LoopingCall | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not settings.getbool("HOLOCRON_ENABLED", True):
            raise NotConfigured("HOLOCRON_ENABLED is off")
        store = state_store_from_settings(settings)
        frontier = cls(
            crawler,
            store,
            claim_size=settings.getint("HOLOCRON_CLAIM_SIZE", 500),
            lease_seconds=settings.getfloat("HOLOCRON_LEASE_SECONDS", 600.0),
            flush_interval=settings.getfloat("HOLOCRON_FLUSH_INTERVAL", 1.0),
            flush_size=settings.getint("HOLOCRON_FLUSH_SIZE", 500),
            worker_id=settings.get("HOLOCRON_WORKER_ID") or socket.gethostname(),
            discovery_cache_size=settings.getint("HOLOCRON_DISCOVERY_CACHE_SIZE", 200_000),
        )
        crawler.signals.connect(frontier.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(frontier.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(frontier.scheduler_empty, signal=signals.scheduler_empty)
        crawler.signals.connect(frontier.spider_idle, signal=signals.spider_idle)
        return frontier

    # -- lifecycle -------------------------------------------------------------------------

    async def spider_opened(self, spider: Spider) -> None:
        if not isinstance(spider, FrontierSpider):
            logger.info("Spider %s does not use the SQL frontier", spider.name)
            return
        try:
            await self._open(spider)
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

    async def _open(self, spider: FrontierSpider) -> None:
        logger.info("State database: %s", self.store.url_for_log)
        if self.store.dialect_name == "sqlite":
            logger.info("SQLite is the embedded default: %s", SQLSERVER_HINT)
        await run_in_thread(self.store.create_tables)
        self.run_id = await run_in_thread(
            self.store.start_run,
            source_system=spider.source_system,
            source_name=spider.source_name,
            worker_id=self.worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
        )
        self.owner = f"{self.worker_id}:{os.getpid()}:{self.run_id}"
        await self._release_dead_owners(spider)
        if spider.recrawl == "all":
            n = await run_in_thread(
                self.store.requeue,
                source_system=spider.source_system,
                source_name=spider.source_name,
                statuses=[Status.COMPLETED, Status.FAILED, Status.SKIPPED],
            )
            logger.info("recrawl=all: %(n)d known items back in the queue", {"n": n})
        if spider.recrawl:
            # A recrawl refreshes what is known; it never adds the seeds again.
            self.stats.inc_value("holocron/frontier/seeded", 0)
            logger.info(
                "Run %(run)s of %(source)s: recrawl=%(mode)s, no seeding",
                {"run": self.run_id, "source": spider.source_name, "mode": spider.recrawl},
            )
        else:
            seeds = [dataclasses.replace(s, run_id=self.run_id) for s in spider.seed_work_items()]
            added = await run_in_thread(self.store.add_work_items, seeds)
            self.stats.inc_value("holocron/frontier/seeded", added)
            logger.info(
                "Run %(run)s of %(source)s: %(added)d of %(seeds)d seeds are new",
                {
                    "run": self.run_id,
                    "source": spider.source_name,
                    "added": added,
                    "seeds": len(seeds),
                },
            )
        self.spider = spider

    async def _release_dead_owners(self, spider: FrontierSpider) -> None:
        """Claims of a crashed process of this worker go back to the queue now, not when their
        lease expires (a lease owner is ``worker_id:pid:run_id``; only this worker's own dead
        pids on this machine are known to be dead; other workers' leases simply expire)."""
        owners = await run_in_thread(
            self.store.lease_owners,
            source_system=spider.source_system,
            source_name=spider.source_name,
        )
        for owner in owners:
            worker, _, rest = owner.rpartition(":")[0].rpartition(":")
            pid = int(rest) if rest.isdigit() else 0
            if worker != self.worker_id or pid <= 0 or pid == os.getpid() or _pid_alive(pid):
                continue
            n = await run_in_thread(self.store.release, owner=owner)
            self.stats.inc_value("holocron/frontier/released_dead", n)
            logger.info(
                "Released %(n)d claims of a stopped process (%(owner)s)", {"n": n, "owner": owner}
            )

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        if self.spider is None:
            self.store.dispose()
            return
        self._closing = True
        if self._flusher is not None and self._flusher.running:
            self._flusher.stop()
        if self._claiming and self._claim_task is not None:
            await maybe_deferred_to_future(self._claim_task)  # its items are released below
        await self.flush()
        try:
            await self._close_run(reason)
        except Exception as exc:
            logger.error(
                "Could not record the end of run %(run)s (%(error)s): its unfinished claims go "
                "back to the queue when their lease expires, or at once when this worker "
                "starts again",
                {"run": self.run_id, "error": short_error(exc)},
            )
        finally:
            await run_in_thread(self.store.dispose)

    async def _close_run(self, reason: str) -> None:
        if self._discovered or self._outcomes:
            raise RuntimeError(
                f"{len(self._discovered)} discoveries and {len(self._outcomes)} outcomes "
                "could not be written"
            )
        if self.in_flight:
            released = await run_in_thread(
                self.store.release, owner=self.owner, work_item_ids=sorted(self.in_flight)
            )
            self.stats.inc_value("holocron/frontier/released", released)
            logger.info(
                "Released %(n)d unfinished claims back to the queue (%(reason)s)",
                {"n": released, "reason": reason},
            )
            self.in_flight.clear()
        counts = {
            "items_discovered": self._stat("holocron/frontier/discovered_new"),
            "items_completed": self._stat("holocron/work_items/completed"),
            "items_failed": self._stat("holocron/work_items/failed"),
            "items_skipped": self._stat("holocron/work_items/skipped"),
            "records_written": self._stat("holocron/records/written"),
            "requests_made": self._stat("downloader/request_count"),
        }
        status = "finished" if reason == "finished" else "cancelled"
        await run_in_thread(
            self.store.finish_run, self.run_id, status=status, reason=reason, counts=counts
        )

    def _stat(self, key: str) -> int:
        return int(self.stats.get_value(key, 0))

    # -- what the crawl reports -------------------------------------------------------------

    def discover(self, item: NewWorkItem) -> None:
        """Buffer a discovered resource; it is inserted if new at the next flush.

        Popular pages are linked from thousands of others: a bounded cache of the keys this run
        already queued, with their depth, answers most of them without a database round trip
        (a shorter path still gets through). The database stays the authority.
        """
        key = item.dedupe_key
        if self._queued.get(key, _NEVER) <= item.depth:
            self.stats.inc_value("holocron/frontier/discovered_known")
            return
        if len(self._queued) >= self.discovery_cache_size:
            self._queued.clear()
        self._queued[key] = item.depth
        if item.run_id is None:
            item = dataclasses.replace(item, run_id=self.run_id)
        self._discovered[key] = item
        self._flush_if_full()

    def finish(self, outcome: Outcome) -> None:
        """Buffer the end of a work item (skipped or failed; completion comes with its record)."""
        self._outcomes[outcome.work_item_id] = outcome
        self.in_flight.discard(outcome.work_item_id)
        self.stats.inc_value(f"holocron/work_items/{outcome.status}")
        self._flush_if_full()

    def fail(self, items: Iterable[WorkItem], message: str) -> None:
        for item in items:
            self.finish(Outcome(item.id, Status.FAILED, message))

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
        self._dirty = True
        self._maybe_claim()
        return n

    async def save_cursor(self, item: WorkItem, cont: Mapping[str, str] | None) -> bool:
        """Save where a listing stands (its next ``continue``) and renew its lease, in a thread.

        The discoveries buffered so far (the members of the pages before the cursor) are
        written first, so a crash never skips members. False when the claim was lost (the item
        is then no longer this run's).
        """
        if not await self.flush():
            raise CrawlStateError("the crawl state could not be written (members not queued)")
        saved: bool = await run_in_thread(
            self.store.save_cursor,
            item.id,
            None if cont is None else canonical_json(cont),
            owner=self.owner,
            lease_seconds=self.lease_seconds,
        )
        if saved:
            self.stats.inc_value("holocron/frontier/cursors_saved")
        else:
            self.stats.inc_value("holocron/frontier/claims_lost")
            self.in_flight.discard(item.id)
            logger.warning(
                "Lost the claim of work item %(id)d (%(resource)s); another run has it",
                {"id": item.id, "resource": item.resource_id},
            )
        return saved

    def is_claimed(self, item: WorkItem) -> bool:
        return item.id in self.in_flight

    async def commit_records(self, rows: Sequence[IngestRow], outcomes: Sequence[Outcome]) -> None:
        """Write records and complete their work items in one transaction (in a thread).

        Buffered discoveries are written first: a page is never completed before its links are
        in the queue.
        """
        if not await self.flush():
            raise CrawlStateError("the crawl state could not be written (links not queued)")
        await run_in_thread(self.store.commit_records, rows, outcomes)
        self._dirty = True  # an outcome can reopen its item (found closer while in flight)
        for outcome in outcomes:
            self.in_flight.discard(outcome.work_item_id)
            self.stats.inc_value(f"holocron/work_items/{outcome.status}")
        self.stats.inc_value("holocron/records/written", len(rows))

    # -- writes ------------------------------------------------------------------------------

    def _flush_if_full(self) -> None:
        """Start one flush when the buffers reach ``flush_size`` (never a second one while the
        first is pending: a 50-page response can bring thousands of discoveries)."""
        if self._flush_scheduled or len(self._discovered) + len(self._outcomes) < self.flush_size:
            return
        self._flush_scheduled = True
        deferred_from_coro(self._scheduled_flush())

    async def _scheduled_flush(self) -> None:
        try:
            await self.flush()
        finally:
            self._flush_scheduled = False

    def _periodic_flush(self) -> Any:
        if self._discovered or self._outcomes:
            return deferred_from_coro(self.flush())
        return None

    async def flush(self) -> bool:
        """Write buffered discoveries and outcomes; False when a write failed (what could not be
        written stays buffered for the next try)."""
        async with self._flush_lock:
            discovered = list(self._discovered.values())
            outcomes = list(self._outcomes.values())
            self._discovered.clear()
            self._outcomes.clear()
            if not discovered and not outcomes:
                return True
            try:
                if discovered:
                    added = await run_in_thread(self.store.add_work_items, discovered)
                    self.stats.inc_value("holocron/frontier/discovered_new", added)
                    self._dirty = True
                    discovered = []
                if outcomes:
                    await run_in_thread(self.store.finish_items, outcomes)
                    self._dirty = True  # an outcome can reopen its item
            except Exception as exc:
                logger.warning(
                    "Could not write crawl state (%(error)s); will retry",
                    {"error": short_error(exc)},
                    exc_info=True,
                )
                self.stats.inc_value("holocron/frontier/write_errors")
                for item in discovered:
                    self._discovered.setdefault(item.dedupe_key, item)
                for outcome in outcomes:
                    self._outcomes.setdefault(outcome.work_item_id, outcome)
                return False
            return True

    # -- claims ------------------------------------------------------------------------------

    def scheduler_empty(self) -> None:
        self._maybe_claim()

    def spider_idle(self, spider: Spider) -> None:
        if self.spider is None:
            return
        logger.debug(
            "Idle: claiming=%s buffered=%d/%d dirty=%s exhausted=%s in_flight=%d",
            self._claiming,
            len(self._discovered),
            len(self._outcomes),
            self._dirty,
            self._exhausted,
            len(self.in_flight),
        )
        if self.in_flight and self._exhausted and not self._claiming and not self._discovered:
            # The engine is idle, so nothing can finish these any more: a request was dropped
            # without reaching a callback or errback. Fail them rather than hang or lose them.
            lost = sorted(self.in_flight)
            logger.warning("%(n)d claimed work items were dropped in flight", {"n": len(lost)})
            self.stats.inc_value("holocron/frontier/lost_in_flight", len(lost))
            for work_item_id in lost:
                self.finish(Outcome(work_item_id, Status.FAILED, "request dropped in flight"))
        if not self.done():
            self._maybe_claim()
            raise DontCloseSpider

    def _maybe_claim(self) -> None:
        """Claim a batch unless one is under way or the queue is known to hold nothing new."""
        if self.spider is None or self._claiming or self._closing:
            return
        if self._exhausted and not self._dirty and not self._discovered:
            return
        self._claiming = True
        self._claim_task = deferred_from_coro(self._claim_and_schedule())

    async def claim_batch(self) -> list[WorkItem]:
        """Flush what is buffered, then claim up to ``claim_size`` work items for this run."""
        assert self.spider is not None
        if self._discovered or self._outcomes:
            await self.flush()
        self._dirty = False
        items: list[WorkItem] = await run_in_thread(
            self.store.claim,
            source_system=self.spider.source_system,
            source_name=self.spider.source_name,
            owner=self.owner,
            run_id=self.run_id,
            limit=self.claim_size,
            lease_seconds=self.lease_seconds,
        )
        logger.debug("Claimed %(n)d work items", {"n": len(items)})
        self._exhausted = not items
        self.in_flight.update(item.id for item in items)
        self.stats.inc_value("holocron/frontier/claimed", len(items))
        return items

    async def _claim_and_schedule(self) -> None:
        assert self.spider is not None
        engine = self.crawler.engine
        assert engine is not None
        items: list[WorkItem] = []
        try:
            items = await self.claim_batch()
            if self._closing:
                return  # spider_closed waits for this claim, then releases what it got
            for request in self.spider.requests_for(items):
                engine.crawl(request)
        except Exception as exc:
            self._claim_failures += 1
            delay = min(2.0**self._claim_failures, 60.0)
            logger.warning(
                "Could not claim work items (%(error)s); retrying in %(delay).0f s",
                {"error": short_error(exc), "delay": delay},
                exc_info=self._claim_failures == 1,
            )
            self.stats.inc_value("holocron/frontier/claim_errors")
            self._exhausted = False
            await sleep(delay)
        else:
            self._claim_failures = 0
        finally:
            self._claiming = False
        if items or self._closing:
            return
        if self._dirty or self._discovered:
            self._maybe_claim()  # discoveries arrived while claiming
        elif self.done() and engine.spider_is_idle():
            # Closing now spares the engine's 5 s idle heartbeat; spider_closed flushes.
            self._closing = True
            deferred_from_coro(engine.close_spider_async(reason="finished"))

    def done(self) -> bool:
        """Nothing claimable, nothing in flight, nothing buffered that could add work."""
        return (
            self._exhausted
            and not self._dirty
            and not self._discovered
            and not self._claiming
            and not self._flush_lock.locked()
            and not self.in_flight
        )
