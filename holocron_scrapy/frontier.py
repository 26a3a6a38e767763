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
import time
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar, runtime_checkable

from scrapy import signals
from scrapy.exceptions import DontCloseSpider, NotConfigured
from scrapy.utils.asyncio import run_in_thread, sleep
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from twisted.internet.task import LoopingCall

from holocron_scrapy.dburl import resolve_db_url, resolve_schema
from holocron_scrapy.model import (
    NewWorkItem,
    Outcome,
    RetryPolicy,
    Status,
    WorkItem,
    canonical_json,
)
from holocron_scrapy.outage import Outage, database_unreachable, short_error
from holocron_scrapy.store import StateStore, utcnow

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings
    from scrapy.statscollectors import StatsCollector
    from twisted.internet.defer import Deferred

    from holocron_scrapy.model import Applied, IngestRow

logger = logging.getLogger(__name__)
_R = TypeVar("_R")

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


def retry_policy_from_settings(settings: BaseSettings) -> RetryPolicy:
    """``HOLOCRON_MAX_ATTEMPTS`` (3), ``HOLOCRON_RETRY_BACKOFF`` (30 s),
    ``HOLOCRON_RETRY_BACKOFF_MAX`` (3600 s); ``NotConfigured`` when out of range."""
    try:
        return RetryPolicy(
            max_attempts=settings.getint("HOLOCRON_MAX_ATTEMPTS", 3),
            base_seconds=settings.getfloat("HOLOCRON_RETRY_BACKOFF", 30.0),
            cap_seconds=settings.getfloat("HOLOCRON_RETRY_BACKOFF_MAX", 3600.0),
        )
    except ValueError as exc:
        raise NotConfigured(f"HOLOCRON_MAX_ATTEMPTS / HOLOCRON_RETRY_BACKOFF: {exc}") from exc


def frontier_of(crawler: Crawler) -> Frontier:
    """The crawl's Frontier, for the components built on it (``NotConfigured`` without one)."""
    frontier = crawler.get_extension(Frontier)
    if frontier is None:
        raise NotConfigured("the holocron Frontier extension is not enabled")
    return frontier


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
        retry: RetryPolicy | None = None,
        retry_wait_max: float = 600.0,
        idle_poll: float = 2.0,
        outage_max_seconds: float = 3600.0,
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
        self.retry = retry or RetryPolicy()
        self.retry_wait_max = retry_wait_max
        self.idle_poll = idle_poll
        self.db_outage = Outage(
            "database", "State database", self.stats, max_seconds=outage_max_seconds
        )
        self._waiting = False  # the queue is empty for now; a claim is due later (see _outlook)
        self._wake: asyncio.TimerHandle | None = None
        self._claim_uncertain = False  # a claim failed in transit: it may have leased items
        self._renewed_at = time.monotonic()
        self._stale_logged = False
        self._wait_logged = False
        self._committing: set[int] = set()  # work items whose records are being committed

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
            retry=retry_policy_from_settings(settings),
            retry_wait_max=settings.getfloat("HOLOCRON_RETRY_WAIT_MAX", 600.0),
            idle_poll=settings.getfloat("HOLOCRON_IDLE_POLL", 2.0),
            outage_max_seconds=settings.getfloat("HOLOCRON_OUTAGE_MAX", 3600.0),
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
        if self._wake is not None:
            self._wake.cancel()
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
        await self._flush_or_wait("members not queued")
        saved: bool = await self._db_call(
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
        in the queue. While the database is unreachable this waits (the items wait with it) and
        tries again; a retry after a commit whose answer was lost finds the items completed and
        inserts nothing twice. Only the items still leased to this run are completed and get
        their rows (see :meth:`StateStore.commit_records`).
        """
        await self._flush_or_wait("links not queued")
        ids = {outcome.work_item_id for outcome in outcomes}
        self._committing |= ids
        try:
            applied: Applied = await self._db_call(
                self.store.commit_records, rows, outcomes, owner=self.owner, retry=self.retry
            )
        finally:
            self._committing -= ids
        self._dirty = True  # an outcome can reopen its item (found closer while in flight)
        for outcome in outcomes:
            self.in_flight.discard(outcome.work_item_id)
        self._count(applied)
        self.stats.inc_value("holocron/records/written", len(applied.ingest_ids))

    async def _db_call(self, fn: Callable[..., _R], *args: Any, **kwargs: Any) -> _R:
        """``fn`` in a thread; while the database is unreachable, wait and call it again (until
        :attr:`db_outage` gives up: then the error is raised, as any other error is)."""
        while True:
            try:
                result = await run_in_thread(fn, *args, **kwargs)
            except Exception as exc:
                if not database_unreachable(exc) or self.stopping():
                    raise
                delay = self.db_outage.failed(exc)
                if self.db_outage.exceeded():
                    self._give_up(exc)
                    raise
                await sleep(delay)
                continue
            self.db_outage.recovered()
            return result

    async def _flush_or_wait(self, what: str) -> None:
        """Flush the buffers; while the database is unreachable, wait and flush again."""
        while not await self.flush():
            if not self.db_outage.active or self.db_outage.exceeded() or self.stopping():
                raise CrawlStateError(f"the crawl state could not be written ({what})")
            await sleep(self.db_outage.delay())

    def stopping(self) -> bool:
        """The crawl is being stopped (Ctrl-C, or it is closing): waiting out an outage ends
        (what is unwritten is fetched again by the next run)."""
        engine = self._engine()
        return self._closing or (engine is not None and not getattr(engine, "running", True))

    def _engine(self) -> Any:
        """The crawl's engine, or None before the crawl starts."""
        try:
            return self.crawler.engine
        except RuntimeError:  # Scrapy: "Crawler.engine is not set yet"
            return None

    def _give_up(self, exc: BaseException) -> None:
        """The database stayed out of reach longer than HOLOCRON_OUTAGE_MAX: stop the crawl
        (what is unwritten is fetched again by the next run: the claims' leases expire)."""
        if self._closing:
            return
        logger.error(
            "State database unreachable for more than %(limit).0f s (%(error)s): stopping",
            {"limit": self.db_outage.max_seconds, "error": short_error(exc)},
        )
        self._closing = True
        engine = self._engine()
        if engine is not None:
            deferred_from_coro(engine.close_spider_async(reason="state_database_unreachable"))

    def _count(self, applied: Applied) -> None:
        """Stats of written outcomes: final statuses, retries, stale leases (logged once)."""
        for status, n in applied.statuses.items():
            self.stats.inc_value(f"holocron/work_items/{status}", n)
        if applied.retried:
            self.stats.inc_value("holocron/work_items/retry_scheduled", applied.retried)
        if applied.stale:
            self.stats.inc_value("holocron/outcomes/stale_lease", len(applied.stale))
            if not self._stale_logged:
                self._stale_logged = True
                logger.warning(
                    "Dropped the outcomes of %(n)d work items whose lease this run no longer "
                    "holds (it expired and another worker took them, or they had ended): the "
                    "holder's outcome counts (logged once; stat holocron/outcomes/stale_lease)",
                    {"n": len(applied.stale)},
                )

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
        renew = time.monotonic() - self._renewed_at >= self.lease_seconds / 3
        if self._discovered or self._outcomes or (renew and self.in_flight):
            return deferred_from_coro(self._periodic(renew=renew))
        return None

    async def _periodic(self, *, renew: bool) -> None:
        await self.flush()
        if renew and self.in_flight and not self.db_outage.waiting():
            await self.renew_leases()

    async def renew_leases(self) -> int:
        """Extend the leases of this run's claims in flight (every third of the lease), so that
        a long wait (Retry-After, a slow listing, a database outage shorter than the lease) does
        not hand live work to another worker."""
        self._renewed_at = time.monotonic()
        # Claims made while this runs are not part of it (they were not renewed, nor checked).
        renewing = set(self.in_flight)
        try:
            n: int = await run_in_thread(
                self.store.renew_leases,
                owner=self.owner,
                work_item_ids=sorted(renewing),
                lease_seconds=self.lease_seconds,
            )
        except Exception as exc:
            if not database_unreachable(exc):
                logger.warning("Could not renew leases (%s)", short_error(exc), exc_info=True)
            else:
                self.db_outage.failed(exc)
            return 0
        self.db_outage.recovered()
        self.stats.inc_value("holocron/frontier/leases_renewed", n)
        if n < len(renewing):
            await self._drop_lost_claims(renewing)
        return n

    async def _drop_lost_claims(self, candidates: set[int]) -> None:
        """Claims in flight whose lease this run no longer holds (it expired while the process
        was stalled, and another worker took the items) are given up: their requests still
        queued are dropped (ClaimCheckMiddleware) and their records are not written.

        Only ``candidates`` (the claims in flight before the lease query) can be lost: a claim
        that commits while the query runs is missing from its answer, yet it is this run's."""
        leased = set(await run_in_thread(self.store.leased_ids, owner=self.owner))
        lost = (candidates & self.in_flight) - leased - self._committing
        if not lost:
            return
        self.in_flight -= lost
        self.stats.inc_value("holocron/frontier/claims_lost", len(lost))
        logger.warning(
            "Lost the claims of %(n)d work items (their lease expired and another worker took "
            "them): their requests are dropped",
            {"n": len(lost)},
        )

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
            if self.db_outage.waiting() and not self._closing:
                self._keep(discovered, outcomes)  # the next try is due after the back-off
                return False
            try:
                if discovered:
                    added = await run_in_thread(self.store.add_work_items, discovered)
                    self.stats.inc_value("holocron/frontier/discovered_new", added)
                    self._dirty = True
                    discovered = []
                if outcomes:
                    applied = await run_in_thread(
                        self.store.finish_items, outcomes, owner=self.owner, retry=self.retry
                    )
                    self._count(applied)
                    self._dirty = True  # an outcome can reopen its item
            except Exception as exc:
                self.stats.inc_value("holocron/frontier/write_errors")
                self._keep(discovered, outcomes)
                if database_unreachable(exc):
                    self.db_outage.failed(exc)
                    if self.db_outage.exceeded():
                        self._give_up(exc)
                else:
                    logger.warning(
                        "Could not write crawl state (%(error)s); will retry",
                        {"error": short_error(exc)},
                        exc_info=True,
                    )
                return False
            self.db_outage.recovered()
            return True

    def _keep(self, discovered: Sequence[NewWorkItem], outcomes: Sequence[Outcome]) -> None:
        """Put what could not be written back into the buffers (newer entries win)."""
        for item in discovered:
            self._discovered.setdefault(item.dedupe_key, item)
        for outcome in outcomes:
            self._outcomes.setdefault(outcome.work_item_id, outcome)

    # -- claims ------------------------------------------------------------------------------

    def scheduler_empty(self) -> None:
        self._maybe_claim()

    def spider_idle(self, spider: Spider) -> None:
        if self.spider is None:
            return
        logger.debug(
            "Idle: claiming=%s buffered=%d/%d dirty=%s exhausted=%s waiting=%s in_flight=%d",
            self._claiming,
            len(self._discovered),
            len(self._outcomes),
            self._dirty,
            self._exhausted,
            self._waiting,
            len(self.in_flight),
        )
        if (
            self.in_flight
            and self._exhausted
            and not self._claiming
            and not self._discovered
            and not self.db_outage.active
        ):
            # The engine is idle, so nothing can finish these any more: a request was dropped
            # without reaching a callback or errback. Fail them rather than hang or lose them.
            lost = sorted(self.in_flight)
            logger.warning("%(n)d claimed work items were dropped in flight", {"n": len(lost)})
            self.stats.inc_value("holocron/frontier/lost_in_flight", len(lost))
            for work_item_id in lost:
                self.finish(Outcome(work_item_id, Status.FAILED, "request dropped in flight"))
            self._dirty = True  # write them, and claim them again if they are to be retried
        if not self.done():
            self._maybe_claim()
            raise DontCloseSpider

    def _maybe_claim(self) -> None:
        """Claim a batch unless one is under way or the queue is known to hold nothing new."""
        if self.spider is None or self._claiming or self._closing or self._waiting:
            return
        if self._exhausted and not self._dirty and not self._discovered and not self._outcomes:
            return
        if self.db_outage.waiting():
            return  # the claim after the back-off is scheduled already
        self._claiming = True
        self._claim_task = deferred_from_coro(self._claim_and_schedule())

    async def claim_batch(self) -> list[WorkItem]:
        """Flush what is buffered, then claim up to ``claim_size`` work items for this run.

        When it finds nothing and this run has nothing in flight, it asks the queue what may
        still come (:meth:`_plan_wait`).
        """
        assert self.spider is not None
        if self._discovered or self._outcomes:
            await self.flush()
        if self._claim_uncertain:
            await self._release_orphans()
        self._dirty = False
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
            self._wait_logged = False
        self._exhausted = not items
        self.in_flight.update(item.id for item in items)
        self.stats.inc_value("holocron/frontier/claimed", len(items))
        if not items and not self.in_flight and not self._outcomes and not self._discovered:
            await self._plan_wait()
        return items

    async def _release_orphans(self) -> None:
        """Items leased to this run that it does not know of (a claim committed but its answer
        was lost with the connection) go back to the queue."""
        async with self._flush_lock:
            leased: list[int] = await run_in_thread(self.store.leased_ids, owner=self.owner)
            known = self.in_flight | set(self._outcomes)
            orphans = [i for i in leased if i not in known]
            if orphans:
                n = await run_in_thread(self.store.release, owner=self.owner, work_item_ids=orphans)
                self.stats.inc_value("holocron/frontier/released_orphans", n)
                logger.info(
                    "Released %(n)d claims whose answer was lost with the database connection",
                    {"n": n},
                )
        self._claim_uncertain = False

    async def _plan_wait(self) -> None:
        """Nothing is claimable now. Wait (claiming again when it may pay) if other workers hold
        live leases on the source (they may discover more, or die and leave their items), or if
        failed items are scheduled for a retry within HOLOCRON_RETRY_WAIT_MAX; else the crawl
        may end, saying how many retries are scheduled for later."""
        assert self.spider is not None
        outlook = await run_in_thread(
            self.store.outlook,
            source_system=self.spider.source_system,
            source_name=self.spider.source_name,
            owner=self.owner,
        )
        now = utcnow()
        waits: list[float] = []
        if outlook.in_flight_elsewhere:
            waits.append(self.idle_poll)
        retry_in = None
        if outlook.next_retry_at is not None:
            retry_in = max(0.0, (outlook.next_retry_at - now).total_seconds())
            if retry_in <= self.retry_wait_max:
                waits.append(retry_in + 0.05)
        if not waits:
            if outlook.scheduled and not self._closing:
                logger.info(
                    "%(n)d failed work items are scheduled for another attempt, the first at "
                    "%(at)s UTC (in %(s).0f s, more than HOLOCRON_RETRY_WAIT_MAX=%(max).0f s): "
                    "not waiting; run the crawl again after that time to try them",
                    {
                        "n": outlook.scheduled,
                        "at": outlook.next_retry_at,
                        "s": retry_in,
                        "max": self.retry_wait_max,
                    },
                )
                self.stats.set_value("holocron/frontier/retries_left_scheduled", outlook.scheduled)
            return
        wait = max(0.0, min(waits))
        self._waiting = True
        self.stats.inc_value("holocron/frontier/waits")
        level = logging.DEBUG if self._wait_logged else logging.INFO
        self._wait_logged = True  # once until work is claimed again
        logger.log(
            level,
            "Nothing to claim now: %(others)d items in flight with other workers, %(n)d "
            "scheduled retries (the first in %(retry)s s); claiming again in %(wait).1f s",
            {
                "others": outlook.in_flight_elsewhere,
                "n": outlook.scheduled,
                "retry": "-" if retry_in is None else f"{retry_in:.0f}",
                "wait": wait,
            },
        )
        self._wake = asyncio.get_running_loop().call_later(wait, self._end_wait)

    def _end_wait(self) -> None:
        self._wake = None
        self._waiting = False
        self._dirty = True
        self._maybe_claim()

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
            self._exhausted = False
            self.stats.inc_value("holocron/frontier/claim_errors")
            if database_unreachable(exc):
                delay = self.db_outage.failed(exc)
                if self.db_outage.exceeded():
                    self._give_up(exc)
            else:
                self._claim_failures += 1
                delay = min(2.0**self._claim_failures, 60.0)
                logger.warning(
                    "Could not claim work items (%(error)s); retrying in %(delay).0f s",
                    {"error": short_error(exc), "delay": delay},
                    exc_info=self._claim_failures == 1,
                )
            await sleep(delay)
            self._dirty = True  # claim again after the back-off
        else:
            self._claim_failures = 0
        finally:
            self._claiming = False
        if items or self._closing or self._waiting:
            return
        if self._dirty or self._discovered or self._outcomes:
            self._maybe_claim()  # discoveries or outcomes arrived while claiming
        elif self.done() and engine.spider_is_idle():
            # Closing now spares the engine's 5 s idle heartbeat; spider_closed flushes.
            self._closing = True
            deferred_from_coro(engine.close_spider_async(reason="finished"))

    def done(self) -> bool:
        """Nothing claimable, nothing in flight, nothing buffered (a discovery adds work, a
        failure may be retried), no wait for other workers or scheduled retries under way."""
        return (
            self._exhausted
            and not self._dirty
            and not self._discovered
            and not self._outcomes
            and not self._claiming
            and not self._waiting
            and not self._flush_lock.locked()
            and not self.in_flight
        )
