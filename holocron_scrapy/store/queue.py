"""The statements by which work enters and re-enters the queue.

Inserting discovered items if new (``INSERT ... ON CONFLICT DO NOTHING``, or ``INSERT ...
SELECT ... WHERE NOT EXISTS`` for SQL Server), giving known items reached closer their smaller
depth, putting finished items back to ``pending``, and paging through completed items. Each
function runs on a connection whose transaction
:class:`~holocron_scrapy.store.state_store.StateStore` owns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from holocron_scrapy.model import NewWorkItem, Status
from holocron_scrapy.store.sql import (
    Columns,
    InsertStyle,
    chunks,
    dedupe_hash,
    dialect_insert,
    rows_per_statement,
    update_in,
    utcnow,
    values_table,
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


# The columns of a new item's row that differ between rows (the others are one value a batch).
_NEW_ROW_COLUMNS = (
    "dedupe_hash",
    "dedupe_key",
    "source_system",
    "source_name",
    "resource_type",
    "resource_id",
    "priority",
    "depth",
    "run_id",
    "discovered_from",
    "hops",
)


def _typed(wi: sa.Table, names: Sequence[str]) -> Columns:
    """The VALUES-table columns for ``work_items`` columns ``names`` (NULL-able ones cast)."""
    return tuple((name, wi.c[name].type, bool(wi.c[name].nullable)) for name in names)


def _insert_not_exists(conn: Connection, wi: sa.Table, rows: list[dict[str, Any]]) -> set[str]:
    """``INSERT ... OUTPUT inserted.dedupe_hash SELECT ... FROM (VALUES ...) AS discovered WHERE
    NOT EXISTS (... WITH (UPDLOCK, HOLDLOCK) ...)``, 200 rows a statement.

    The lock hints (SQL Server only) hold the key range until commit, so a concurrent
    insert of the same key waits instead of failing on the unique constraint.
    """
    existing = wi.alias("existing")
    constant = {name: rows[0][name] for name in rows[0] if name not in _NEW_ROW_COLUMNS}
    inserted: set[str] = set()
    for chunk in chunks(rows, rows_per_statement(len(_NEW_ROW_COLUMNS))):
        discovered, params = values_table(
            "discovered",
            _typed(wi, _NEW_ROW_COLUMNS),
            [[row[name] for name in _NEW_ROW_COLUMNS] for row in chunk],
        )
        known: sa.Select[Any] = (
            sa.select(sa.literal_column("1"))
            .select_from(existing)
            .where(existing.c.dedupe_hash == discovered.c.dedupe_hash)
            .with_hint(existing, "WITH (UPDLOCK, HOLDLOCK)", dialect_name="mssql")
        )
        values = [discovered.c[name] for name in _NEW_ROW_COLUMNS] + [
            sa.literal(value, wi.c[name].type) for name, value in constant.items()
        ]
        stmt = (
            sa.insert(wi)
            .from_select(
                [*_NEW_ROW_COLUMNS, *constant],
                sa.select(*values).where(discovered.c.dedupe_hash.is_not(None), ~sa.exists(known)),
            )
            .returning(wi.c.dedupe_hash)
        )
        inserted.update(conn.execute(stmt, params).scalars())
    return inserted


_IMPROVED_COLUMNS = ("id", "depth", "priority", "discovered_from", "run_id")


def improve_depth(conn: Connection, wi: sa.Table, rows: list[dict[str, Any]], now: datetime) -> int:
    """Known items now reached at a smaller depth: take the new depth; reopen finished ones.

    Set-based: the items to improve are found (``SELECT ... JOIN (VALUES (hash, depth) ...)
    ... ORDER BY id``), then changed by ``UPDATE ... FROM (VALUES ...)`` joined on the id, a few
    hundred rows a statement, so that rows are locked in id order as everywhere in the store:
    PostgreSQL locks them as the sorted SELECT returns them (``FOR UPDATE OF work_items``); SQL
    Server reads them without a lock hint (an update lock would follow the VALUES rows' hash
    order) and locks them in the UPDATE, whose VALUES rows are in id order.
    """
    if not rows:
        return 0
    by_hash = {row["dedupe_hash"]: row for row in rows}
    found: list[tuple[int, str]] = []
    for chunk in chunks(rows, rows_per_statement(2)):
        reached, params = values_table(
            "reached",
            _typed(wi, ("dedupe_hash", "depth")),
            [(row["dedupe_hash"], row["depth"]) for row in chunk],
        )
        closer = sa.and_(wi.c.dedupe_hash == reached.c.dedupe_hash, wi.c.depth > reached.c.depth)
        locking = (
            sa.select(wi.c.id, wi.c.dedupe_hash)
            .select_from(wi)
            .join(reached, closer)
            .order_by(wi.c.id)
            .with_for_update(of=wi)
        )
        found.extend((int(row.id), row.dedupe_hash) for row in conn.execute(locking, params))
    found.sort()
    reopen = wi.c.status.in_(REOPENABLE)
    changed = 0
    for improved_chunk in chunks(found, rows_per_statement(len(_IMPROVED_COLUMNS))):
        improved, params = values_table(
            "improved",
            _typed(wi, _IMPROVED_COLUMNS),
            [
                [work_item_id, *(by_hash[key][name] for name in _IMPROVED_COLUMNS[1:])]
                for work_item_id, key in improved_chunk
            ],
        )
        stmt = (
            sa.update(wi)
            .where(wi.c.id == improved.c.id, wi.c.depth > improved.c.depth)
            .values(
                depth=improved.c.depth,
                priority=improved.c.priority,
                discovered_from=improved.c.discovered_from,
                run_id=sa.func.coalesce(improved.c.run_id, wi.c.run_id),
                status=sa.case((reopen, Status.PENDING.value), else_=wi.c.status),
                attempt=sa.case((reopen, 0), else_=wi.c.attempt),
                finished_at=sa.case((reopen, sa.null()), else_=wi.c.finished_at),
                updated_at=now,
            )
        )
        changed += conn.execute(stmt, params).rowcount
    return changed


def requeued_values() -> dict[str, Any]:
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
    stmt = sa.update(wi).where(wi.c.status == Status.COMPLETED.value).values(**requeued_values())
    return update_in(conn, stmt, wi.c.id, ids)


def requeue_hashes(conn: Connection, wi: sa.Table, hashes: Sequence[str]) -> int:
    """Put the ``completed`` or ``skipped`` items with these dedupe hashes back to ``pending``."""
    stmt = sa.update(wi).where(wi.c.status.in_(REOPENABLE)).values(**requeued_values())
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
        .values(**requeued_values())
    )
    return conn.execute(stmt).rowcount


def completed_after(
    conn: Connection,
    wi: sa.Table,
    columns: Sequence[sa.ColumnElement[Any]],
    *,
    source_system: str,
    source_name: str,
    resource_type: str,
    after_id: int,
    limit: int,
) -> Sequence[sa.Row[Any]]:
    """``columns`` of ``limit`` completed items after ``after_id``: one page of the type index."""
    stmt = (
        sa.select(*columns)
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
    return conn.execute(stmt).all()


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
    rows = completed_after(
        conn, wi, (wi.c.id, wi.c.resource_id, wi.c.version),
        source_system=source_system, source_name=source_name, resource_type=resource_type,
        after_id=after_id, limit=limit,
    )  # fmt: skip
    return [(int(row.id), row.resource_id, row.version) for row in rows]
