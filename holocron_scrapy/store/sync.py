"""The statements of ``recrawl=changed`` by change feeds: a source's sync point, and the items a
batch of changed titles names.

A sync point says where a source's change feeds were read to: the wiki's timestamp from which
they are read next time, and the largest ``rcid`` / ``logid`` already applied. It is written
only after the changes it covers are in the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from holocron_scrapy.store.queue import completed_after
from holocron_scrapy.store.sql import IN_LIST_CHUNK, as_datetime, chunks, utcnow

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection, Engine


@dataclass(frozen=True, slots=True)
class SyncPoint:
    """Where a source's change feeds stand: read them from ``timestamp`` (naive UTC, the
    wiki's clock) on, skipping the entries up to ``rc_id`` / ``log_id`` (``None``: none known)."""

    timestamp: datetime
    rc_id: int | None = None
    log_id: int | None = None


@dataclass(frozen=True, slots=True)
class KnownItem:
    """A work item named by a changed title: what the feed sync decides from."""

    id: int
    dedupe_hash: str
    resource_type: str
    resource_id: str
    status: str
    version: str | None
    depth: int


def _key(table: sa.Table, source_system: str, source_name: str) -> sa.ColumnElement[bool]:
    return sa.and_(table.c.source_system == source_system, table.c.source_name == source_name)


def read_sync_point(
    conn: Connection, table: sa.Table, *, source_system: str, source_name: str
) -> SyncPoint | None:
    row = conn.execute(
        sa.select(table.c.feed_timestamp, table.c.rc_id, table.c.log_id).where(
            _key(table, source_system, source_name)
        )
    ).first()
    if row is None:
        return None
    timestamp = as_datetime(row[0])
    assert timestamp is not None
    return SyncPoint(timestamp, row[1], row[2])


def write_sync_point(
    engine: Engine,
    table: sa.Table,
    point: SyncPoint,
    *,
    source_system: str,
    source_name: str,
    run_id: str,
    only_if_absent: bool = False,
) -> bool:
    """Set the source's sync point (one transaction: update, else insert; a lost race to
    insert is retried as an update). ``only_if_absent``: leave an existing one alone. Return
    whether it was written."""
    values = {
        "feed_timestamp": point.timestamp,
        "rc_id": point.rc_id,
        "log_id": point.log_id,
        "run_id": run_id,
        "updated_at": utcnow(),
    }
    for _ in range(2):
        try:
            with engine.begin() as conn:
                if not only_if_absent:
                    stmt = sa.update(table).where(_key(table, source_system, source_name))
                    if conn.execute(stmt.values(**values)).rowcount:
                        return True
                elif read_sync_point(
                    conn, table, source_system=source_system, source_name=source_name
                ):
                    return False
                conn.execute(
                    sa.insert(table).values(
                        source_system=source_system, source_name=source_name, **values
                    )
                )
                return True
        except sa.exc.IntegrityError:
            if only_if_absent:
                return False
            continue
    raise RuntimeError("could not write the sync point")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Reach:
    """What an archive was expanded with: ``max_depth`` and the discovery switches on."""

    max_depth: int
    expansions: frozenset[str]


def read_reach(
    conn: Connection, table: sa.Table, *, source_system: str, source_name: str
) -> Reach | None:
    row = conn.execute(
        sa.select(table.c.max_depth, table.c.expansions).where(
            _key(table, source_system, source_name)
        )
    ).first()
    if row is None or row[0] is None:
        return None
    return Reach(int(row[0]), frozenset(filter(None, (row[1] or "").split(","))))


def widen(
    engine: Engine,
    tables: tuple[sa.Table, sa.Table],
    reach: Reach,
    *,
    source_system: str,
    source_name: str,
    resource_types: Sequence[str],
) -> int:
    """Record ``reach`` as the source's and, in the same transaction, put back into the queue
    the completed items it expands further than the recorded one did: with more expansions on,
    every item below ``max_depth``; with a larger ``max_depth`` only, the items from the old one
    up (they were leaves). A one-time pass over the source's completed items when its settings
    grow. Return how many were requeued (0 when nothing was recorded before: just recorded)."""
    points, wi = tables
    with engine.begin() as conn:
        before = read_reach(conn, points, source_system=source_system, source_name=source_name)
        conn.execute(
            sa.update(points)
            .where(_key(points, source_system, source_name))
            .values(max_depth=reach.max_depth, expansions=",".join(sorted(reach.expansions)))
        )
        if before is None:
            return 0
        if not reach.expansions <= before.expansions:
            low = 0
        elif reach.max_depth > before.max_depth:
            low = before.max_depth
        else:
            return 0
        stmt = (
            sa.update(wi)
            .where(
                _key(wi, source_system, source_name),
                wi.c.status == "completed",
                wi.c.resource_type.in_(list(resource_types)),
                wi.c.depth >= low,
                wi.c.depth < reach.max_depth,
            )
            .values(
                status="pending",
                attempt=0,
                error_message=None,
                next_retry_at=None,
                lease_owner=None,
                lease_expires_at=None,
                finished_at=None,
                updated_at=utcnow(),
            )
        )
        return int(conn.execute(stmt).rowcount)


def items_by_hashes(conn: Connection, wi: sa.Table, hashes: Sequence[str]) -> list[KnownItem]:
    """The work items with these dedupe hashes (chunked IN lists on the unique index)."""
    columns = (
        wi.c.id,
        wi.c.dedupe_hash,
        wi.c.resource_type,
        wi.c.resource_id,
        wi.c.status,
        wi.c.version,
        wi.c.depth,
    )
    found: list[KnownItem] = []
    for chunk in chunks(sorted(set(hashes)), IN_LIST_CHUNK):
        rows = conn.execute(sa.select(*columns).where(wi.c.dedupe_hash.in_(chunk)))
        found.extend(KnownItem(*row) for row in rows)
    return found


def completed_pages(
    conn: Connection,
    wi: sa.Table,
    *,
    source_system: str,
    source_name: str,
    resource_type: str,
    after_id: int,
    limit: int,
) -> list[tuple[int, str, str | None, datetime | None]]:
    """``(id, resource_id, version, finished_at)`` of up to ``limit`` completed items of the
    type after ``after_id``, by id (the claim index serves the filter; pages of the pass)."""
    rows = completed_after(
        conn, wi, (wi.c.id, wi.c.resource_id, wi.c.version, wi.c.finished_at),
        source_system=source_system, source_name=source_name, resource_type=resource_type,
        after_id=after_id, limit=limit,
    )  # fmt: skip
    return [
        (int(row.id), row.resource_id, row.version, as_datetime(row.finished_at)) for row in rows
    ]


def first_run_started(
    conn: Connection, runs: sa.Table, *, source_system: str, source_name: str
) -> datetime | None:
    """When the source's first run started (``None``: it has none)."""
    stmt = sa.select(sa.func.min(runs.c.started_at)).where(_key(runs, source_system, source_name))
    return as_datetime(conn.execute(stmt).scalar())
