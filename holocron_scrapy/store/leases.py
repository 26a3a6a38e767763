"""The statements of claims and their leases.

Claiming a leased batch (one atomic ``UPDATE ... RETURNING`` that skips rows locked by other
claimers), renewing, checking and releasing leases, saving a listing's cursor under its lease,
and the outlook of a source when nothing is claimable. Each function runs on a connection whose
transaction :class:`~holocron_scrapy.store.state_store.StateStore` owns.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from holocron_scrapy.model import Status, WorkItem
from holocron_scrapy.store.sql import (
    IN_LIST_CHUNK,
    chunks,
    ids_of,
    locked_ids,
    update_in,
    utcnow,
)
from holocron_scrapy.store.sweep import SKIP_LOCKED_HINT, sweep

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from sqlalchemy.engine import Connection

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """The items a claim took (in the claim's order), the ``(priority, id)`` of the last item
    it took (where the next claim resumes: :mod:`holocron_scrapy.store.resume`), and whether it
    read from the head of the range (after the sweep)."""

    items: list[WorkItem]
    point: tuple[int, int] | None
    head: bool


def claim(
    conn: Connection,
    wi: sa.Table,
    *,
    source_system: str,
    source_name: str,
    owner: str,
    run_id: str,
    limit: int,
    lease_seconds: float,
    after: tuple[int, int] | None = None,
) -> Claim:
    """The claim on ``conn`` (the caller owns the transaction): the sweep
    (:mod:`holocron_scrapy.store.sweep`), then one or two ``UPDATE ... WHERE
    id IN (SELECT id ... ORDER BY priority DESC, id LIMIT n FOR UPDATE SKIP LOCKED) RETURNING
    ...`` whose subqueries read the rows they take from the index ``ix_work_items_ready`` and
    nothing else (SQL Server: ``TOP (n) ... WITH (UPDLOCK, READPAST, ROWLOCK,
    READCOMMITTEDLOCK)``, ``OUTPUT inserted.*``).

    Given ``after`` (the ``(priority, id)`` where the source's last claim ended), it reads on
    from there: the rest of that priority by id, then the lower priorities. If that comes up
    short, or the sweep brought items back, or without ``after``, it reads from the head of the
    range (for the rest)."""
    now = utcnow()
    if conn.dialect.name == "postgresql":
        # No sort: unanalyzed (seeded in bulk), the planner would sort every pending row.
        conn.exec_driver_sql("SET LOCAL enable_sort = off")
    swept, due = sweep(conn, wi, source_system=source_system, source_name=source_name, now=now)
    if swept or due:
        logger.debug(
            "%(expired)d expired leases and %(due)d retries due made claimable",
            {"expired": swept, "due": due},
        )
        after = None  # they may lie before the point
    take = _Take(conn, wi, source_system, source_name, owner, run_id, lease_seconds, now)
    taken: list[WorkItem] = []
    if after is not None:
        priority, last_id = after
        for onward in (
            sa.and_(wi.c.priority == priority, wi.c.id > last_id),
            wi.c.priority < priority,
        ):
            if len(taken) < limit:
                taken += take(limit - len(taken), onward)
        if len(taken) == limit:
            return _claimed(taken, taken, owner, head=False)
    from_head = take(limit - len(taken), None)
    return _claimed(taken + from_head, from_head or taken, owner, head=True)


def _order(item: WorkItem) -> tuple[int, int]:
    return -item.priority, item.id


def _claimed(items: list[WorkItem], last_read: list[WorkItem], owner: str, *, head: bool) -> Claim:
    """The claim of ``items``, resuming after the last of ``last_read`` (the last range read)."""
    items.sort(key=_order)  # RETURNING order is arbitrary
    end = max(last_read, key=_order, default=None)
    if items:
        first = items[0]
        logger.debug(
            "%(owner)s claimed %(n)d work items of %(system)s:%(name)s",
            {
                "owner": owner,
                "n": len(items),
                "system": first.source_system,
                "name": first.source_name,
            },
        )
    return Claim(items, None if end is None else (end.priority, end.id), head)


@dataclass(frozen=True)
class _Take:
    """One claim's ``UPDATE`` of the next ready rows of its source (those after a bound)."""

    conn: Connection
    wi: sa.Table
    source_system: str
    source_name: str
    owner: str
    run_id: str
    lease_seconds: float
    now: datetime

    def __call__(self, limit: int, onward: sa.ColumnElement[bool] | None) -> list[WorkItem]:
        wi = self.wi
        where = [
            wi.c.source_system == self.source_system,
            wi.c.source_name == self.source_name,
            wi.c.status == Status.PENDING.value,
            wi.c.next_retry_at.is_(None),  # ix_work_items_ready's condition
        ]
        if onward is not None:
            where.append(onward)
        candidates = (
            sa.select(wi.c.id)
            .where(*where)
            .order_by(wi.c.priority.desc(), wi.c.id)  # ix_work_items_ready's order
            .limit(limit)
            .with_for_update(skip_locked=True)
            .with_hint(wi, SKIP_LOCKED_HINT, dialect_name="mssql")
        )
        stmt = (
            sa.update(wi)
            .where(ids_of(self.conn.dialect.name, wi.c.id, candidates))
            .values(
                status=Status.IN_PROGRESS.value,
                lease_owner=self.owner,
                lease_expires_at=self.now + timedelta(seconds=self.lease_seconds),
                claimed_at=self.now,
                attempt=wi.c.attempt + 1,
                run_id=self.run_id,
                updated_at=self.now,
            )
            .returning(
                wi.c.id,
                wi.c.source_system,
                wi.c.source_name,
                wi.c.resource_type,
                wi.c.resource_id,
                wi.c.depth,
                wi.c.priority,
                wi.c.attempt,
                wi.c.content_hash,
                wi.c.version,
                wi.c.cursor,
                wi.c.hops,
            )
        )
        # Rows unpacked by position (RETURNING lists WorkItem's fields in order): a Row's
        # attribute access by name costs more than the rest of the item's claim on SQLite.
        return [
            WorkItem(int(i), system, name, kind, rid, depth, prio, attempt, h, ver, cur, hops or 0)
            for i, system, name, kind, rid, depth, prio, attempt, h, ver, cur, hops in (
                self.conn.execute(stmt)
            )
        ]


def renew(
    conn: Connection,
    wi: sa.Table,
    *,
    owner: str,
    claims: Mapping[int, int],
    now: datetime,
    lease_seconds: float,
) -> int:
    """Extend ``owner``'s leases on the ``in_progress`` items of ``claims`` (id -> attempt),
    each only under the claim named by its attempt: one statement per attempt number (a few)
    and chunk of ids, taken in id order."""
    by_attempt: dict[int, list[int]] = defaultdict(list)
    for work_item_id, attempt in sorted(claims.items()):
        by_attempt[attempt].append(work_item_id)
    if len(by_attempt) > 1:  # lock them all in id order first, not attempt by attempt
        leased = sa.and_(wi.c.status == Status.IN_PROGRESS.value, wi.c.lease_owner == owner)
        for chunk in chunks(sorted(claims), IN_LIST_CHUNK):
            conn.execute(locked_ids(wi, sa.and_(wi.c.id.in_(chunk), leased)))
    renewed = 0
    for attempt, ids in sorted(by_attempt.items()):
        stmt = (
            sa.update(wi)
            .where(
                wi.c.status == Status.IN_PROGRESS.value,
                wi.c.lease_owner == owner,
                wi.c.attempt == attempt,
            )
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
        )
        renewed += update_in(conn, stmt, wi.c.id, ids)
    return renewed


def leased_ids(conn: Connection, wi: sa.Table, *, owner: str) -> list[int]:
    """The ids of the items ``in_progress`` under ``owner``'s lease (``ix_work_items_lease_owner``
    in its order)."""
    stmt = sa.select(wi.c.id).where(*_owned(wi, owner)).order_by(wi.c.id)
    return [int(i) for i in conn.scalars(stmt)]


def _owned(wi: sa.Table, owner: str) -> list[sa.ColumnElement[bool]]:
    """``owner``'s leases: the range of ``ix_work_items_lease_owner`` (whose condition, stated,
    lets SQL Server's filtered index match a parameterized query)."""
    return [
        wi.c.lease_owner.is_not(None),
        wi.c.lease_owner == owner,
        wi.c.status == Status.IN_PROGRESS.value,
    ]


def save_cursor(
    conn: Connection,
    wi: sa.Table,
    work_item_id: int,
    cursor: str | None,
    *,
    owner: str,
    lease_seconds: float,
    attempt: int | None,
) -> bool:
    """Store a listing's cursor and renew its lease, if it is still ``owner``'s (under the
    claim ``attempt`` when given)."""
    now = utcnow()
    live = [
        wi.c.id == work_item_id,
        wi.c.status == Status.IN_PROGRESS.value,
        wi.c.lease_owner == owner,
    ]
    if attempt is not None:
        live.append(wi.c.attempt == attempt)
    stmt = (
        sa.update(wi)
        .where(*live)
        .values(
            cursor=cursor,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            updated_at=now,
        )
    )
    return bool(conn.execute(stmt).rowcount)


def release(
    conn: Connection,
    wi: sa.Table,
    *,
    owner: str,
    work_item_ids: Sequence[int] | None,
    source: tuple[str, str] | None = None,
) -> int:
    """Return ``owner``'s leased items (or only ``work_item_ids``; of ``source`` only, when
    given) to ``pending``."""
    where = _owned(wi, owner)
    if source is not None:
        where += [wi.c.source_system == source[0], wi.c.source_name == source[1]]
    stmt = (
        sa.update(wi)
        .where(*where)
        .values(
            status=Status.PENDING.value,
            attempt=sa.case((wi.c.attempt > 0, wi.c.attempt - 1), else_=0),
            lease_owner=None,
            lease_expires_at=None,
            updated_at=utcnow(),
        )
    )
    if work_item_ids is None:  # the rows locked in id order, as everywhere (store_sql)
        return conn.execute(stmt.where(wi.c.id.in_(locked_ids(wi, sa.and_(*where))))).rowcount
    ids = sorted(set(work_item_ids))
    return update_in(conn, stmt, wi.c.id, ids)


def lease_owners(
    conn: Connection, wi: sa.Table, *, source_system: str, source_name: str
) -> list[str]:
    """The owners holding leases on the source's ``in_progress`` items."""
    stmt = (
        sa.select(wi.c.lease_owner)
        .where(
            wi.c.source_system == source_system,
            wi.c.source_name == source_name,
            wi.c.status == Status.IN_PROGRESS.value,
            wi.c.lease_owner.is_not(None),
        )
        .distinct()
    )
    return sorted(str(owner) for owner in conn.scalars(stmt))
