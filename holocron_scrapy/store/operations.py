"""What the operations commands ask the state database: the state of a source
(``scrapy ingest_status``) and putting failed or skipped items back in the queue
(``scrapy ingest_requeue``).

Every query names the source's ``source_system`` and ``source_name`` and, where it can, a
``status``: the prefix of the claim index ``ix_work_items_claim`` (source_system, source_name,
status, priority, id), so counts by status, leases (``in_progress``) and failures read only the
index range they need, never the whole frontier. The counts by status and by resource type
come from the counts the database keeps (:mod:`holocron_scrapy.store.counts`): O(statuses x
types), whatever the size of the frontier. The source systems of a source name come from
``runs`` (one row per crawl process).
Requeueing walks the index in keyset batches (one transaction each), so a million failed items
are never one statement, one lock or one list in memory.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from holocron_scrapy.model import Status
from holocron_scrapy.store import counts as store_counts
from holocron_scrapy.store.queue import requeued_values
from holocron_scrapy.store.sql import update_in, utcnow

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection, Engine

    from holocron_scrapy.store.schema import Tables

#: statuses whose counts by resource type are read by default (usually few rows each)
SMALL_STATUSES = (Status.IN_PROGRESS, Status.FAILED, Status.SKIPPED)
REQUEUEABLE = (Status.FAILED, Status.SKIPPED)
MAX_PATTERNS = 1000  # distinct message patterns counted; the rest are "other"
REQUEUE_BATCH = 1000
_URL_RE = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_QUOTED_RE = re.compile(r"'[^']*'|\"[^\"]*\"")
_PATTERN_LENGTH = 200


def message_pattern(message: str | None) -> str:
    """A message with its URLs and quoted parts blanked, so that the same error of many items
    counts as one: ``HTTP 503 from <url>``, ``redirect to '…'``."""
    text = _QUOTED_RE.sub(lambda m: m.group(0)[0] + "…" + m.group(0)[0], message or "")
    text = _URL_RE.sub("<url>", text)
    return " ".join(text.split())[:_PATTERN_LENGTH] or "(no message)"


def source_systems(conn: Connection, tables: Tables, source_name: str) -> list[str]:
    """The source systems that ran ``source_name`` (from ``runs``)."""
    runs = tables.runs
    stmt = sa.select(runs.c.source_system).where(runs.c.source_name == source_name).distinct()
    return sorted(conn.scalars(stmt))


@dataclass
class Messages:
    """The most frequent message patterns of a status, with example items."""

    total: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


@dataclass
class SourceState:
    source_system: str
    source_name: str
    by_status: dict[str, int]
    by_type: dict[str, dict[str, int]]  # resource_type -> status -> count
    by_type_statuses: tuple[str, ...]
    leases: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    messages: dict[str, Messages]
    now: datetime


def _source(tables: Tables, system: str, name: str) -> list[sa.ColumnElement[bool]]:
    wi = tables.work_items
    return [wi.c.source_system == system, wi.c.source_name == name]


def _messages(
    conn: Connection, tables: Tables, system: str, name: str, *, status: Status, examples: int
) -> Messages:
    wi = tables.work_items
    stmt = (
        sa.select(wi.c.resource_type, wi.c.resource_id, wi.c.error_message)
        .where(*_source(tables, system, name), wi.c.status == status.value)
        .order_by(wi.c.priority, wi.c.id)  # the index's order: examples are the same each time
        .execution_options(yield_per=1000)
    )
    found = Messages()
    for resource_type, resource_id, message in conn.execute(stmt):
        found.total += 1
        pattern = message_pattern(message)
        if pattern not in found.counts and len(found.counts) >= MAX_PATTERNS:
            pattern = "(other messages)"
        found.counts[pattern] += 1
        kept = found.examples.setdefault(pattern, [])
        if len(kept) < examples:
            kept.append((f"{resource_type} {resource_id}", message or ""))
    return found


def source_state(
    conn: Connection,
    tables: Tables,
    source_system: str,
    source_name: str,
    *,
    all_types: bool = False,
    runs: int = 10,
    examples: int = 3,
) -> SourceState:
    """The state of one source of one system (see the module documentation)."""
    wi = tables.work_items
    where = _source(tables, source_system, source_name)
    by_status = {status.value: 0 for status in Status}
    type_statuses = tuple(s.value for s in (Status if all_types else SMALL_STATUSES))
    by_type: dict[str, dict[str, int]] = {}
    counts, _rows = store_counts.read(conn, tables, source_system, source_name)
    for (resource_type, status), count in counts.items():
        by_status[status] = by_status.get(status, 0) + count
        if status in type_statuses:
            by_type.setdefault(resource_type, {})[status] = count
    order = [status.value for status in Status]
    by_type = {
        kind: dict(sorted(counts.items(), key=lambda kv: order.index(kv[0])))
        for kind, counts in by_type.items()
    }

    stmt = (
        sa.select(
            wi.c.lease_owner,
            sa.func.count().label("items"),
            sa.func.min(wi.c.lease_expires_at).label("first_expiry"),
            sa.func.max(wi.c.lease_expires_at).label("last_expiry"),
        )
        .where(*where, wi.c.status == Status.IN_PROGRESS.value)
        .group_by(wi.c.lease_owner)
        .order_by(sa.func.count().desc())
    )
    leases = [dict(row._mapping) for row in conn.execute(stmt)]

    r = tables.runs
    stmt = (
        sa.select(r)
        .where(r.c.source_system == source_system, r.c.source_name == source_name)
        .order_by(r.c.started_at.desc())
        .limit(runs)
    )
    recent = [dict(row._mapping) for row in conn.execute(stmt)] if runs > 0 else []
    messages = {
        status.value: _messages(
            conn, tables, source_system, source_name, status=status, examples=examples
        )
        for status in REQUEUEABLE
    }
    return SourceState(
        source_system,
        source_name,
        by_status,
        by_type,
        type_statuses,
        leases,
        recent,
        messages,
        utcnow(),
    )


def like_pattern(text: str) -> str:
    """A ``LIKE`` pattern matching messages containing ``text`` (``%``, ``_`` and ``\\``
    escaped with ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def requeue(
    engine: Engine,
    tables: Tables,
    source_system: str,
    source_name: str,
    *,
    statuses: Sequence[Status],
    error_contains: str | None = None,
    resource_type: str | None = None,
    dry_run: bool = False,
    batch_size: int = REQUEUE_BATCH,
) -> int:
    """Put the source's items in ``statuses`` (failed, skipped) back to ``pending`` (attempt 0),
    only those of ``resource_type`` and whose error message contains ``error_contains`` when
    given; return how many (``dry_run``: how many would be)."""
    wi = tables.work_items
    filters: list[sa.ColumnElement[bool]] = []
    if resource_type is not None:
        filters.append(wi.c.resource_type == resource_type)
    if error_contains:
        filters.append(wi.c.error_message.like(like_pattern(error_contains), escape="\\"))
    total = 0
    for status in statuses:
        if status not in REQUEUEABLE:
            raise ValueError(f"only {', '.join(REQUEUEABLE)} items are requeued, not {status}")
        after: tuple[int, int] | None = None
        while True:
            # The claim index in its order: each batch starts where the last one ended.
            keyset = sa.select(wi.c.priority, wi.c.id).where(
                *_source(tables, source_system, source_name), wi.c.status == status.value
            )
            if after is not None:
                priority, last_id = after
                keyset = keyset.where(
                    sa.or_(
                        wi.c.priority > priority,
                        sa.and_(wi.c.priority == priority, wi.c.id > last_id),
                    )
                )
            keyset = keyset.order_by(wi.c.priority, wi.c.id).limit(batch_size)
            with engine.begin() as conn:
                rows = conn.execute(keyset).all()
                if not rows:
                    break
                ids = [int(row.id) for row in rows]
                matching = [wi.c.status == status.value, *filters]
                if dry_run:
                    count = sa.select(sa.func.count()).where(wi.c.id.in_(ids), *matching)
                    total += int(conn.scalar(count) or 0)
                else:
                    stmt = sa.update(wi).where(*matching).values(**requeued_values())
                    total += update_in(conn, stmt, wi.c.id, ids)
            after = (int(rows[-1].priority), int(rows[-1].id))
    return total
