"""The statements that end work items: outcomes, and the ingest records written with them.

Outcomes apply only to items still ``in_progress`` (under the writer's lease when one is given,
and under the claim, ``attempt``, that the outcome names),
read and locked first in one lock order; a failure below the retry policy's limit goes back to
``pending`` until its ``next_retry_at``. Each function runs on a connection whose transaction
:class:`~holocron_scrapy.store.StateStore` owns.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from holocron_scrapy.model import Applied, IngestRow, Outcome, RetryPolicy, Status, canonical_json
from holocron_scrapy.schema import HASH_HEX, VERSION_LENGTH
from holocron_scrapy.store_queue import REOPENABLE
from holocron_scrapy.store_sql import IN_LIST_CHUNK, chunks, execute_counting, utcnow

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Connection

logger = logging.getLogger(__name__)

ERROR_MESSAGE_MAX_CHARS = 4000


def insert_records(conn: Connection, records: sa.Table, params: list[dict[str, Any]]) -> list[int]:
    """Insert ``IngestRecords`` rows; return their new ``ingest_id`` values, in order."""
    result = conn.execute(
        sa.insert(records).returning(records.c.ingest_id, sort_by_parameter_order=True),
        params,
    )
    return [int(ingest_id) for ingest_id in result.scalars()]


def _live(
    conn: Connection, wi: sa.Table, ids: Sequence[int], owner: str | None
) -> dict[int, tuple[int, int]]:
    """id -> (attempt, depth) of the items among ``ids`` still ``in_progress`` (under
    ``owner``'s lease when given), locked until the end of the transaction."""
    live = [wi.c.status == Status.IN_PROGRESS.value]
    if owner is not None:
        live.append(wi.c.lease_owner == owner)
    stmt = (
        sa.select(wi.c.id, wi.c.attempt, wi.c.depth)
        .where(*live)
        .with_for_update()
        .with_hint(wi, "WITH (UPDLOCK, ROWLOCK)", dialect_name="mssql")
    )
    found: dict[int, tuple[int, int]] = {}
    for chunk in chunks(list(ids), IN_LIST_CHUNK):
        for row in conn.execute(stmt.where(wi.c.id.in_(chunk))):
            found[int(row.id)] = (int(row.attempt), int(row.depth))
    return found


def apply_outcomes(
    conn: Connection,
    wi: sa.Table,
    outcomes: Sequence[Outcome],
    owner: str | None,
    retry: RetryPolicy,
) -> Applied:
    """Apply ``outcomes`` to the items still live (see :func:`_live`); list the others stale."""
    now = utcnow()
    by_id = {outcome.work_item_id: outcome for outcome in outcomes}
    ids = sorted(by_id)  # one lock order for concurrent writers
    live = _live(conn, wi, ids, owner)
    # Fenced by the claim: an outcome of an earlier claim (attempt) of the item is stale.
    live = {i: v for i, v in live.items() if by_id[i].attempt in (None, v[0])}
    applied = Applied(stale=[i for i in ids if i not in live])
    params = []
    for work_item_id in ids:
        if work_item_id not in live:
            continue
        outcome = by_id[work_item_id]
        attempt, depth = live[work_item_id]
        status, retry_at = str(outcome.status), None
        closer = outcome.depth is not None and depth < outcome.depth
        if outcome.status in REOPENABLE and closer:
            status = Status.PENDING.value  # found closer while in flight: expand it again
        elif outcome.status == Status.FAILED and not outcome.final and retry.retries(attempt):
            status = Status.PENDING.value
            retry_at = now + timedelta(seconds=retry.delay(attempt))
        if retry_at is None:
            applied.statuses[str(outcome.status)] += 1
        else:
            applied.retried += 1
        params.append(
            {
                "b_id": work_item_id,
                "b_attempt": attempt,
                "b_status": status,
                "b_error_message": _truncate(outcome.error_message),
                "b_content_hash": outcome.content_hash,
                "b_version": outcome.version,
                "b_next_retry_at": retry_at,
                "b_finished_at": None if retry_at else now,
                # A listing tried again resumes from its cursor; an ended one starts over.
                "b_keep_cursor": retry_at is not None,
            }
        )
    where = [
        wi.c.id == sa.bindparam("b_id"),
        wi.c.status == Status.IN_PROGRESS.value,
        wi.c.attempt == sa.bindparam("b_attempt", type_=sa.Integer),  # the claim's fence
    ]
    if owner is not None:
        where.append(wi.c.lease_owner == owner)
    stmt = (
        sa.update(wi)
        .where(*where)
        .values(
            status=sa.bindparam("b_status"),
            error_message=sa.bindparam("b_error_message"),
            content_hash=sa.func.coalesce(
                sa.bindparam("b_content_hash", type_=HASH_HEX), wi.c.content_hash
            ),
            version=sa.func.coalesce(
                sa.bindparam("b_version", type_=sa.Unicode(VERSION_LENGTH)), wi.c.version
            ),
            cursor=sa.case(
                (sa.bindparam("b_keep_cursor", type_=sa.Boolean), wi.c.cursor),
                else_=sa.null(),
            ),
            next_retry_at=sa.bindparam("b_next_retry_at", type_=wi.c.next_retry_at.type),
            finished_at=sa.bindparam("b_finished_at", type_=wi.c.finished_at.type),
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    execute_counting(conn, stmt, params)
    if applied.stale:
        logger.debug(
            "Dropped the outcomes of %(n)d work items no longer leased to %(owner)s under "
            "the claim the outcome ends",
            {"n": len(applied.stale), "owner": owner},
        )
    return applied


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
