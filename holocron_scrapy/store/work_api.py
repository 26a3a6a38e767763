"""The :class:`~holocron_scrapy.store.state_store.StateStore` methods of the queue: work in
(adding, requeueing), work out (outcomes and their ingest records), and what the queue holds
(counts, pages of completed items, one row)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from holocron_scrapy.model import (
    NO_RETRIES,
    Applied,
    IngestRow,
    NewWorkItem,
    Outcome,
    RetryPolicy,
    Status,
)
from holocron_scrapy.store import counts as store_counts
from holocron_scrapy.store import queue as store_queue
from holocron_scrapy.store import records as store_records
from holocron_scrapy.store.base import StoreBase
from holocron_scrapy.store.retry import retry_conflicts
from holocron_scrapy.store.sql import dedupe_hash, utcnow

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime


logger = logging.getLogger(__name__)


class WorkMethods(StoreBase):
    """The queue: adding and requeueing work, outcomes, counts and reads."""

    def add_work_items(self, items: Sequence[NewWorkItem]) -> int:
        """Insert the items whose dedupe key is new; return how many were inserted.

        Duplicates within ``items`` collapse to the smallest depth. A known item reached at a
        smaller depth than stored takes the new depth, priority and ``discovered_from``, and if it
        was ``completed`` or ``skipped`` goes back to ``pending`` (attempt 0), so that it is
        expanded again at the smaller depth; its ``content_hash`` is kept.

        Two transactions: the inserts commit before the known items are improved. Another
        worker inserting the same keys (workers discover the same links) waits for the
        insert's commit, not for the improvement's row locks (which wait for the claims and
        outcomes of the rows they lock). Each step runs again on a lost conflict; both are
        idempotent, so a call that fails after the first (its caller keeps the items and calls
        again) loses nothing.
        """
        if not items:
            return 0
        now = utcnow()
        rows = store_queue.new_rows(items, now)
        inserted = self._insert_new(rows)
        self.resume.added(items)
        known = [row for row in rows if row["dedupe_hash"] not in inserted]
        improved = self.reopened(self._improve_depth(known, now) if known else 0)
        logger.debug(
            "Added %(new)d of %(n)d work items (%(improved)d reached at a smaller depth)",
            {"new": len(inserted), "n": len(items), "improved": improved},
        )
        return len(inserted)

    @retry_conflicts
    def _insert_new(self, rows: list[dict[str, Any]]) -> set[str]:
        with self.engine.begin() as conn:
            return store_queue.insert_new(conn, self.tables.work_items, rows, self.insert_style)

    @retry_conflicts
    def _improve_depth(self, known: list[dict[str, Any]], now: datetime) -> int:
        with self.engine.begin() as conn:
            return store_queue.improve_depth(conn, self.tables.work_items, known, now)

    @retry_conflicts
    def finish_items(
        self,
        outcomes: Sequence[Outcome],
        *,
        owner: str | None = None,
        retry: RetryPolicy = NO_RETRIES,
    ) -> Applied:
        """Apply outcomes to items still ``in_progress`` (and, given an ``owner``, still leased
        to it) under the claim an outcome names (its ``attempt``: never a later claim of the
        item, even by the same owner); a failure below ``retry.max_attempts`` goes back to
        ``pending`` until its ``next_retry_at``. The others are dropped and listed in
        :attr:`Applied.stale`."""
        if not outcomes:
            return Applied()
        with self.engine.begin() as conn:
            applied = store_records.apply_outcomes(
                conn, self.tables.work_items, outcomes, owner, retry
            )
        self.reopened(applied.reopened)
        return applied

    @retry_conflicts
    def commit_records(
        self,
        rows: Sequence[IngestRow],
        outcomes: Sequence[Outcome],
        *,
        owner: str | None = None,
        retry: RetryPolicy = NO_RETRIES,
    ) -> Applied:
        """Apply ``outcomes`` (as :meth:`finish_items`) and insert ``rows`` into
        ``IngestRecords``, all or nothing. The row of a stale outcome's item is not inserted.

        :attr:`Applied.ingest_ids` holds the new ``ingest_id`` values, in the order of ``rows``.
        """
        params = [store_records.ingest_params(row) for row in rows]  # before the transaction
        wi = self.tables.work_items
        with self.engine.begin() as conn:
            applied = (
                store_records.apply_outcomes(conn, wi, outcomes, owner, retry)
                if outcomes
                else Applied()
            )
            stale = set(applied.stale)
            params = [p for p in params if p["work_item_id"] not in stale]
            if params:
                applied.ingest_ids = store_records.insert_records(
                    conn, self.tables.ingest_records, params
                )
        self.reopened(applied.reopened)
        return applied

    @retry_conflicts
    def completed_versions(
        self,
        *,
        source_system: str,
        source_name: str,
        resource_type: str,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[tuple[int, str, str | None]]:
        """``(id, resource_id, version)`` of up to ``limit`` completed items with ``id >
        after_id``, by id: page through them passing the last id back as ``after_id``."""
        with self.engine.connect() as conn:
            return store_queue.completed_versions(
                conn,
                self.tables.work_items,
                source_system=source_system,
                source_name=source_name,
                resource_type=resource_type,
                after_id=after_id,
                limit=limit,
            )

    @retry_conflicts
    def requeue_ids(self, work_item_ids: Sequence[int]) -> int:
        """Put the given ``completed`` items back to ``pending`` (attempt 0), keeping their
        ``content_hash`` and ``version``; return how many were requeued."""
        ids = sorted(set(work_item_ids))
        if not ids:
            return 0
        with self.engine.begin() as conn:
            requeued = store_queue.requeue_ids(conn, self.tables.work_items, ids)
        return self.reopened(requeued)

    @retry_conflicts
    def requeue_keys(self, dedupe_keys: Sequence[str]) -> int:
        """Put the items with these dedupe keys back to ``pending`` (attempt 0) if they ended
        ``completed`` or ``skipped``, keeping their ``content_hash`` and ``version``; unknown keys
        and items pending, in flight or failed are left alone. Return how many were requeued.

        ``recrawl=changed`` refreshes a changed page's other resources this way (``html``,
        ``revisions``, ``info``: one key per resource type and title). Chunked IN lists on the
        unique ``dedupe_hash``.
        """
        hashes = sorted({dedupe_hash(key) for key in dedupe_keys})
        if not hashes:
            return 0
        with self.engine.begin() as conn:
            requeued = store_queue.requeue_hashes(conn, self.tables.work_items, hashes)
        return self.reopened(requeued)

    @retry_conflicts
    def requeue(self, *, source_system: str, source_name: str, statuses: Sequence[Status]) -> int:
        """Put the source's items in ``statuses`` back to ``pending`` with attempt 0."""
        if not statuses:
            return 0
        with self.engine.begin() as conn:
            requeued = store_queue.requeue_source(
                conn,
                self.tables.work_items,
                source_system=source_system,
                source_name=source_name,
                statuses=sorted({str(status) for status in statuses}),
            )
        return self.reopened(requeued)

    @retry_conflicts
    def counts(self, *, source_system: str, source_name: str) -> dict[str, int]:
        """Items of the source per status, every :class:`Status` value present: read from the
        counts the database keeps (:mod:`~holocron_scrapy.store.counts`), in O(statuses x
        types); a ledger grown past its bound is compacted afterwards."""
        result = {status.value: 0 for status in Status}
        with self.engine.begin() as conn:
            counts, rows = store_counts.read(conn, self.tables, source_system, source_name)
        for (_kind, status), items in counts.items():
            result[status] = result.get(status, 0) + items
        if store_counts.needs_compaction(self.engine.dialect.name, rows):
            with self.engine.begin() as conn:
                store_counts.compact(conn, self.tables, source_system, source_name)
        return result

    def work_item(self, work_item_id: int) -> Mapping[str, Any] | None:
        """The whole ``work_items`` row (for tests and tools)."""
        wi = self.tables.work_items
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(wi).where(wi.c.id == work_item_id)).first()
        return None if row is None else dict(row._mapping)
