"""Item pipeline: ``IngestRecords`` rows, written in batches in a thread, each batch in the same
transaction that completes its work items.

An item waits for its batch (at most ``HOLOCRON_INGEST_BATCH_SIZE`` rows or
``HOLOCRON_INGEST_MAX_DELAY`` seconds), so Scrapy's item stats and back-pressure stay honest. An
unchanged resource completes its work item with no new row. A batch the database refuses for its
data (a value too long, one it cannot encode) is split in halves until the refused record stands
alone: it fails, for good, with the database's message, the others are written. Another failed
batch fails its work items with the error. A failed item is dropped: never completed, never
silently lost.

After the commit, the batch's lake files are published (:func:`holocron_scrapy.lake.files.publish`,
in a thread; while the lake is unwritable, tried again as the lake pipeline's writes are): a
lake file appears only once its row is there. The pending file of an item whose outcome was
dropped (its claim was lost, or a commit retried after a lost answer found it done) is settled
as the start-up reconcile would: published if a row of its committed, else deleted. Those of a
batch that failed are left to the next run's reconcile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Self

from scrapy.exceptions import DropItem, NotConfigured
from scrapy.utils.asyncio import run_in_thread, sleep

from holocron_scrapy import defaults
from holocron_scrapy.frontier.extension import Frontier, frontier_of
from holocron_scrapy.items import ResourceRecord
from holocron_scrapy.lake.files import Pending, publish
from holocron_scrapy.lake.reconcile import settle_files
from holocron_scrapy.model import IngestRow, Outcome
from holocron_scrapy.outage import lake_unwritable, short_error
from holocron_scrapy.store.split_writes import refusal_reason, refused_by_database

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.statscollectors import StatsCollector

logger = logging.getLogger(__name__)


class _Entry:
    __slots__ = ("future", "outcome", "record", "row")

    def __init__(self, record: ResourceRecord, row: IngestRow | None) -> None:
        self.record = record
        self.row = row
        self.outcome = Outcome.completed(record.work_item, record.hash_sha256, record.version)
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class IngestRecordsPipeline:
    def __init__(
        self,
        frontier: Frontier,
        stats: StatsCollector,
        *,
        batch_size: int,
        max_delay: float,
        lake_fsync: bool = defaults.LAKE_FSYNC,
        outage_max: float = defaults.OUTAGE_MAX,
    ) -> None:
        self.frontier = frontier
        self.lake_fsync = lake_fsync
        self.outage_max = outage_max
        self.stats = stats
        self.batch_size = batch_size
        self.max_delay = max_delay
        self._pending: list[_Entry] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not settings.getbool("HOLOCRON_INGEST_ENABLED", defaults.INGEST_ENABLED):
            raise NotConfigured("HOLOCRON_INGEST_ENABLED is off")
        frontier = frontier_of(crawler)
        assert crawler.stats is not None
        return cls(
            frontier,
            crawler.stats,
            batch_size=settings.getint("HOLOCRON_INGEST_BATCH_SIZE", defaults.INGEST_BATCH_SIZE),
            max_delay=settings.getfloat("HOLOCRON_INGEST_MAX_DELAY", defaults.INGEST_MAX_DELAY),
            lake_fsync=settings.getbool("HOLOCRON_LAKE_FSYNC", defaults.LAKE_FSYNC),
            outage_max=settings.getfloat("HOLOCRON_OUTAGE_MAX", defaults.OUTAGE_MAX),
        )

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, ResourceRecord):
            return item
        item.run_id = item.run_id or self.frontier.run_id
        entry = _Entry(item, None if item.unchanged else item.ingest_row())
        self._pending.append(entry)
        if len(self._pending) >= self.batch_size:
            self._start_flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.max_delay, self._start_flush)
        await entry.future
        return item

    def _start_flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._flush(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: list[_Entry]) -> None:
        rows = [e.row for e in batch if e.row is not None]
        try:
            applied = await self.frontier.commit_records(rows, [e.outcome for e in batch])
        except Exception as exc:
            refused = refused_by_database(exc)
            if refused and len(batch) > 1:
                # One bad row must not take the others with it: each half on its own.
                self.stats.inc_value("holocron/ingest/split")
                middle = len(batch) // 2
                await self._flush(batch[:middle])
                await self._flush(batch[middle:])
                return
            reason = refusal_reason(exc) if refused else short_error(exc)
            message = f"IngestRecords write failed: {reason}"
            logger.error(
                "%(msg)s (%(n)d items)", {"msg": message, "n": len(batch)}, exc_info=not refused
            )
            self.stats.inc_value("holocron/ingest/errors")
            # Refused data is refused again: no retry (an outage or a mistake may pass).
            self.frontier.fail([e.record.work_item for e in batch], message, final=refused)
            for entry in batch:
                entry.future.set_exception(DropItem(message))
            return
        await self._publish(batch, set(applied.stale))
        self.stats.inc_value("holocron/ingest/batches")
        self.stats.inc_value("holocron/records/unchanged", len(batch) - len(rows))
        for entry in batch:
            entry.future.set_result(None)

    async def _publish(self, batch: list[_Entry], stale: set[int]) -> None:
        """Give the committed records' lake files their final names; settle the files of the
        items whose outcome was dropped (published if a row of theirs committed after all,
        else deleted)."""
        pending = [(e.record.work_item.id, e.record.lake_pending) for e in batch]
        files = [f for _, f in pending if f is not None]
        if not files:
            return
        lost = [f.path for i, f in pending if f is not None and i in stale]
        committed = [f for i, f in pending if f is not None and i not in stale]
        try:
            if committed:
                published = await self._publish_waiting(committed)
                self.stats.inc_value("holocron/lake/published", published)
            if lost:
                await run_in_thread(settle_files, self.frontier.store, lost, fsync=self.lake_fsync)
        except Exception as exc:
            # The rows are committed: the next run's reconcile settles what is left pending.
            logger.error(
                "Could not publish %(n)d lake files (%(error)s): the next run does",
                {"n": len(files), "error": short_error(exc)},
            )
            logger.debug("Publishing lake files", exc_info=True)
            self.stats.inc_value("holocron/lake/publish_errors")

    async def _publish_waiting(self, files: list[Pending]) -> int:
        """:func:`publish` in a thread, tried again (with back-off, one WARNING) while the lake
        is unwritable, for at most ``HOLOCRON_OUTAGE_MAX`` or until the crawl stops."""
        delay, started, warned = 0.5, time.monotonic(), False
        while True:
            try:
                published: int = await run_in_thread(publish, files, fsync=self.lake_fsync)
            except OSError as exc:
                waited = time.monotonic() - started
                if not lake_unwritable(exc) or waited > self.outage_max or self.frontier.stopping():
                    raise
                if not warned:
                    warned = True
                    logger.warning(
                        "Could not publish %(n)d lake files (%(error)s): trying again",
                        {"n": len(files), "error": short_error(exc)},
                    )
                await sleep(delay)
                delay = min(2 * delay, 5.0)
                continue
            return published

    async def close_spider(self) -> None:
        self._start_flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
