"""The leases on the frontier's claims: renewal, heartbeat, lost claims, dead runs, orphans,
release.

A claim is a lease (owner ``worker_id:pid:run_id``) of one attempt at an item, which the crawl
renews every third of its length while the claim is in flight; the same renewal writes the
run's heartbeat. A claim whose lease another worker took is given up; the claims of dead runs
(see :func:`dead_reason`), and claims committed while their answer was lost with the
connection, go back to the queue; unfinished claims are released when the crawl closes.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from scrapy.utils.asyncio import run_in_thread

from holocron_scrapy.model import canonical_json
from holocron_scrapy.outage import database_unreachable, short_error
from holocron_scrapy.store.sql import utcnow

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from holocron_scrapy.frontier.extension import Frontier, FrontierSpider
    from holocron_scrapy.model import WorkItem
    from holocron_scrapy.store.runs import RunState

logger = logging.getLogger(__name__)

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_RUNNING = "running"


def pid_namespace() -> str | None:
    """Whose pids this process sees: ``"<boot_id>/pid:[<inode>]"``, the kernel's boot and this
    process's pid namespace (Linux; None elsewhere). Containers on one host share the boot but
    not the pid namespace, even when they share a host name; pids mean something only within
    one namespace of one boot."""
    try:
        boot = _BOOT_ID.read_text(encoding="ascii").strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():  # this process runs another run: that run's process is gone
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_reason(
    run: RunState,
    *,
    now: datetime,
    dead_after: float,
    namespace: str | None,
    alive: Callable[[int], bool] = _pid_alive,
) -> str | None:
    """Why ``run`` is dead (its claims may be released at once), or None: it may be alive.

    Dead: it ended (its leftover claims are nobody's); or it wrote no heartbeat for
    ``dead_after`` seconds; or its process, in this very pid namespace of this boot
    (``namespace``, see :func:`pid_namespace`), is gone. A host name or a pid alone proves
    nothing: a run of another container sharing the host name lives in another namespace, and
    is judged by its heartbeat only.
    """
    if run.status != _RUNNING:
        return f"it ended ({run.status})"
    silent = (now - run.last_seen).total_seconds()
    if silent > dead_after:
        return f"no heartbeat for {silent:.0f} s"
    if namespace is not None and run.pid_namespace == namespace and not alive(run.pid):
        return f"its process {run.pid} on this machine has stopped"
    return None


class Leases:
    """The leases of ``frontier``'s claims."""

    def __init__(self, frontier: Frontier) -> None:
        self.frontier = frontier
        self.namespace = pid_namespace()
        self.renewed_at = time.monotonic()
        self.committing: set[int] = set()  # work items whose records are being committed

    def renewal_due(self) -> bool:
        """A third of the lease has passed since the last renewal."""
        return time.monotonic() - self.renewed_at >= self.frontier.lease_seconds / 3

    async def release_dead_owners(self, spider: FrontierSpider) -> None:
        """Claims of dead runs (see :func:`dead_reason`) go back to the queue now, not when
        their lease expires; a released claim does not count as an attempt. A lease owner is
        ``worker_id:pid:run_id``; owners without a ``runs`` row are left to their leases."""
        frontier = self.frontier
        owners = await run_in_thread(
            frontier.store.lease_owners,
            source_system=spider.source_system,
            source_name=spider.source_name,
        )
        by_run = {o.rpartition(":")[2]: o for o in owners if o != frontier.owner}
        runs: list[RunState] = await run_in_thread(frontier.store.run_states, sorted(by_run))
        now = utcnow()
        for run in runs:
            why = dead_reason(
                run, now=now, dead_after=frontier.dead_after_seconds, namespace=self.namespace
            )
            if why is None:
                continue
            owner = by_run[run.run_id]
            n = await run_in_thread(
                frontier.store.release,
                owner=owner,
                source=(spider.source_system, spider.source_name),
            )
            frontier.stats.inc_value("holocron/frontier/released_dead", n)
            logger.info(
                "Released %(n)d claims of the dead run %(run)s (%(owner)s): %(why)s",
                {"n": n, "run": run.run_id, "owner": owner, "why": why},
            )

    async def renew(self) -> int:
        """Extend the leases of this run's claims in flight and write its heartbeat (every
        third of the lease), so that a long wait (Retry-After, a slow listing, a database
        outage shorter than the lease) does not hand live work to another worker, and other
        runs see this one alive."""
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
                run_id=frontier.run_id,
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
