"""The work-item side of ``ingest_verify``: leases that are not live, completed items whose
``content_hash`` is not their latest row's, and the ground truth — a page of items at a time."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from holocron_scrapy.audit.paging import PAGE_ROWS, pages
from holocron_scrapy.mediawiki.listings import RESOURCE_LISTING
from holocron_scrapy.model import Status
from holocron_scrapy.store.sql import IN_LIST_CHUNK

if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from datetime import datetime

    from holocron_scrapy.audit.report import Report
    from holocron_scrapy.store.schema import Tables

    Add = Callable[[str, str], None]  # report one problem: (class, example)

_RUNNING = "running"  # runs.status of a run under way


def check_work_items(
    conn: sa.Connection,
    tables: Tables,
    source_name: str,
    *,
    now: datetime,
    add: Add,
    totals: dict[str, int],
    tick: Callable[[], None],
) -> None:
    wi = tables.work_items
    runs = tables.runs
    ended = {
        run.run_id: run.status
        for run in conn.execute(
            sa.select(runs.c.run_id, runs.c.status).where(
                runs.c.source_name == source_name, runs.c.status != _RUNNING
            )
        )
    }
    stmt = sa.select(
        wi.c.id,
        wi.c.source_system,
        wi.c.resource_type,
        wi.c.resource_id,
        wi.c.status,
        wi.c.run_id,
        wi.c.lease_owner,
        wi.c.lease_expires_at,
        wi.c.content_hash,
    ).where(wi.c.source_name == source_name)
    statuses = Counter[str]()
    completed: list[Any] = []
    for item in pages(conn, stmt, wi.c.id):
        statuses[item.status] += 1
        tick()
        if item.status == Status.IN_PROGRESS.value:
            problem = _lease_problem(
                item.lease_owner, item.lease_expires_at, item.run_id, now=now, ended=ended
            )
            if problem:
                add("stuck_in_progress", f"{_label(item)}: {problem}")
        elif item.status == Status.COMPLETED.value and item.resource_type != RESOURCE_LISTING:
            completed.append(item)
            if len(completed) >= IN_LIST_CHUNK:
                _check_completed(conn, tables, source_name, completed, add)
                completed = []
    _check_completed(conn, tables, source_name, completed, add)
    totals["work_items"] = sum(statuses.values())
    for status in Status:
        totals[status.value] = statuses[status.value]


def _label(item: Any) -> str:
    return f"work item {item.id} {item.resource_type} {item.resource_id!r}"


def _check_completed(
    conn: sa.Connection, tables: Tables, source_name: str, items: list[Any], add: Add
) -> None:
    """Each completed item's ``content_hash`` is its latest row's: the rows of its work item
    (``work_item_id``), else, for rows written without one, the latest of its resource."""
    if not items:
        return
    ir = tables.ingest_records
    by_item: dict[int, tuple[int, str]] = {}  # work_item_id -> (ingest_id, hash) of its latest
    query = sa.select(ir.c.work_item_id, ir.c.ingest_id, ir.c.hash_sha256).where(
        ir.c.source_name == source_name, ir.c.work_item_id.in_([item.id for item in items])
    )
    for row in conn.execute(query):
        key = int(row.work_item_id)
        by_item[key] = max(by_item.get(key, (0, "")), (int(row.ingest_id), row.hash_sha256))
    orphans = [item for item in items if item.id not in by_item]
    by_resource: dict[tuple[str, str, str], tuple[int, str]] = {}
    if orphans:
        query = sa.select(
            ir.c.source_system,
            ir.c.resource_type,
            ir.c.resource_id,
            ir.c.ingest_id,
            ir.c.hash_sha256,
        ).where(
            ir.c.source_name == source_name,
            ir.c.resource_id.in_(sorted({item.resource_id for item in orphans})),
        )
        for found_row in conn.execute(query):
            key3 = (found_row.source_system, found_row.resource_type, found_row.resource_id)
            latest = (int(found_row.ingest_id), found_row.hash_sha256)
            by_resource[key3] = max(by_resource.get(key3, (0, "")), latest)
    conn.rollback()
    for item in items:
        found = by_item.get(item.id) or by_resource.get(
            (item.source_system, item.resource_type, item.resource_id)
        )
        if found is None:
            add("completed_without_record", f"{_label(item)}: no IngestRecords row")
        elif item.content_hash != found[1]:
            add(
                "completed_without_record",
                f"{_label(item)}: content_hash {str(item.content_hash)[:16]}, "
                f"latest row {found[1][:16]}",
            )


def _lease_problem(
    owner: str | None,
    expires: datetime | None,
    run_id: str | None,
    *,
    now: datetime,
    ended: dict[str, str],
) -> str | None:
    """Why an ``in_progress`` item's lease is not live, or None."""
    if owner is None or expires is None:
        return "no lease"
    if expires < now:
        return f"lease of {owner} expired"
    if run_id in ended:
        return f"its run {run_id} ended ({ended[run_id]}) without releasing it"
    return None


def compare_ground_truth(  # noqa: PLR0917
    conn: sa.Connection,
    tables: Tables,
    source_name: str,
    resource_type: str | None,
    ground_truth: Collection[str],
    report: Report,
    examples: int,
) -> None:
    """The completed ids of ``resource_type`` (streamed from the database) against the ground
    truth: the expected ones not completed, the completed ones not expected."""
    wi = tables.work_items
    type_filter = (
        wi.c.resource_type == resource_type
        if resource_type is not None
        else wi.c.resource_type != RESOURCE_LISTING
    )
    stmt = (
        sa.select(wi.c.resource_id)
        .distinct()
        .where(wi.c.source_name == source_name, wi.c.status == Status.COMPLETED.value, type_filter)
    )
    missing = set(ground_truth)
    unexpected = report.findings["ground_truth_unexpected"]
    streamed = conn.execution_options(stream_results=True, yield_per=PAGE_ROWS)
    for resource_id in streamed.scalars(stmt):
        if resource_id in missing:
            missing.discard(resource_id)
        elif resource_id not in ground_truth:
            unexpected.add_sorted(repr(resource_id), examples)
    conn.rollback()
    for resource_id in sorted(missing):
        report.findings["ground_truth_missing"].add(repr(resource_id), examples)
