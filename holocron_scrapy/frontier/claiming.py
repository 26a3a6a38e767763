"""The claim loop: claims leased batches when Scrapy's scheduler runs dry, and says when the
crawl is done.

Its state is one :class:`Phase` (and the handle of the claim under way):

- ``READY``: claim when asked (the scheduler ran dry, the engine is idle);
- ``CLAIMING``: a claim started and nothing was written since (a write makes it ``READY``);
- ``EXHAUSTED``: the last claim found nothing and nothing was written since: no claim until
  something is (a discovery adds work, an outcome can reopen or retry its item);
- ``WAITING``: nothing is claimable now, but other workers' leases or scheduled retries may
  bring work: :class:`WaitPlanner` wakes the loop;
- ``CLOSING``: the crawl ends; no more claims (the phase is never left).

A database outage is not a phase: the loop does not claim during its back-off (``outage``).
The crawl is done when the phase is ``EXHAUSTED`` (or ``CLOSING``), no claim is under way,
nothing is buffered or being written and nothing is in flight.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING

from scrapy.utils.asyncio import run_in_thread, sleep
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future

from holocron_scrapy.model import Outcome, Status
from holocron_scrapy.outage import database_unreachable, short_error

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scrapy.statscollectors import StatsCollector
    from twisted.internet.defer import Deferred

    from holocron_scrapy.frontier.claims import Claims
    from holocron_scrapy.frontier.leases import Leases
    from holocron_scrapy.frontier.spider import FrontierSpider
    from holocron_scrapy.frontier.waits import WaitPlanner
    from holocron_scrapy.frontier.writes import WriteBuffer
    from holocron_scrapy.model import WorkItem
    from holocron_scrapy.outage import Outage
    from holocron_scrapy.store.state_store import StateStore

logger = logging.getLogger(__name__)


class Phase(enum.Enum):
    """Where the claim loop stands (see the module's docstring)."""

    READY = "ready"
    CLAIMING = "claiming"
    EXHAUSTED = "exhausted"
    WAITING = "waiting"
    CLOSING = "closing"


class ClaimLoop:
    """Claims up to ``claim_size`` items of ``store`` for the run of ``claims``.

    ``schedule(items)`` hands claimed items to the crawl (it returns how many are to be
    downloaded), ``finish(outcome)`` buffers an outcome, ``close(reason)`` closes the spider,
    ``engine_idle()`` tells whether the engine has nothing left to do.
    """

    def __init__(
        self,
        store: StateStore,
        stats: StatsCollector,
        *,
        claims: Claims,
        writes: WriteBuffer,
        leases: Leases,
        waits: WaitPlanner,
        outage: Outage,
        claim_size: int,
        lease_seconds: float,
        schedule: Callable[[list[WorkItem]], Awaitable[int]],
        finish: Callable[[Outcome], None],
        close: Callable[[str], None],
        engine_idle: Callable[[], bool],
    ) -> None:
        self.store = store
        self.stats = stats
        self.claims = claims
        self.writes = writes
        self.leases = leases
        self.waits = waits
        self.outage = outage
        self.claim_size = claim_size
        self.lease_seconds = lease_seconds
        self.schedule = schedule
        self.finish = finish
        self.close = close
        self.engine_idle = engine_idle
        self.spider: FrontierSpider | None = None  # set when the run started
        self.phase = Phase.READY
        self._task: Deferred[None] | None = None  # the claim under way (with its back-off)
        self._claim_failures = 0

    @property
    def claiming(self) -> bool:
        """A claim started by :meth:`maybe_claim` is under way."""
        return self._task is not None

    @property
    def closing(self) -> bool:
        return self.phase is Phase.CLOSING

    def _enter(self, phase: Phase) -> None:
        if self.phase is not Phase.CLOSING:
            self.phase = phase

    # -- what changes the phase ----------------------------------------------------------------

    def written(self) -> None:
        """Discoveries or outcomes were written (the queue changed): claim again."""
        if self.phase in (Phase.CLAIMING, Phase.EXHAUSTED):
            self.phase = Phase.READY

    def wake(self) -> None:
        """A wait is over: claim again."""
        if self.phase is Phase.WAITING:
            self.phase = Phase.READY
        self.maybe_claim()

    def close_down(self, reason: str | None = None) -> None:
        """No more claims; with a ``reason``, close the spider too."""
        self.phase = Phase.CLOSING
        self.waits.cancel()
        if reason is not None:
            self.close(reason)

    async def settled(self) -> None:
        """The claim under way, if any, is over (its items are in :attr:`claims`)."""
        if self._task is not None:
            await maybe_deferred_to_future(self._task)

    def give_up(self, exc: BaseException) -> None:
        """The database stayed out of reach longer than HOLOCRON_OUTAGE_MAX: stop the crawl
        (what is unwritten is fetched again by the next run: the claims' leases expire)."""
        if self.closing:
            return
        logger.error(
            "State database unreachable for more than %(limit).0f s (%(error)s): stopping",
            {"limit": self.outage.max_seconds, "error": short_error(exc)},
        )
        self.close_down("state_database_unreachable")

    # -- claims ----------------------------------------------------------------------------------

    def maybe_claim(self) -> None:
        """Claim a batch unless one is under way or the queue is known to hold nothing new."""
        if self.spider is None or self._task is not None:
            return
        if self.phase in (Phase.CLOSING, Phase.WAITING):
            return
        if self.phase is Phase.EXHAUSTED and not self.writes.pending():
            return
        if self.outage.waiting():
            return  # the claim after the back-off is scheduled already
        task = deferred_from_coro(self._claim_and_schedule())
        if not task.called:
            self._task = task

    async def claim_batch(self) -> list[WorkItem]:
        """Flush what is buffered, then claim up to ``claim_size`` work items for this run.

        When it finds nothing and this run has nothing in flight, it asks the queue what may
        still come (:meth:`WaitPlanner.plan`).
        """
        spider = self.spider
        assert spider is not None
        if self.writes.pending():
            await self.writes.flush()
        if self.leases.orphans_possible:
            await self.leases.release_orphans()
            self.leases.orphans_possible = False
        self._enter(Phase.CLAIMING)
        try:
            items: list[WorkItem] = await run_in_thread(
                self.store.claim,
                source_system=spider.source_system,
                source_name=spider.source_name,
                owner=self.claims.owner,
                run_id=self.claims.run_id,
                limit=self.claim_size,
                lease_seconds=self.lease_seconds,
            )
        except Exception as exc:
            if database_unreachable(exc):
                self.leases.orphans_possible = True  # it may have committed, its answer lost
            raise
        self.outage.recovered()
        logger.debug("Claimed %(n)d work items", {"n": len(items)})
        self.claims.hold(items)
        self.stats.inc_value("holocron/frontier/claimed", len(items))
        if items:
            self.waits.claimed()
            self._enter(Phase.READY)
            return items
        if self.phase is Phase.CLAIMING:  # nothing was written while claiming
            self._enter(Phase.EXHAUSTED)
        idle = not self.claims.in_flight and not self.writes.pending()
        if idle and await self.waits.plan(spider, closing=self.closing):
            self._enter(Phase.WAITING)
        return items

    async def _claim_and_schedule(self) -> None:
        scheduled = 0
        try:
            items = await self.claim_batch()
            if self.closing:
                return  # spider_closed waits for this claim, then releases what it got
            scheduled = await self.schedule(items)
        except Exception as exc:
            self.stats.inc_value("holocron/frontier/claim_errors")
            if database_unreachable(exc):
                delay = self.outage.failed(exc)
                if self.outage.exceeded():
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
            self._enter(Phase.READY)  # claim again after the back-off
        else:
            self._claim_failures = 0
        finally:
            self._task = None
        if scheduled or self.phase in (Phase.CLOSING, Phase.WAITING):
            return
        if self.phase is not Phase.EXHAUSTED or self.writes.pending():
            self.maybe_claim()  # discoveries or outcomes arrived while claiming
        elif self.done() and self.engine_idle():
            # Closing now spares the engine's 5 s idle heartbeat; spider_closed flushes.
            self.close_down("finished")

    def idle(self) -> bool:
        """The engine is idle: claim if there may be work; False when the crawl is done."""
        in_flight = self.claims.in_flight
        logger.debug(
            "Idle: phase=%s claiming=%s buffered=%d/%d in_flight=%d",
            self.phase.value,
            self.claiming,
            len(self.writes.discovered),
            len(self.writes.outcomes),
            len(in_flight),
        )
        if (
            in_flight
            and self.phase is Phase.EXHAUSTED
            and not self.claiming
            and not self.writes.discovered
            and not self.outage.active
        ):
            # The engine is idle, so nothing can finish these any more: a request was dropped
            # without reaching a callback or errback. Fail them rather than hang or lose them.
            lost = sorted(in_flight)
            logger.warning("%(n)d claimed work items were dropped in flight", {"n": len(lost)})
            self.stats.inc_value("holocron/frontier/lost_in_flight", len(lost))
            for work_item_id in lost:
                self.finish(Outcome(work_item_id, Status.FAILED, "request dropped in flight"))
            self.written()  # write them, and claim them again if they are to be retried
        if self.done():
            return False
        self.maybe_claim()
        return True

    def done(self) -> bool:
        """Nothing claimable, nothing in flight, nothing buffered or being written (a discovery
        adds work, a failure may be retried), no wait for other workers or scheduled retries
        under way (once closing, nothing is claimable any more)."""
        return (
            self.phase in (Phase.EXHAUSTED, Phase.CLOSING)
            and not self.claiming
            and not self.writes.pending()
            and not self.claims.in_flight
        )
