"""The frontier's buffered writes: discoveries and outcomes, flushed in batches in a thread.

What the crawl learns (discovered links, skipped or failed work items) is kept in memory and
written in one batch per flush (every ``HOLOCRON_FLUSH_INTERVAL``, or as soon as
``HOLOCRON_FLUSH_SIZE`` entries wait), never on the reactor. What could not be written stays
buffered for the next try; during a database outage the next try waits for the back-off. A
batch the database refuses for its data (a value too long, one it cannot encode) is split until
the refused entry stands alone (:mod:`.split_writes`): a refused discovery is logged and
counted, a refused outcome fails its work item, for good, with the database's message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING, Any, TypeVar

from scrapy.utils.asyncio import run_in_thread, sleep
from scrapy.utils.defer import deferred_from_coro

from holocron_scrapy.model import Outcome, Status
from holocron_scrapy.outage import database_unreachable, short_error
from holocron_scrapy.store.split_writes import refusal_reason, write_split

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from scrapy.statscollectors import StatsCollector

    from holocron_scrapy.frontier.claims import Claims
    from holocron_scrapy.model import Applied, IngestRow, NewWorkItem, RetryPolicy
    from holocron_scrapy.outage import Outage
    from holocron_scrapy.store.state_store import StateStore

logger = logging.getLogger(__name__)

_NEVER = 1 << 62  # a depth no item has
_R = TypeVar("_R")


class CrawlStateError(Exception):
    """The crawl state (queue, outcomes) could not be written."""


class WriteBuffer:
    """Discoveries and outcomes waiting to be written to ``store`` for the run of ``claims``,
    and their flush.

    ``on_written`` is called after discoveries or outcomes were written (the queue changed:
    claim again); ``give_up(exc)`` when ``outage`` lasted too long; ``closing()``: the crawl
    closes (a flush during a back-off is tried anyway); ``stopping()``: it is being stopped
    (waiting out an outage ends).
    """

    def __init__(
        self,
        store: StateStore,
        stats: StatsCollector,
        claims: Claims,
        outage: Outage,
        retry: RetryPolicy,
        *,
        flush_size: int,
        discovery_cache_size: int,
        on_written: Callable[[], None],
        give_up: Callable[[BaseException], None],
        closing: Callable[[], bool],
        stopping: Callable[[], bool],
    ) -> None:
        self.store = store
        self.stats = stats
        self.claims = claims
        self.outage = outage
        self.retry = retry
        self.on_written = on_written
        self.give_up = give_up
        self.closing = closing
        self.stopping = stopping
        self.flush_size = flush_size
        self.discovery_cache_size = discovery_cache_size
        self.discovered: dict[str, NewWorkItem] = {}
        self.outcomes: dict[int, Outcome] = {}
        self.lock = asyncio.Lock()
        self._queued: dict[str, int] = {}  # dedupe key -> smallest depth queued by this run
        self._flush_scheduled = False
        self._stale_logged = False
        self._failing = 0  # failed writes in a row that were neither outages nor refusals

    def pending(self) -> bool:
        """Something is buffered or being written (a discovery adds work, a failure may be
        retried)."""
        return bool(self.discovered or self.outcomes) or self.lock.locked()

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
            item = dataclasses.replace(item, run_id=self.claims.run_id)
        self.discovered[key] = item
        self._flush_if_full()

    def finish(self, outcome: Outcome) -> None:
        """Buffer the end of a work item."""
        self.outcomes[outcome.work_item_id] = outcome
        self._flush_if_full()

    async def flush(self) -> bool:
        """Write buffered discoveries and outcomes; False when a write failed (what could not be
        written stays buffered for the next try)."""
        async with self.lock:
            discovered = list(self.discovered.values())
            outcomes = list(self.outcomes.values())
            self.discovered.clear()
            self.outcomes.clear()
            if not discovered and not outcomes:
                return True
            if self.outage.waiting() and not self.closing():
                self._keep(discovered, outcomes)  # the next try is due after the back-off
                return False
            try:
                if discovered:
                    added = await write_split(
                        self.store.add_work_items, discovered, self._refused_discovery
                    )
                    self.stats.inc_value("holocron/frontier/discovered_new", sum(added))
                    self.on_written()
                if outcomes:
                    await self._finish_items(outcomes)
                    self.on_written()  # an outcome can reopen its item
            except Exception as exc:
                self.stats.inc_value("holocron/frontier/write_errors")
                self._keep(discovered, outcomes)
                if database_unreachable(exc):
                    self.outage.failed(exc)
                    if self.outage.exceeded():
                        self.give_up(exc)
                else:
                    # A mistake (a missing table, a permission): logged once, not every second.
                    self._failing += 1
                    logger.log(
                        logging.WARNING if self._failing == 1 else logging.DEBUG,
                        "Could not write crawl state (%(error)s); will retry",
                        {"error": short_error(exc)},
                        exc_info=True,
                    )
                return False
            self.outage.recovered()
            if self._failing:
                logger.info(
                    "Crawl state written again after %(n)d failed tries", {"n": self._failing}
                )
                self._failing = 0
            return True

    def _write_outcomes(self, outcomes: list[Outcome]) -> Applied:
        return self.store.finish_items(outcomes, owner=self.claims.owner, retry=self.retry)

    async def _finish_items(self, outcomes: list[Outcome]) -> None:
        """Write ``outcomes`` (what is not written stays in the list); an outcome the database
        refuses fails its work item with the database's message instead, for good."""
        refused: list[Outcome] = []

        def refuse(outcome: Outcome, exc: BaseException) -> None:
            reason = refusal_reason(exc)
            self._log_refused("outcome", f"of work item {outcome.work_item_id}", reason)
            message = f"the crawl state database refused this outcome: {reason}"
            refused.append(Outcome(outcome.work_item_id, Status.FAILED, message, final=True))

        def drop(outcome: Outcome, exc: BaseException) -> None:
            # Only our own plain text is left: the lease of the item expires, the next run has it.
            why = refusal_reason(exc)
            self._log_refused("failure", f"of work item {outcome.work_item_id}", why)

        for applied in await write_split(self._write_outcomes, outcomes, refuse):
            self.count(applied)
        try:
            for applied in await write_split(self._write_outcomes, refused, drop):
                self.count(applied)
        finally:
            outcomes += refused  # what an outage left unwritten

    def _refused_discovery(self, item: NewWorkItem, exc: BaseException) -> None:
        self._log_refused("discovery", repr(item.dedupe_key[:200]), refusal_reason(exc))

    def _log_refused(self, kind: str, which: str, reason: str) -> None:
        self.stats.inc_value(f"holocron/frontier/refused/{kind}")
        logger.warning(
            "The crawl state database refused the %(kind)s %(which)s: %(reason)s",
            {"kind": kind, "which": which, "reason": reason},
        )

    async def call(self, fn: Callable[..., _R], *args: Any, **kwargs: Any) -> _R:
        """``fn`` in a thread; while the database is unreachable, wait and call it again (until
        the outage gives up: then the error is raised, as any other error is)."""
        outage = self.outage
        while True:
            try:
                result = await run_in_thread(fn, *args, **kwargs)
            except Exception as exc:
                if not database_unreachable(exc) or self.stopping():
                    raise
                delay = outage.failed(exc)
                if outage.exceeded():
                    self.give_up(exc)
                    raise
                await sleep(delay)
                continue
            outage.recovered()
            return result

    async def commit(self, rows: Sequence[IngestRow], outcomes: Sequence[Outcome]) -> Applied:
        """Write records and complete their work items in one transaction, after the buffered
        discoveries (see :meth:`Frontier.commit_records`)."""
        await self.flush_or_wait("links not queued")
        ids = {outcome.work_item_id for outcome in outcomes}
        self.claims.committing |= ids
        try:
            applied: Applied = await self.call(
                self.store.commit_records, rows, outcomes, owner=self.claims.owner, retry=self.retry
            )
        finally:
            self.claims.committing -= ids
        self.on_written()  # an outcome can reopen its item (found closer while in flight)
        for outcome in outcomes:
            self.claims.ended(outcome)
        self.count(applied)
        return applied

    async def flush_or_wait(self, what: str) -> None:
        """Flush the buffers; while the database is unreachable, wait and flush again."""
        outage = self.outage
        while not await self.flush():
            if not outage.active or outage.exceeded() or self.stopping():
                raise CrawlStateError(f"the crawl state could not be written ({what})")
            await sleep(outage.delay())

    def _keep(self, discovered: Sequence[NewWorkItem], outcomes: Sequence[Outcome]) -> None:
        """Put what could not be written back into the buffers (newer entries win)."""
        for item in discovered:
            self.discovered.setdefault(item.dedupe_key, item)
        for outcome in outcomes:
            self.outcomes.setdefault(outcome.work_item_id, outcome)

    def count(self, applied: Applied) -> None:
        """Stats of written outcomes: final statuses, retries, stale leases (logged once)."""
        stats = self.stats
        for status, n in applied.statuses.items():
            stats.inc_value(f"holocron/work_items/{status}", n)
        if applied.retried:
            stats.inc_value("holocron/work_items/retry_scheduled", applied.retried)
        if applied.stale:
            stats.inc_value("holocron/outcomes/stale_lease", len(applied.stale))
            if not self._stale_logged:
                self._stale_logged = True
                logger.warning(
                    "Dropped the outcomes of %(n)d work items whose lease this run no longer "
                    "holds (it expired and another worker took them, or they had ended): the "
                    "holder's outcome counts (logged once; stat holocron/outcomes/stale_lease)",
                    {"n": len(applied.stale)},
                )

    def _flush_if_full(self) -> None:
        """Start one flush when the buffers reach ``flush_size`` (never a second one while the
        first is pending: a 50-page response can bring thousands of discoveries)."""
        if self._flush_scheduled or len(self.discovered) + len(self.outcomes) < self.flush_size:
            return
        self._flush_scheduled = True
        deferred_from_coro(self._scheduled_flush())

    async def _scheduled_flush(self) -> None:
        try:
            await self.flush()
        finally:
            self._flush_scheduled = False
