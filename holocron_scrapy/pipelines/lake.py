"""Item pipeline: one JSON file per record in the data lake, written atomically off the reactor.

``HOLOCRON_LAKE_DIR/{source_system}/{source_name}/{resource_type}/`` holds one file per distinct
content of a resource (fanned out by the id hash: :mod:`holocron_scrapy.lake.paths`); an
unchanged resource (same payload hash as its last record) writes nothing, nor does a content
whose file is already there (files are never rewritten). The file is written under its pending
name (``.pending/``, :func:`holocron_scrapy.lake.pending.write_pending`: no rename), the files
written close together sharing one fsync of their directory
(:mod:`holocron_scrapy.pipelines.lake_group`) before their items go on; the IngestRecords
pipeline publishes it once its row has committed (with that pipeline switched off, at once). At
the start of a run, once the frontier has opened it, the pending files that earlier runs left
are published or deleted (:mod:`holocron_scrapy.lake.reconcile`).
A failed write fails the work item with the error and drops the item: it is never
completed without its file. A lake that is unwritable for a while (permission denied, a
read-only or full file system, an I/O error) is waited for: the write is tried again with
back-off, logged once when it starts and once when it ends (``HOLOCRON_OUTAGE_MAX``, default
3600 s, then the items fail). At start, temporary files that a killed writer left in the lake's
``.pending/`` directories (older than ``HOLOCRON_LAKE_TEMP_MAX_AGE``, default 60 s) are removed
in the background; the lake's records are never listed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Self

from scrapy import signals
from scrapy.exceptions import DropItem, NotConfigured
from scrapy.utils.asyncio import sleep

from holocron_scrapy import defaults
from holocron_scrapy.frontier.extension import Frontier, frontier_of
from holocron_scrapy.items import ResourceRecord
from holocron_scrapy.lake.paths import locate_record, record_path
from holocron_scrapy.lake.pending import (
    Pending,
    pending_path,
    publish,
    remove_stale_temp_files,
    write_pending,
)
from holocron_scrapy.lake.reconcile import Reconciled, reconcile_pending
from holocron_scrapy.outage import Outage, lake_unwritable, short_error
from holocron_scrapy.pipelines.lake_group import GroupCommit, Written

if TYPE_CHECKING:
    from pathlib import Path

    from scrapy.crawler import Crawler
    from scrapy.statscollectors import StatsCollector

logger = logging.getLogger(__name__)


class LakePipeline:
    def __init__(
        self,
        root: Path,
        frontier: Frontier,
        stats: StatsCollector,
        *,
        threads: int = defaults.LAKE_THREADS,
        fsync: bool = defaults.LAKE_FSYNC,
        group_size: int = defaults.LAKE_GROUP_SIZE,
        outage_max_seconds: float = defaults.OUTAGE_MAX,
        temp_max_age: float = defaults.LAKE_TEMP_MAX_AGE,
        publish_at_once: bool = False,
    ) -> None:
        self.root = root
        self.publish_at_once = publish_at_once  # no IngestRecords pipeline to publish after it
        self.frontier = frontier
        self.stats = stats
        self.threads = threads
        self.fsync = fsync
        self.temp_max_age = temp_max_age
        self._executor: ThreadPoolExecutor | None = None
        self.group = GroupCommit(
            self._write,
            size=group_size,
            fsync=fsync,
            after=self._publish_at_once if publish_at_once else None,
        )
        self.outage = Outage("lake", f"Lake {root}", stats, max_seconds=outage_max_seconds)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not settings.getbool("HOLOCRON_LAKE_ENABLED", defaults.LAKE_ENABLED):
            raise NotConfigured("HOLOCRON_LAKE_ENABLED is off")
        frontier = frontier_of(crawler)
        root = defaults.lake_dir(settings)
        assert crawler.stats is not None
        pipeline = cls(
            root,
            frontier,
            crawler.stats,
            threads=settings.getint("HOLOCRON_LAKE_THREADS", defaults.LAKE_THREADS),
            fsync=settings.getbool("HOLOCRON_LAKE_FSYNC", defaults.LAKE_FSYNC),
            group_size=settings.getint("HOLOCRON_LAKE_GROUP_SIZE", defaults.LAKE_GROUP_SIZE),
            outage_max_seconds=settings.getfloat("HOLOCRON_OUTAGE_MAX", defaults.OUTAGE_MAX),
            temp_max_age=settings.getfloat(
                "HOLOCRON_LAKE_TEMP_MAX_AGE", defaults.LAKE_TEMP_MAX_AGE
            ),
            publish_at_once=not settings.getbool(
                "HOLOCRON_INGEST_ENABLED", defaults.INGEST_ENABLED
            ),
        )
        crawler.signals.connect(pipeline.spider_opened, signal=signals.spider_opened)
        return pipeline

    def path_for(self, record: ResourceRecord) -> Path:
        return record_path(
            self.root,
            record.work_item.source_system,
            record.work_item.source_name,
            record.resource_type,
            record.resource_id,
            record.hash_sha256,
        )

    def _write(self, record: ResourceRecord) -> Written:
        """Write under the pending name, data fsynced (in a lake thread; the group fsyncs the
        directory): ``written``, or ``unchanged`` (the resource's last record), or ``exists`` (a
        file of this content is there already: an earlier record of the resource had it)."""
        if record.unchanged:
            return Written("unchanged")
        final = self.path_for(record)
        if locate_record(final) is not None:  # in the fan-out, or where an older lake has it
            return Written("exists")
        path = pending_path(final, record.work_item.id, record.run_id)
        directories = write_pending(path, record.lake_document(), fsync=self.fsync)
        record.lake_pending = Pending(path, final)
        return Written("written", directories)

    def _publish_at_once(self, records: list[ResourceRecord]) -> None:
        """No IngestRecords pipeline: publish the group's files once they are durable."""
        publish([r.lake_pending for r in records if r.lake_pending], fsync=self.fsync)
        for record in records:
            record.lake_pending = None

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, ResourceRecord):
            return item
        item.run_id = item.run_id or self.frontier.run_id
        if not self.frontier.is_claimed(item.work_item):
            # The claim was lost (another worker holds the item now): its file is theirs.
            self.stats.inc_value("holocron/lake/claim_lost")
            raise DropItem(f"claim lost: {item.resource_id}")
        try:
            written = await self._write_waiting(item)
        except Exception as exc:
            message = f"lake write failed: {short_error(exc)}"
            logger.exception("%(msg)s (%(id)s)", {"msg": message, "id": item.resource_id})
            self.stats.inc_value("holocron/lake/errors")
            self.frontier.fail([item.work_item], message)
            raise DropItem(message) from exc
        self.stats.inc_value(f"holocron/lake/{written}")
        return item

    async def _write_waiting(self, record: ResourceRecord) -> str:
        """:meth:`_write` in the next group commit, tried again while the lake is unwritable."""
        while True:
            try:
                written = await self.group.submit(record)
            except OSError as exc:
                if not lake_unwritable(exc):
                    raise
                delay = self.outage.failed(exc)
                if self.outage.exceeded() or self.frontier.stopping():
                    raise
                await sleep(delay)
                continue
            self.outage.recovered()
            return written

    def open_spider(self) -> None:
        # Lake writes (and their fsyncs) get threads of their own, so that they never hold up
        # the crawl-state SQL, which runs in the default pool.
        self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="lake")
        self.group.executor = self._executor
        sweep = self._executor.submit(remove_stale_temp_files, self.root, self.temp_max_age)
        sweep.add_done_callback(self._swept)

    async def spider_opened(self, spider: Any) -> None:
        """Once the frontier has opened the run (dead owners' claims released), settle the
        pending files earlier runs left, in a lake thread, before the crawl starts."""
        await self.frontier.opened.wait()
        source_name = getattr(self.frontier.spider, "source_name", None)
        if source_name is None or self._executor is None:
            return
        loop = asyncio.get_running_loop()
        try:
            done: Reconciled = await loop.run_in_executor(
                self._executor,
                functools.partial(
                    reconcile_pending,
                    self.frontier.store,
                    self.root,
                    source_name,
                    current_run=self.frontier.run_id,
                    fsync=self.fsync,
                ),
            )
        except Exception:
            logger.warning("Could not reconcile the lake's pending files", exc_info=True)
            return
        for key in ("published", "deleted", "kept"):
            self.stats.inc_value(f"holocron/lake/pending_{key}", getattr(done, key))
        if done.published or done.deleted or done.kept:
            logger.info(
                "Pending lake files of earlier runs: %(p)d published (their rows had "
                "committed), %(d)d deleted (their rows never will), %(k)d left to their "
                "live writers",
                {"p": done.published, "d": done.deleted, "k": done.kept},
            )

    def _swept(self, sweep: Future[int]) -> None:
        if sweep.exception() is not None:
            logger.warning("Could not sweep the lake's temporary files", exc_info=sweep.exception())
            return
        if removed := sweep.result():
            self.stats.inc_value("holocron/lake/stale_temp_removed", removed)
            logger.info(
                "Removed %(n)d temporary files that stopped writers left in %(root)s",
                {"n": removed, "root": self.root},
            )

    def close_spider(self) -> None:
        self.stats.set_value("holocron/lake/groups", self.group.groups)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
            self.group.executor = None
