"""The statements that end work items: outcomes, and the ingest records written with them.

Outcomes apply only to items still ``in_progress`` (under the writer's lease when one is given,
and under the claim, ``attempt``, that the outcome names),
read and locked first in one lock order; a failure below the retry policy's limit goes back to
``pending`` until its ``next_retry_at``. Each function runs on a connection whose transaction
:class:`~holocron_scrapy.store.state_store.StateStore` owns.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from holocron_scrapy.model import Applied, IngestRow, Outcome, RetryPolicy, Status, canonical_json
from holocron_scrapy.store.queue import REOPENABLE
from holocron_scrapy.store.schema import HASH_HEX, LONG_TEXT, UTC_DATETIME, VERSION_LENGTH
from holocron_scrapy.store.sql import (
    IN_LIST_CHUNK,
    Columns,
    chunks,
    rows_per_statement,
    utcnow,
    values_table,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection

logger = logging.getLogger(__name__)

ERROR_MESSAGE_MAX_CHARS = 4000


def insert_records(conn: Connection, records: sa.Table, params: list[dict[str, Any]]) -> list[int]:
    """Insert ``IngestRecords`` rows; return their new ``ingest_id`` values, in order.

    Set-based on every dialect by SQLAlchemy's "insertmanyvalues": on SQL Server ``INSERT ...
    OUTPUT inserted.ingest_id SELECT ... FROM (VALUES ...) ORDER BY <sentinel>`` batches of at
    most 2,099 parameters (123 rows), the ids sorted back into the order of ``params``.
    """
    result = conn.execute(
        sa.insert(records).returning(records.c.ingest_id, sort_by_parameter_order=True),
        params,
    )
    return [int(ingest_id) for ingest_id in result.scalars()]


def live_where(wi: sa.Table, owner: str | None) -> list[sa.ColumnElement[bool]]:
    """What makes an outcome still apply to its item: the fence of :func:`_live` and of the
    outcome update (``in_progress``, and under ``owner``'s lease when given)."""
    live = [wi.c.status == Status.IN_PROGRESS.value]
    if owner is not None:
        live.append(wi.c.lease_owner == owner)
    return live


def _live(
    conn: Connection, wi: sa.Table, ids: Sequence[int], owner: str | None
) -> dict[int, tuple[int, int]]:
    """id -> (attempt, depth) of the items among ``ids`` still live (:func:`live_where`),
    locked in id order until the end of the transaction."""
    stmt = (
        sa.select(wi.c.id, wi.c.attempt, wi.c.depth)
        .where(*live_where(wi, owner))
        .order_by(wi.c.id)
        .with_for_update()
        .with_hint(wi, "WITH (UPDLOCK, ROWLOCK)", dialect_name="mssql")
    )
    found: dict[int, tuple[int, int]] = {}
    for chunk in chunks(sorted(ids), IN_LIST_CHUNK):
        for id_, attempt, depth in conn.execute(stmt.where(wi.c.id.in_(chunk))):
            found[int(id_)] = (int(attempt), int(depth))
    return found


# One row of the VALUES table an outcome update joins: (name, type, may be NULL).
_OUTCOME_COLUMNS: Columns = (
    ("id", sa.BigInteger(), False),
    ("attempt", sa.Integer(), False),  # the claim's, read under the lock: its fence
    ("status", sa.Unicode(16), False),
    ("error_message", LONG_TEXT, True),
    ("content_hash", HASH_HEX, True),
    ("version", sa.Unicode(VERSION_LENGTH), True),
    ("next_retry_at", UTC_DATETIME, True),
    ("finished_at", UTC_DATETIME, True),
)


def apply_outcomes(
    conn: Connection,
    wi: sa.Table,
    outcomes: Sequence[Outcome],
    owner: str | None,
    retry: RetryPolicy,
) -> Applied:
    """Apply ``outcomes`` to the items still live (see :func:`_live`); list the others stale.

    Set-based: ``UPDATE work_items SET ... FROM (VALUES (id, status, ...) ...) AS outcome
    WHERE work_items.id = outcome.id AND <live>``, a few hundred outcomes a statement.
    """
    now = utcnow()
    by_id = {outcome.work_item_id: outcome for outcome in outcomes}
    ids = sorted(by_id)  # one lock order for concurrent writers
    live = _live(conn, wi, ids, owner)
    # Fenced by the claim: an outcome of an earlier claim (attempt) of the item is stale.
    live = {i: v for i, v in live.items() if by_id[i].attempt in (None, v[0])}
    applied = Applied(stale=[i for i in ids if i not in live])
    rows = []
    for work_item_id in ids:
        if work_item_id not in live:
            continue
        outcome = by_id[work_item_id]
        attempt, depth = live[work_item_id]
        status, retry_at = str(outcome.status), None
        closer = outcome.depth is not None and depth < outcome.depth
        if outcome.status in REOPENABLE and closer:
            status = Status.PENDING.value  # found closer while in flight: expand it again
            applied.reopened += 1
        elif outcome.status == Status.FAILED and not outcome.final and retry.retries(attempt):
            status = Status.PENDING.value
            retry_at = now + timedelta(seconds=retry.delay(attempt))
        if retry_at is None:
            applied.statuses[str(outcome.status)] += 1
        else:
            applied.retried += 1
        rows.append(
            (
                work_item_id,
                attempt,
                status,
                _truncate(outcome.error_message),
                outcome.content_hash,
                outcome.version,
                retry_at,
                None if retry_at else now,
            )
        )
    for chunk in chunks(rows, rows_per_statement(len(_OUTCOME_COLUMNS))):
        _update_outcomes(conn, wi, chunk, owner, now)
    if applied.stale:
        logger.debug(
            "Dropped the outcomes of %(n)d work items no longer leased to %(owner)s under "
            "the claim the outcome ends",
            {"n": len(applied.stale), "owner": owner},
        )
    return applied


def _update_outcomes(
    conn: Connection,
    wi: sa.Table,
    rows: Sequence[tuple[Any, ...]],
    owner: str | None,
    now: datetime,
) -> None:
    outcome, params = values_table("outcome", _OUTCOME_COLUMNS, rows)
    stmt = (
        sa.update(wi)
        .where(
            wi.c.id == outcome.c.id,
            wi.c.attempt == outcome.c.attempt,  # the claim's fence
            *live_where(wi, owner),
        )
        .values(
            status=outcome.c.status,
            error_message=outcome.c.error_message,
            content_hash=sa.func.coalesce(outcome.c.content_hash, wi.c.content_hash),
            version=sa.func.coalesce(outcome.c.version, wi.c.version),
            # A listing tried again resumes from its cursor; an ended one starts over. A CASE
            # on a predicate: T-SQL has no boolean value (CASE WHEN <bind> is Msg 4145).
            cursor=sa.case((outcome.c.next_retry_at.is_not(None), wi.c.cursor), else_=sa.null()),
            next_retry_at=outcome.c.next_retry_at,
            finished_at=outcome.c.finished_at,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    conn.execute(stmt, params)


def _truncate(message: str | None) -> str | None:
    if message is None or len(message) <= ERROR_MESSAGE_MAX_CHARS:
        return message
    return message[: ERROR_MESSAGE_MAX_CHARS - 1] + "…"


def ingest_params(row: IngestRow) -> dict[str, Any]:
    return {
        "source_system": row.source_system,
        "source_name": row.source_name,
        "resource_type": row.resource_type,
        "resource_id": row.resource_id,
        "request_uri": row.request_uri,
        "request_method": row.request_method,
        "request_headers": canonical_json(row.request_headers),
        "status_code": row.status_code,
        "response_headers": canonical_json(row.response_headers),
        "payload": row.payload_json or canonical_json(row.payload),
        "fetched_at_utc": row.fetched_at_utc,
        "hash_sha256": row.hash_sha256,
        "run_id": row.run_id,
        "work_item_id": row.work_item_id,
        "attempt": row.attempt,
        "error_message": row.error_message,
        "duration_ms": row.duration_ms,
    }
