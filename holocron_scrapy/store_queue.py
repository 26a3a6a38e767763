"""The statements by which work enters and re-enters the queue.

Inserting discovered items if new (``INSERT ... ON CONFLICT DO NOTHING``, or ``INSERT ...
SELECT ... WHERE NOT EXISTS`` for SQL Server), giving known items reached closer their smaller
depth, putting finished items back to ``pending``, and paging through completed items. Each
function runs on a connection whose transaction :class:`~holocron_scrapy.store.StateStore` owns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from holocron_scrapy.model import NewWorkItem, Status
from holocron_scrapy.schema import HASH_HEX
from holocron_scrapy.store_sql import (
    InsertStyle,
    dedupe_hash,
    dialect_insert,
    execute_counting,
    update_in,
    utcnow,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection

REOPENABLE = (Status.COMPLETED.value, Status.SKIPPED.value)


def _collapse(items: Sequence[NewWorkItem]) -> list[tuple[str, NewWorkItem]]:
    """One item per dedupe key (the smallest depth; the first on ties), sorted by hash.

    Sorting gives concurrent writers one lock order, which avoids deadlocks between batches.
    """
    best: dict[str, NewWorkItem] = {}
    for item in items:
        key = dedupe_hash(item.dedupe_key)
        kept = best.get(key)
        if kept is None or item.depth < kept.depth:
            best[key] = item
    return sorted(best.items())


def new_rows(items: Sequence[NewWorkItem], now: datetime) -> list[dict[str, Any]]:
    """The ``work_items`` rows of new items, one per dedupe key (see :func:`_collapse`)."""
    return [
        {
            "dedupe_hash": key,
            "dedupe_key": item.dedupe_key,
            "source_system": item.source_system,
            "source_name": item.source_name,
            "resource_type": item.resource_type,
            "resource_id": item.resource_id,
            "status": Status.PENDING.value,
            "priority": item.priority,
            "depth": item.depth,
            "attempt": 0,
            "run_id": item.run_id,
            "discovered_from": item.discovered_from,
            "hops": item.hops or None,
            "created_at": now,
            "updated_at": now,
        }
        for key, item in _collapse(items)
    ]


def insert_new(
    conn: Connection, wi: sa.Table, rows: list[dict[str, Any]], insert_style: InsertStyle
) -> set[str]:
    """Insert the rows whose dedupe hash is new; return the hashes inserted."""
    if insert_style == "on_conflict":
        return _insert_on_conflict(conn, wi, rows)
    return _insert_not_exists(conn, wi, rows)


def _insert_on_conflict(conn: Connection, wi: sa.Table, rows: list[dict[str, Any]]) -> set[str]:
    """``INSERT ... ON CONFLICT (dedupe_hash) DO NOTHING RETURNING dedupe_hash``."""
    stmt = (
        dialect_insert(conn.dialect.name, wi)
        .on_conflict_do_nothing(index_elements=[wi.c.dedupe_hash])
        .returning(wi.c.dedupe_hash)
    )
    return set(conn.execute(stmt, rows).scalars())


def _insert_not_exists(conn: Connection, wi: sa.Table, rows: list[dict[str, Any]]) -> set[str]:
    """``INSERT ... SELECT :values WHERE NOT EXISTS (... WITH (UPDLOCK, HOLDLOCK) ...)``.

    The lock hints (SQL Server only) hold the key range until commit, so a concurrent
    insert of the same key waits instead of failing on the unique constraint. Runs one
    statement per row: pyodbc reports no per-row counts for executemany.
    """
    existing = wi.alias("existing")
    names = list(rows[0])
    values = [
        # NULL-able values get an explicit type: SQL Server cannot infer a bare NULL's.
        sa.cast(sa.bindparam(f"b_{name}"), wi.c[name].type)
        if wi.c[name].nullable
        else sa.bindparam(f"b_{name}", type_=wi.c[name].type)
        for name in names
    ]
    exists: sa.Select[Any] = (
        sa.select(sa.literal_column("1"))
        .select_from(existing)
        .where(existing.c.dedupe_hash == sa.bindparam("b_dedupe_hash", type_=HASH_HEX))
        .with_hint(existing, "WITH (UPDLOCK, HOLDLOCK)", dialect_name="mssql")
    )
    stmt = sa.insert(wi).from_select(names, sa.select(*values).where(~sa.exists(exists)))
    inserted: set[str] = set()
    for row in rows:
        if conn.execute(stmt, {f"b_{name}": value for name, value in row.items()}).rowcount:
            inserted.add(row["dedupe_hash"])
    return inserted


def improve_depth(conn: Connection, wi: sa.Table, rows: list[dict[str, Any]], now: datetime) -> int:
    """Known items now reached at a smaller depth: take the new depth; reopen finished ones."""
    if not rows:
        return 0
    # Not in_(): an expanding IN cannot be part of an executemany.
    reopen = sa.or_(*(wi.c.status == status for status in REOPENABLE))
    stmt = (
        sa.update(wi)
        .where(
            wi.c.dedupe_hash == sa.bindparam("b_dedupe_hash"),
            wi.c.depth > sa.bindparam("b_depth"),
        )
        .values(
            depth=sa.bindparam("b_depth"),
            priority=sa.bindparam("b_priority"),
            discovered_from=sa.bindparam("b_discovered_from"),
            run_id=sa.func.coalesce(sa.bindparam("b_run_id", type_=wi.c.run_id.type), wi.c.run_id),
            status=sa.case((reopen, Status.PENDING.value), else_=wi.c.status),
            attempt=sa.case((reopen, 0), else_=wi.c.attempt),
            finished_at=sa.case((reopen, sa.null()), else_=wi.c.finished_at),
            updated_at=now,
        )
    )
    params = [
        {
            "b_dedupe_hash": row["dedupe_hash"],
            "b_depth": row["depth"],
            "b_priority": row["priority"],
            "b_discovered_from": row["discovered_from"],
            "b_run_id": row["run_id"],
        }
        for row in rows
    ]
    return execute_counting(conn, stmt, params)


def _requeued_values() -> dict[str, Any]:
    """An item back in the queue as new: pending, attempt 0, no error, lease or retry time
    (its ``content_hash`` and ``version`` stay, so unchanged content is still recognised)."""
    return {
        "status": Status.PENDING.value,
        "attempt": 0,
        "error_message": None,
        "next_retry_at": None,
        "lease_owner": None,
        "lease_expires_at": None,
        "finished_at": None,
        "updated_at": utcnow(),
    }


def requeue_ids(conn: Connection, wi: sa.Table, ids: Sequence[int]) -> int:
    """Put the ``completed`` items among ``ids`` back to ``pending``."""
    stmt = sa.update(wi).where(wi.c.status == Status.COMPLETED.value).values(**_requeued_values())
    return update_in(conn, stmt, wi.c.id, ids)


def requeue_hashes(conn: Connection, wi: sa.Table, hashes: Sequence[str]) -> int:
    """Put the ``completed`` or ``skipped`` items with these dedupe hashes back to ``pending``."""
    stmt = sa.update(wi).where(wi.c.status.in_(REOPENABLE)).values(**_requeued_values())
    return update_in(conn, stmt, wi.c.dedupe_hash, hashes)


def requeue_source(
    conn: Connection, wi: sa.Table, *, source_system: str, source_name: str, statuses: list[str]
) -> int:
    """Put the source's items in ``statuses`` back to ``pending``."""
    stmt = (
        sa.update(wi)
        .where(
            wi.c.source_system == source_system,
            wi.c.source_name == source_name,
            wi.c.status.in_(statuses),
        )
        .values(**_requeued_values())
    )
    return conn.execute(stmt).rowcount


def completed_versions(
    conn: Connection,
    wi: sa.Table,
    *,
    source_system: str,
    source_name: str,
    resource_type: str,
    after_id: int,
    limit: int,
) -> list[tuple[int, str, str | None]]:
    """``(id, resource_id, version)`` of up to ``limit`` completed items after ``after_id``."""
    stmt = (
        sa.select(wi.c.id, wi.c.resource_id, wi.c.version)
        .where(
            wi.c.source_system == source_system,
            wi.c.source_name == source_name,
            wi.c.resource_type == resource_type,
            wi.c.status == Status.COMPLETED.value,
            wi.c.id > after_id,
        )
        .order_by(wi.c.id)
        .limit(limit)
    )
    return [(int(row.id), row.resource_id, row.version) for row in conn.execute(stmt)]
