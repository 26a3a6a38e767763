"""What a worker with nothing to claim asks the queue (:meth:`StateStore.outlook`): retries
scheduled for later, other owners' live leases, and whether an item is claimable although the
claim took none (another worker's claim held it locked). Each is an index range, never the
frontier. Runs on a connection whose transaction the store owns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from holocron_scrapy.model import Status
from holocron_scrapy.store.sql import as_datetime, utcnow

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection


@dataclass(frozen=True, slots=True)
class Outlook:
    """See :meth:`StateStore.outlook` (times are naive UTC)."""

    scheduled: int  # pending items whose next_retry_at is still to come
    next_retry_at: datetime | None
    in_flight_elsewhere: int  # in_progress under another owner's unexpired lease
    first_lease_expiry: datetime | None
    # Some item is claimable now (ready, a retry due, a lease expired) although the claim just
    # took none: another worker's claim holds it locked (SKIP LOCKED / READPAST passed it by).
    claimable: bool = False


def outlook(
    conn: Connection, wi: sa.Table, *, source_system: str, source_name: str, owner: str
) -> Outlook:
    """Retries scheduled for later (the range of ``ix_work_items_retry_at``), and items in flight
    under other owners' live leases (of ``ix_work_items_lease_expiry``): two index ranges that
    hold only such rows, never the frontier."""
    now = utcnow()
    source = [wi.c.source_system == source_system, wi.c.source_name == source_name]
    scheduled = sa.select(sa.func.count(), sa.func.min(wi.c.next_retry_at)).where(
        *source,
        wi.c.status == Status.PENDING.value,
        wi.c.next_retry_at.is_not(None),
        wi.c.next_retry_at > now,
    )
    elsewhere = sa.select(sa.func.count(), sa.func.min(wi.c.lease_expires_at)).where(
        *source,
        wi.c.status == Status.IN_PROGRESS.value,
        wi.c.lease_expires_at.is_not(None),
        wi.c.lease_expires_at >= now,
        sa.or_(wi.c.lease_owner.is_(None), wi.c.lease_owner != owner),
    )
    n_scheduled, first_retry = conn.execute(scheduled).one()
    n_elsewhere, first_expiry = conn.execute(elsewhere).one()
    return Outlook(
        scheduled=int(n_scheduled or 0),
        next_retry_at=as_datetime(first_retry),
        in_flight_elsewhere=int(n_elsewhere or 0),
        first_lease_expiry=as_datetime(first_expiry),
        claimable=_claimable(conn, wi, source, now),
    )


def _claimable(
    conn: Connection, wi: sa.Table, source: Sequence[sa.ColumnElement[bool]], now: datetime
) -> bool:
    """Whether one item of the source is claimable now: the first entry of each of the three
    index ranges the claim and its sweep read (``ix_work_items_ready``, the due part of
    ``ix_work_items_retry_at``, the expired part of ``ix_work_items_lease_expiry``)."""
    ranges = [
        [wi.c.status == Status.PENDING.value, wi.c.next_retry_at.is_(None)],
        [
            wi.c.status == Status.PENDING.value,
            wi.c.next_retry_at.is_not(None),
            wi.c.next_retry_at <= now,
        ],
        [
            wi.c.status == Status.IN_PROGRESS.value,
            wi.c.lease_expires_at.is_not(None),
            wi.c.lease_expires_at < now,
        ],
    ]
    # One statement: the first id of each range, read in its index's order (a scalar subquery
    # keeps its ORDER BY and LIMIT, which an EXISTS would drop, letting a planner prefer a scan
    # that may find its first match late); COALESCE stops at the first range that has one.
    orders = [(wi.c.priority.desc(), wi.c.id), (wi.c.next_retry_at,), (wi.c.lease_expires_at,)]
    firsts = [
        sa.select(wi.c.id).where(*source, *where).order_by(*order).limit(1).scalar_subquery()
        for where, order in zip(ranges, orders, strict=True)
    ]
    return conn.execute(sa.select(sa.func.coalesce(*firsts))).scalar() is not None
