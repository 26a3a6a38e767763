"""The :class:`~holocron_scrapy.store.state_store.StateStore` methods of ``recrawl=changed``:
sync points, the archive's reach, and the items a batch of changed titles names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from holocron_scrapy.store import sync as store_sync
from holocron_scrapy.store.base import StoreBase
from holocron_scrapy.store.sql import dedupe_hash

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from holocron_scrapy.store.sync import KnownItem, Reach, SyncPoint


class FeedMethods(StoreBase):
    """Change feeds: sync points, reach, and the items changed titles name."""

    def sync_point(self, *, source_system: str, source_name: str) -> SyncPoint | None:
        """Where the source's change feeds were read to (see :mod:`holocron_scrapy.store.sync`)."""
        with self.engine.connect() as conn:
            return store_sync.read_sync_point(
                conn, self.tables.sync_points, source_system=source_system, source_name=source_name
            )

    def set_sync_point(
        self,
        point: SyncPoint,
        *,
        source_system: str,
        source_name: str,
        run_id: str,
        only_if_absent: bool = False,
    ) -> bool:
        """Record the source's sync point (``only_if_absent``: unless it has one)."""
        return store_sync.write_sync_point(
            self.engine,
            self.tables.sync_points,
            point,
            source_system=source_system,
            source_name=source_name,
            run_id=run_id,
            only_if_absent=only_if_absent,
        )

    def widen(
        self, reach: Reach, *, source_system: str, source_name: str, resource_types: Sequence[str]
    ) -> int:
        """Record what the source's archive is expanded with; requeue what a wider ``reach``
        expands further (see :func:`holocron_scrapy.store.sync.widen`)."""
        return self.reopened(
            store_sync.widen(
                self.engine,
                (self.tables.sync_points, self.tables.work_items),
                reach,
                source_system=source_system,
                source_name=source_name,
                resource_types=resource_types,
            )
        )

    def items_by_keys(self, dedupe_keys: Sequence[str]) -> list[KnownItem]:
        """The work items with these dedupe keys (unknown keys: absent from the answer)."""
        hashes = [dedupe_hash(key) for key in dedupe_keys]
        if not hashes:
            return []
        with self.engine.connect() as conn:
            return store_sync.items_by_hashes(conn, self.tables.work_items, hashes)

    def completed_pages(
        self,
        *,
        source_system: str,
        source_name: str,
        resource_type: str,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[tuple[int, str, str | None, datetime | None]]:
        """``(id, resource_id, version, finished_at)`` of up to ``limit`` completed items with
        ``id > after_id``, by id: the full ``prop=info`` pass pages through them."""
        with self.engine.connect() as conn:
            return store_sync.completed_pages(
                conn,
                self.tables.work_items,
                source_system=source_system,
                source_name=source_name,
                resource_type=resource_type,
                after_id=after_id,
                limit=limit,
            )

    def first_run_started(self, *, source_system: str, source_name: str) -> datetime | None:
        """When the source's first run started (its first crawl: the first sync point)."""
        with self.engine.connect() as conn:
            return store_sync.first_run_started(
                conn,
                self.tables.runs,
                source_system=source_system,
                source_name=source_name,
            )
