"""The :class:`~holocron_scrapy.store.state_store.StateStore` methods of claims and leases:
claiming (after the sweep of expired leases and due retries), renewing, releasing, a listing's
cursor under its lease, and what a source may still bring (the outlook)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from holocron_scrapy.store import leases as store_leases
from holocron_scrapy.store import outlook as store_outlook
from holocron_scrapy.store import runs as store_runs
from holocron_scrapy.store.base import StoreBase
from holocron_scrapy.store.retry import retry_conflicts
from holocron_scrapy.store.sql import utcnow

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from holocron_scrapy.model import (
        WorkItem,
    )
    from holocron_scrapy.store.outlook import Outlook


class ClaimMethods(StoreBase):
    """Claims and their leases."""

    @retry_conflicts
    def claim(
        self,
        *,
        source_system: str,
        source_name: str,
        owner: str,
        run_id: str,
        limit: int,
        lease_seconds: float,
    ) -> list[WorkItem]:
        """Lease up to ``limit`` due items of the source to ``owner`` (highest priority first).

        Due: ``pending`` (and past ``next_retry_at``), or ``in_progress`` with an expired lease.
        One transaction of ``UPDATE ... RETURNING``; concurrent claimers skip each other's
        locked rows. A claim reads on from where the source's last one ended
        (:mod:`holocron_scrapy.store.resume`).
        """
        if limit <= 0:
            return []
        source = (source_system, source_name)
        resume = self.resume.start(source)
        with self.engine.begin() as conn:
            claimed = store_leases.claim(
                conn,
                self.tables.work_items,
                source_system=source_system,
                source_name=source_name,
                owner=owner,
                run_id=run_id,
                limit=limit,
                lease_seconds=lease_seconds,
                after=resume.after,
            )
        self.resume.claimed(source, resume, claimed.point, head=claimed.head)
        return claimed.items

    @retry_conflicts
    def renew_leases(
        self,
        *,
        owner: str,
        claims: Mapping[int, int],
        lease_seconds: float,
        run_id: str | None = None,
    ) -> int:
        """Extend ``owner``'s leases on these claims (work item id -> the claim's attempt;
        items still ``in_progress`` under that very claim) by ``lease_seconds`` from now: a live
        crawl keeps its long-running claims. Given a ``run_id``, the run's heartbeat
        (``runs.heartbeat_at``) is written in the same transaction, claims or none. Returns how
        many leases were renewed."""
        now = utcnow()
        if not claims and run_id is None:
            return 0
        with self.engine.begin() as conn:
            if run_id is not None:
                store_runs.heartbeat(conn, self.tables.runs, run_id, now)
            return store_leases.renew(
                conn,
                self.tables.work_items,
                owner=owner,
                claims=claims,
                now=now,
                lease_seconds=lease_seconds,
            )

    @retry_conflicts
    def leased_ids(self, *, owner: str) -> list[int]:
        """The ids of the items ``in_progress`` under ``owner``'s lease."""
        with self.engine.connect() as conn:
            return store_leases.leased_ids(conn, self.tables.work_items, owner=owner)

    @retry_conflicts
    def outlook(self, *, source_system: str, source_name: str, owner: str) -> Outlook:
        """What may still come of a source when nothing is claimable now: failures scheduled
        for a later attempt, and items in flight under other owners' live leases."""
        with self.engine.connect() as conn:
            return store_outlook.outlook(
                conn,
                self.tables.work_items,
                source_system=source_system,
                source_name=source_name,
                owner=owner,
            )

    @retry_conflicts
    def save_cursor(
        self,
        work_item_id: int,
        cursor: str | None,
        *,
        owner: str,
        lease_seconds: float,
        attempt: int | None = None,
    ) -> bool:
        """Store a listing's continuation (``work_items.cursor``) and renew its lease.

        Only while the item is ``in_progress`` and leased to ``owner`` (under the claim
        ``attempt``, when given); returns whether it was (False: the claim was lost, e.g. its
        lease expired and another worker took it).
        """
        with self.engine.begin() as conn:
            return store_leases.save_cursor(
                conn,
                self.tables.work_items,
                work_item_id,
                cursor,
                owner=owner,
                lease_seconds=lease_seconds,
                attempt=attempt,
            )

    @retry_conflicts
    def release(
        self,
        *,
        owner: str,
        work_item_ids: Sequence[int] | None = None,
        source: tuple[str, str] | None = None,
    ) -> int:
        """Return ``owner``'s leased items (or only ``work_item_ids``) to ``pending``; given a
        ``source`` (system, name), only that source's (found by the claim index, not a scan).

        A released claim does not count as an attempt. Returns how many items were released.
        """
        with self.engine.begin() as conn:
            released = store_leases.release(
                conn,
                self.tables.work_items,
                owner=owner,
                work_item_ids=work_item_ids,
                source=source,
            )
        return self.reopened(released)

    @retry_conflicts
    def lease_owners(self, *, source_system: str, source_name: str) -> list[str]:
        """The owners holding leases on the source's ``in_progress`` items."""
        with self.engine.connect() as conn:
            return store_leases.lease_owners(
                conn, self.tables.work_items, source_system=source_system, source_name=source_name
            )
