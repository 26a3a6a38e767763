"""The sweep that keeps the claim a pending-only index range.

The claim (:func:`holocron_scrapy.store.leases.claim`) reads one range of the index
``ix_work_items_ready``: a source's ``pending`` items without a ``next_retry_at``, by priority
then id. Two kinds of items become claimable in time and are brought into that range here,
before each claim, in its transaction:

* ``in_progress`` items whose lease expired go back to ``pending`` (their ``attempt`` kept: the
  lost claim counted, and the next claim's attempt fences the late outcome of the lost one);
  found by the partial index ``ix_work_items_lease_expiry`` (only leased rows);
* ``pending`` items waiting for a retry whose ``next_retry_at`` has come lose it; found by the
  partial index ``ix_work_items_retry_at`` (only rows scheduled for a retry).

Each statement reads only the rows it changes (an empty index range when nothing expired or
came due: a few page reads, whatever the frontier's size), at most :data:`SWEEP_BATCH` a claim,
in its index's order, skipping rows other transactions hold (``SKIP LOCKED``; SQL Server:
``READPAST``), so it never waits for a lock and cannot deadlock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from holocron_scrapy.model import Status
from holocron_scrapy.store.sql import ids_of

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.engine import Connection

SWEEP_BATCH = 1000
# Row locks on the rows read, skipping those another transaction holds (SQL Server's READPAST
# needs a locking read: READCOMMITTEDLOCK under read committed snapshot).
SKIP_LOCKED_HINT = "WITH (UPDLOCK, READPAST, ROWLOCK, READCOMMITTEDLOCK)"


def _source(wi: sa.Table, source_system: str, source_name: str) -> list[sa.ColumnElement[bool]]:
    return [wi.c.source_system == source_system, wi.c.source_name == source_name]


def _come(
    wi: sa.Table,
    column: sa.Column[Any],
    status: Status,
    *,
    source_system: str,
    source_name: str,
    now: datetime,
    inclusive: bool,
) -> sa.Select[Any]:
    """Up to :data:`SWEEP_BATCH` ids of the source's ``status`` items whose ``column`` time has
    come, locked, in the order of the partial index on ``column`` (``IS NOT NULL``)."""
    return (
        sa.select(wi.c.id)
        .where(
            *_source(wi, source_system, source_name),
            wi.c.status == status.value,
            column.is_not(None),  # the partial index's condition
            column <= now if inclusive else column < now,
        )
        .order_by(column)
        .limit(SWEEP_BATCH)
        .with_for_update(skip_locked=True)
        .with_hint(wi, SKIP_LOCKED_HINT, dialect_name="mssql")
    )


def sweep(
    conn: Connection, wi: sa.Table, *, source_system: str, source_name: str, now: datetime
) -> tuple[int, int]:
    """Expired leases back to ``pending``, due retries made claimable; return how many of
    each (see the module documentation)."""
    dialect = conn.dialect.name
    expired, due = (
        _come(
            wi,
            column,
            status,
            source_system=source_system,
            source_name=source_name,
            now=now,
            inclusive=inclusive,
        )
        for column, status, inclusive in (
            (wi.c.lease_expires_at, Status.IN_PROGRESS, False),
            (wi.c.next_retry_at, Status.PENDING, True),
        )
    )
    back = {"status": Status.PENDING.value, "lease_owner": None, "lease_expires_at": None}
    changed = [
        conn.execute(
            sa.update(wi).where(ids_of(dialect, wi.c.id, ids)).values(**values, updated_at=now)
        ).rowcount
        for ids, values in ((expired, back), (due, {"next_retry_at": None}))
    ]
    return int(changed[0]), int(changed[1])
