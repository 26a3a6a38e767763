"""The leases on the frontier's claims: renewal, lost claims, dead owners, orphans, release.

A claim is a lease (owner ``worker_id:pid:run_id``) that the crawl renews every third of its
length while the claim is in flight. A claim whose lease another worker took is given up; the
claims of a dead process of this worker, and claims committed while their answer was lost with
the connection, go back to the queue; unfinished claims are released when the crawl closes.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from scrapy.utils.asyncio import run_in_thread

from holocron_scrapy.model import canonical_json
from holocron_scrapy.outage import database_unreachable, short_error

if TYPE_CHECKING:
    from collections.abc import Mapping

    from holocron_scrapy.frontier import Frontier, FrontierSpider
    from holocron_scrapy.model import WorkItem

logger = logging.getLogger(__name__)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Leases:
    """The leases of ``frontier``'s claims."""

    def __init__(self, frontier: Frontier) -> None:
        self.frontier = frontier
        self.renewed_at = time.monotonic()
        self.committing: set[int] = set()  # work items whose records are being committed

    def renewal_due(self) -> bool:
        """A third of the lease has passed since the last renewal."""
        return time.monotonic() - self.renewed_at >= self.frontier.lease_seconds / 3

    async def release_dead_owners(self, spider: FrontierSpider) -> None:
        """Claims of a crashed process of this worker go back to the queue now, not when their
        lease expires (a lease owner is ``worker_id:pid:run_id``; only this worker's own dead
        pids on this machine are known to be dead; other workers' leases simply expire)."""
        frontier = self.frontier
        owners = await run_in_thread(
            frontier.store.lease_owners,
            source_system=spider.source_system,
            source_name=spider.source_name,
        )
        for owner in owners:
            worker, _, rest = owner.rpartition(":")[0].rpartition(":")
            pid = int(rest) if rest.isdigit() else 0
            if worker != frontier.worker_id or pid <= 0 or pid == os.getpid() or _pid_alive(pid):
                continue
            n = await run_in_thread(frontier.store.release, owner=owner)
            frontier.stats.inc_value("holocron/frontier/released_dead", n)
            logger.info(
                "Released %(n)d claims of a stopped process (%(owner)s)", {"n": n, "owner": owner}
            )

    async def renew(self) -> int:
        """Extend the leases of this run's claims in flight (every third of the lease), so that
        a long wait (Retry-After, a slow listing, a database outage shorter than the lease) does
        not hand live work to another worker."""
        frontier = self.frontier
        self.renewed_at = time.monotonic()
        # Claims made while this runs are not part of it (they were not renewed, nor checked).
        renewing = set(frontier.in_flight)
        claims = {i: frontier.claim_attempts[i] for i in renewing if i in frontier.claim_attempts}
        try:
            n: int = await run_in_thread(
                frontier.store.renew_leases,
                owner=frontier.owner,
                claims=claims,
                lease_seconds=frontier.lease_seconds,
            )
        except Exception as exc:
            if not database_unreachable(exc):
                logger.warning("Could not renew leases (%s)", short_error(exc), exc_info=True)
            else:
                frontier.db_outage.failed(exc)
            return 0
        frontier.db_outage.recovered()
        frontier.stats.inc_value("holocron/frontier/leases_renewed", n)
        if n < len(renewing):
            await self._drop_lost_claims(renewing)
        return n

    async def _drop_lost_claims(self, candidates: set[int]) -> None:
        """Claims in flight whose lease this run no longer holds (it expired while the process
        was stalled, and another worker took the items) are given up: their requests still
        queued are dropped (ClaimCheckMiddleware) and their records are not written.

        Only ``candidates`` (the claims in flight before the lease query) can be lost: a claim
        that commits while the query runs is missing from its answer, yet it is this run's."""
        frontier = self.frontier
        leased = set(await run_in_thread(frontier.store.leased_ids, owner=frontier.owner))
        lost = (candidates & frontier.in_flight) - leased - self.committing
        if not lost:
            return
        frontier.in_flight -= lost
        frontier.stats.inc_value("holocron/frontier/claims_lost", len(lost))
        logger.warning(
            "Lost the claims of %(n)d work items (their lease expired and another worker took "
            "them): their requests are dropped",
            {"n": len(lost)},
        )

    async def save_cursor(self, item: WorkItem, cont: Mapping[str, str] | None) -> bool:
        """Save where a listing stands (its next ``continue``) and renew its lease, in a thread.

        The discoveries buffered so far (the members of the pages before the cursor) are
        written first, so a crash never skips members. False when the claim was lost (the item
        is then no longer this run's).
        """
        frontier = self.frontier
        await frontier.writes.flush_or_wait("members not queued")
        saved: bool = await frontier.writes.call(
            frontier.store.save_cursor,
            item.id,
            None if cont is None else canonical_json(cont),
            owner=frontier.owner,
            lease_seconds=frontier.lease_seconds,
            attempt=item.attempt,
        )
        if saved:
            frontier.stats.inc_value("holocron/frontier/cursors_saved")
        else:
            frontier.stats.inc_value("holocron/frontier/claims_lost")
            frontier.in_flight.discard(item.id)
            logger.warning(
                "Lost the claim of work item %(id)d (%(resource)s); another run has it",
                {"id": item.id, "resource": item.resource_id},
            )
        return saved

    async def release_orphans(self) -> None:
        """Items leased to this run that it does not know of (a claim committed but its answer
        was lost with the connection) go back to the queue."""
        frontier = self.frontier
        async with frontier.writes.lock:
            leased: list[int] = await run_in_thread(frontier.store.leased_ids, owner=frontier.owner)
            known = frontier.in_flight | set(frontier.writes.outcomes)
            orphans = [i for i in leased if i not in known]
            if orphans:
                n = await run_in_thread(
                    frontier.store.release, owner=frontier.owner, work_item_ids=orphans
                )
                frontier.stats.inc_value("holocron/frontier/released_orphans", n)
                logger.info(
                    "Released %(n)d claims whose answer was lost with the database connection",
                    {"n": n},
                )

    async def release_in_flight(self, reason: str) -> None:
        """Give this run's unfinished claims back to the queue (the crawl is closing)."""
        frontier = self.frontier
        released = await run_in_thread(
            frontier.store.release, owner=frontier.owner, work_item_ids=sorted(frontier.in_flight)
        )
        frontier.stats.inc_value("holocron/frontier/released", released)
        logger.info(
            "Released %(n)d unfinished claims back to the queue (%(reason)s)",
            {"n": released, "reason": reason},
        )
        frontier.in_flight.clear()
