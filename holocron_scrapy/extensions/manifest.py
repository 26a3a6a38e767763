"""A manifest per run in the lake: what a run produced, so a downstream job can take exactly one
run's output and verify it.

When a run closes (the frontier's ``run_closed`` signal, after its last rows committed)::

    LAKE/_runs/{run_id}.records.jsonl   one line per IngestRecords row of the run:
                                        ingest_id, resource_type, resource_id, work_item_id,
                                        hash_sha256, file (relative to LAKE), fetched_at_utc
    LAKE/_runs/{run_id}.json            the run (source, worker, host, times, status, its
                                        ``runs`` counts), records by resource type and status
                                        code, and the records file's name, line count and
                                        sha256 — written last, so its presence means complete

The rows are streamed (index ``ix_ingest_records_run``), so memory does not grow with the run.
Both files are written under temporary names and renamed. ``HOLOCRON_MANIFEST_ENABLED`` (on)
switches it off. A run that is killed writes none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from scrapy.exceptions import NotConfigured
from scrapy.utils.asyncio import run_in_thread

from holocron_scrapy import defaults
from holocron_scrapy.lake.files import LakePathError, locate_record, record_path
from holocron_scrapy.outage import short_error
from holocron_scrapy.signals import run_closed

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from scrapy.crawler import Crawler
    from scrapy.statscollectors import StatsCollector

    from holocron_scrapy.store.state_store import StateStore

logger = logging.getLogger(__name__)

MANIFEST_DIR = "_runs"
STREAM_ROWS = 5000


class RunManifest:
    def __init__(self, lake_root: Path, stats: StatsCollector) -> None:
        self.lake_root = lake_root
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not settings.getbool("HOLOCRON_MANIFEST_ENABLED", defaults.MANIFEST_ENABLED):
            raise NotConfigured("HOLOCRON_MANIFEST_ENABLED is off")
        if not settings.getbool("HOLOCRON_LAKE_ENABLED", defaults.LAKE_ENABLED):
            raise NotConfigured("the lake is off (HOLOCRON_LAKE_ENABLED)")
        assert crawler.stats is not None
        manifest = cls(defaults.lake_dir(settings), crawler.stats)
        crawler.signals.connect(manifest.run_closed, signal=run_closed)
        return manifest

    async def run_closed(self, run_id: str, store: StateStore, **_kwargs: Any) -> None:
        try:
            path = await run_in_thread(self.write, store, run_id)
        except Exception as exc:
            logger.exception(
                "Could not write the manifest of run %(run)s: %(error)s",
                {"run": run_id, "error": short_error(exc)},
            )
            self.stats.inc_value("holocron/manifest/errors")
            return
        self.stats.inc_value("holocron/manifest/written")
        logger.info("Manifest of run %(run)s: %(path)s", {"run": run_id, "path": path})

    def write(self, store: StateStore, run_id: str) -> Path:
        """Write the run's records file, then its manifest; return the manifest's path."""
        directory = self.lake_root / MANIFEST_DIR
        directory.mkdir(parents=True, exist_ok=True)
        records_name = f"{run_id}.records.jsonl"
        by_type: Counter[str] = Counter()
        by_status: Counter[str] = Counter()
        digest = hashlib.sha256()
        lines = 0
        temp = directory / f".{records_name}.tmp"
        with temp.open("wb") as out:
            for row in self._records(store, run_id):
                by_type[row["resource_type"]] += 1
                by_status[str(row["status_code"])] += 1
                line = json.dumps(self._entry(row), ensure_ascii=False).encode() + b"\n"
                digest.update(line)
                out.write(line)
                lines += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, directory / records_name)
        manifest = {
            "run": _jsonable(self._run(store, run_id)),
            "records": {
                "count": lines,
                "by_resource_type": dict(sorted(by_type.items())),
                "by_status_code": dict(sorted(by_status.items())),
                "file": f"{MANIFEST_DIR}/{records_name}",
                "sha256": digest.hexdigest(),
            },
        }
        path = directory / f"{run_id}.json"
        temp = directory / f".{run_id}.json.tmp"
        with temp.open("w", encoding="utf-8") as out:
            json.dump(manifest, out, indent=1, ensure_ascii=False)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
        return path

    def _entry(self, row: dict[str, Any]) -> dict[str, Any]:
        try:
            path = record_path(
                self.lake_root,
                row["source_system"],
                row["source_name"],
                row["resource_type"],
                row["resource_id"],
                row["hash_sha256"],
            )
            # A content a lake of the layout before the fan-out holds stays where it is.
            file: str | None = str((locate_record(path) or path).relative_to(self.lake_root))
        except LakePathError:
            file = None
        return {
            "ingest_id": row["ingest_id"],
            "resource_type": row["resource_type"],
            "resource_id": row["resource_id"],
            "work_item_id": row["work_item_id"],
            "hash_sha256": row["hash_sha256"],
            "file": file,
            "fetched_at_utc": row["fetched_at_utc"].isoformat() + "Z",
        }

    @staticmethod
    def _records(store: StateStore, run_id: str) -> Any:
        r = store.tables.ingest_records.c
        query = sa.select(
            r.ingest_id,
            r.source_system,
            r.source_name,
            r.resource_type,
            r.resource_id,
            r.work_item_id,
            r.hash_sha256,
            r.status_code,
            r.fetched_at_utc,
        ).where(r.run_id == run_id)
        with store.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=STREAM_ROWS)
            for row in result.execute(query.order_by(r.ingest_id)).mappings():
                yield dict(row)

    @staticmethod
    def _run(store: StateStore, run_id: str) -> dict[str, Any]:
        runs = store.tables.runs
        with store.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().one()
        return dict(row)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {key: _utc(value) for key, value in values.items()}


def _utc(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        moment: datetime = value
        return moment.isoformat() + "Z"
    return value
