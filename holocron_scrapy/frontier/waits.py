"""When nothing is claimable: whether the frontier waits (and how long), or lets the crawl end.

Other workers' live leases (they may discover more, or die and leave their items) and failures
scheduled for a retry within ``HOLOCRON_RETRY_WAIT_MAX`` are worth waiting for; the frontier
then claims again when the wait is over. Otherwise the crawl may end.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from scrapy.utils.asyncio import run_in_thread

from holocron_scrapy.store.state_store import utcnow

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy.statscollectors import StatsCollector

    from holocron_scrapy.frontier.claims import Claims
    from holocron_scrapy.frontier.spider import FrontierSpider
    from holocron_scrapy.store.state_store import StateStore

logger = logging.getLogger(__name__)


class WaitPlanner:
    """The waits of the run of ``claims`` when its queue is empty for now; ``wake`` is called
    when a wait is over (claim again)."""

    def __init__(
        self,
        store: StateStore,
        stats: StatsCollector,
        claims: Claims,
        *,
        retry_wait_max: float,
        idle_poll: float,
        wake: Callable[[], None],
    ) -> None:
        self.store = store
        self.stats = stats
        self.claims = claims
        self.retry_wait_max = retry_wait_max
        self.idle_poll = idle_poll
        self.wake = wake
        self._wake: asyncio.TimerHandle | None = None
        self._logged = False

    def claimed(self) -> None:
        """Work was claimed: the next wait is logged again."""
        self._logged = False

    def cancel(self) -> None:
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None

    async def plan(self, spider: FrontierSpider, *, closing: bool = False) -> bool:
        """Nothing of ``spider``'s source is claimable now. Wait (True: ``wake`` is called when
        it may pay to claim again) if other workers hold live leases on the source (they may
        discover more, or die and leave their items), or if failed items are scheduled for a
        retry within HOLOCRON_RETRY_WAIT_MAX; else (False) the crawl may end, saying how many
        retries are scheduled for later (unless it is ``closing``)."""
        outlook = await run_in_thread(
            self.store.outlook,
            source_system=spider.source_system,
            source_name=spider.source_name,
            owner=self.claims.owner,
        )
        now = utcnow()
        waits: list[float] = []
        if outlook.in_flight_elsewhere or (outlook.claimable and not closing):
            # Other workers' leases; or items claimable yet passed by because another worker's
            # claim held them locked (its transaction ends in a moment): claim again soon.
            waits.append(self.idle_poll)
        retry_in = None
        if outlook.next_retry_at is not None:
            retry_in = max(0.0, (outlook.next_retry_at - now).total_seconds())
            if retry_in <= self.retry_wait_max:
                waits.append(retry_in + 0.05)
        if not waits:
            if outlook.scheduled and not closing:
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
            return False
        wait = max(0.0, min(waits))
        self.stats.inc_value("holocron/frontier/waits")
        level = logging.DEBUG if self._logged else logging.INFO
        self._logged = True  # once until work is claimed again
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
        self._wake = asyncio.get_running_loop().call_later(wait, self._end)
        return True

    def _end(self) -> None:
        self._wake = None
        self.wake()
