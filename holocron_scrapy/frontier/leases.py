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

    from scrapy.statscollectors import StatsCollector

    from holocron_scrapy.frontier.claims import Claims
    from holocron_scrapy.frontier.spider import FrontierSpider
    from holocron_scrapy.frontier.writes import WriteBuffer
    from holocron_scrapy.model import WorkItem
    from holocron_scrapy.outage import Outage
    from holocron_scrapy.store.runs import RunState
    from holocron_scrapy.store.state_store import StateStore

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
    """The leases of the ``claims`` in ``store``: ``lease_seconds`` long; a run silent for
    ``dead_after_seconds`` is dead. Writes that must precede a cursor go through ``writes``."""

    def __init__(
        self,
        store: StateStore,
        stats: StatsCollector,
        claims: Claims,
        writes: WriteBuffer,
        outage: Outage,
        *,
        lease_seconds: float,
        dead_after_seconds: float,
    ) -> None:
        self.store = store
        self.stats = stats
        self.claims = claims
        self.writes = writes
        self.outage = outage
        self.lease_seconds = lease_seconds
        self.dead_after_seconds = dead_after_seconds
        self.namespace = pid_namespace()
        self.renewed_at = time.monotonic()
        # A claim failed in transit (its answer lost with the connection): it may have leased
        # items this run does not know of; they are released before the next claim.
        self.orphans_possible = False

    def renewal_due(self) -> bool:
        """A third of the lease has passed since the last renewal."""
        return time.monotonic() - self.renewed_at >= self.lease_seconds / 3

    async def release_dead_owners(self, spider: FrontierSpider) -> None:
        """Claims of dead runs (see :func:`dead_reason`) go back to the queue now, not when
        their lease expires; a released claim does not count as an attempt. A lease owner is
        ``worker_id:pid:run_id``; owners without a ``runs`` row are left to their leases."""
        owners = await run_in_thread(
            self.store.lease_owners,
            source_system=spider.source_system,
            source_name=spider.source_name,
        )
        by_run = {o.rpartition(":")[2]: o for o in owners if o != self.claims.owner}
        runs: list[RunState] = await run_in_thread(self.store.run_states, sorted(by_run))
        now = utcnow()
        for run in runs:
            why = dead_reason(
                run, now=now, dead_after=self.dead_after_seconds, namespace=self.namespace
            )
            if why is None:
                continue
            owner = by_run[run.run_id]
            n = await run_in_thread(
                self.store.release,
                owner=owner,
                source=(spider.source_system, spider.source_name),
            )
            self.stats.inc_value("holocron/frontier/released_dead", n)
            logger.info(
                "Released %(n)d claims of the dead run %(run)s (%(owner)s): %(why)s",
                {"n": n, "run": run.run_id, "owner": owner, "why": why},
            )

    async def renew(self) -> int:
        """Extend the leases of this run's claims in flight and write its heartbeat (every
        third of the lease), so that a long wait (Retry-After, a slow listing, a database
        outage shorter than the lease) does not hand live work to another worker, and other
        runs see this one alive."""
        self.renewed_at = time.monotonic()
        # Claims made while this runs are not part of it (they were not renewed, nor checked).
        renewing = set(self.claims.in_flight)
        attempts = self.claims.attempts
        held = {i: attempts[i] for i in renewing if i in attempts}
        try:
            n: int = await run_in_thread(
                self.store.renew_leases,
                owner=self.claims.owner,
                claims=held,
                lease_seconds=self.lease_seconds,
                run_id=self.claims.run_id,
            )
        except Exception as exc:
            if not database_unreachable(exc):
                logger.warning("Could not renew leases (%s)", short_error(exc), exc_info=True)
            else:
                self.outage.failed(exc)
            return 0
        self.outage.recovered()
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
        leased = set(await run_in_thread(self.store.leased_ids, owner=self.claims.owner))
        lost = (candidates & self.claims.in_flight) - leased - self.claims.committing
        if not lost:
            return
        self.claims.drop(lost)
        self.stats.inc_value("holocron/frontier/claims_lost", len(lost))
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
        await self.writes.flush_or_wait("members not queued")
        saved: bool = await self.writes.call(
            self.store.save_cursor,
            item.id,
            None if cont is None else canonical_json(cont),
            owner=self.claims.owner,
            lease_seconds=self.lease_seconds,
            attempt=item.attempt,
        )
        if saved:
            self.stats.inc_value("holocron/frontier/cursors_saved")
        else:
            self.stats.inc_value("holocron/frontier/claims_lost")
            self.claims.drop([item.id])
            logger.warning(
                "Lost the claim of work item %(id)d (%(resource)s); another run has it",
                {"id": item.id, "resource": item.resource_id},
            )
        return saved

    async def release_orphans(self) -> None:
        """Items leased to this run that it does not know of (a claim committed but its answer
        was lost with the connection) go back to the queue."""
        owner = self.claims.owner
        async with self.writes.lock:
            leased: list[int] = await run_in_thread(self.store.leased_ids, owner=owner)
            known = self.claims.in_flight | set(self.writes.outcomes)
            orphans = [i for i in leased if i not in known]
            if orphans:
                n = await run_in_thread(self.store.release, owner=owner, work_item_ids=orphans)
                self.stats.inc_value("holocron/frontier/released_orphans", n)
                logger.info(
                    "Released %(n)d claims whose answer was lost with the database connection",
                    {"n": n},
                )

    async def release_in_flight(self, reason: str) -> None:
        """Give this run's unfinished claims back to the queue (the crawl is closing)."""
        in_flight = self.claims.in_flight
        released = await run_in_thread(
            self.store.release, owner=self.claims.owner, work_item_ids=sorted(in_flight)
        )
        self.stats.inc_value("holocron/frontier/released", released)
        logger.info(
            "Released %(n)d unfinished claims back to the queue (%(reason)s)",
            {"n": released, "reason": reason},
        )
        in_flight.clear()
