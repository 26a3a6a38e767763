"""Export a source's ``IngestRecords`` to Hive-partitioned Parquet, incrementally.

::

    OUTPUT/source_name={name}/resource_type={type}/fetch_date={YYYY-MM-DD}/part-{export}-{n}.parquet

One row per record: the record's metadata columns and its raw payload as JSON text (the
partition columns ``source_name``, ``resource_type`` and ``fetch_date`` live in the path, as Hive
partitioning has them). Files roll at ``target_file_bytes`` (256 MB by default); each row group
holds up to ``row_group_rows`` rows, and the rows buffered across all partitions are bounded by
``buffer_bytes`` (64 MB; the largest buffer is written first), so memory does not depend on the
size of the table.

Incremental: ``OUTPUT/source_name={name}/_export_state.json`` holds the watermark (the highest
``ingest_id`` exported) and the *gaps* below it: identity values that were missing when they
were passed. A row whose transaction was still open then (identity values are handed out at
insert, rows become visible at commit, not in id order) fills its gap later, and the next export
picks it up there; gaps further than ``gap_window`` ids below the watermark are forgotten.

Exactly once: parts are written under hidden temporary names; the new state, listing the
renames still to do, is written (atomically, fsynced) before they are done; an export that dies
between the two is completed by the next one, and hidden temporary parts that no state lists are
deleted. One export at a time per output directory (a lock file).
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from holocron_scrapy.lake.export_state import (
    STATE_FILE,
    TEMP_PREFIX,
    finish_renames,
    recover,
    write_state,
)
from holocron_scrapy.lake.paths import safe_component

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from holocron_scrapy.store.schema import Tables

logger = logging.getLogger(__name__)

__all__ = ["SCHEMA", "STATE_FILE", "ExportResult", "ParquetExport"]

LOCK_FILE = "_export.lock"
MAX_GAPS = 1000

#: The columns of every part file, in order, from ``IngestRecords``.
SCHEMA = pa.schema(
    [
        ("ingest_id", pa.int64()),
        ("source_system", pa.string()),
        ("resource_id", pa.string()),
        ("request_uri", pa.string()),
        ("request_method", pa.string()),
        ("request_headers", pa.string()),
        ("status_code", pa.int32()),
        ("response_headers", pa.string()),
        ("payload", pa.string()),
        ("fetched_at_utc", pa.timestamp("us", tz="UTC")),
        ("hash_sha256", pa.string()),
        ("run_id", pa.string()),
        ("work_item_id", pa.int64()),
        ("attempt", pa.int32()),
        ("error_message", pa.string()),
        ("duration_ms", pa.int32()),
    ]
)


@dataclass
class ExportResult:
    rows: int = 0
    files: list[str] = field(default_factory=list)
    watermark: int = 0
    gaps: int = 0


@dataclass
class _Part:
    """One part file being written: its temporary and final paths, and its buffered rows."""

    temp: Path
    final: Path
    sink: pa.NativeFile
    writer: pq.ParquetWriter
    buffer: list[dict[str, Any]] = field(default_factory=list)
    buffered: int = 0  # bytes of text in the buffer, about


class ParquetExport:
    def __init__(
        self,
        engine: sa.Engine,
        tables: Tables,
        output: Path,
        source_name: str,
        *,
        target_file_bytes: int = 256 * 1024 * 1024,
        row_group_rows: int = 20_000,
        buffer_bytes: int = 64 * 1024 * 1024,
        gap_window: int = 1_000_000,
        progress_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.records = tables.ingest_records
        self.runs = tables.runs
        self.source_name = safe_component(source_name)
        self.root = output / f"source_name={self.source_name}"
        self.target_file_bytes = target_file_bytes
        self.row_group_rows = row_group_rows
        self.buffer_bytes = buffer_bytes
        self._buffered = 0
        self.gap_window = gap_window
        self.progress_seconds = progress_seconds
        self.clock = clock
        self.export_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
        self._parts: dict[tuple[str, str], _Part] = {}
        self._done: list[_Part] = []
        self._sequence = 0

    # -- the export -------------------------------------------------------------------------

    def run(self) -> ExportResult:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK_FILE).open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RuntimeError(f"another export is writing {self.root}") from None
            state = recover(self.root)
            return self._export(state)

    def _export(self, state: dict[str, Any]) -> ExportResult:
        result = ExportResult(watermark=int(state.get("watermark", 0)))
        old_gaps = [(int(a), int(b)) for a, b in state.get("gaps", [])]
        new_gaps: list[tuple[int, int]] = []
        last_log = self.clock()
        for low, high, rows in self._ranges(old_gaps, result.watermark):
            previous = low - 1
            for row in rows:
                if row["ingest_id"] > previous + 1:
                    new_gaps.append((previous + 1, row["ingest_id"] - 1))
                previous = row["ingest_id"]
                self._add(row)
                result.rows += 1
                if self.clock() - last_log >= self.progress_seconds:
                    last_log = self.clock()
                    logger.info(
                        "Exported %(rows)d records of %(source)s",
                        {"rows": result.rows, "source": self.source_name},
                    )
            if high is not None and previous < high:
                new_gaps.append((previous + 1, high))
            if high is None:
                result.watermark = max(result.watermark, previous)
        for part in list(self._parts.values()):
            self._close(part)
        floor = result.watermark - self.gap_window
        kept = sorted(gap for gap in new_gaps if gap[1] > floor)[-MAX_GAPS:]
        result.gaps = len(kept)
        result.files = [str(part.final.relative_to(self.root)) for part in self._done]
        self._commit(result, kept)
        return result

    def _ranges(
        self, gaps: list[tuple[int, int]], watermark: int
    ) -> Iterable[tuple[int, int | None, Iterable[dict[str, Any]]]]:
        """The old gaps, then everything above the watermark, each as ordered rows."""
        systems = self._systems()
        if not systems:
            return
        for low, high in gaps:
            yield low, high, self._rows(systems, low, high)
        yield watermark + 1, None, self._rows(systems, watermark + 1, None)

    def _systems(self) -> list[str]:
        query = sa.select(self.runs.c.source_system).distinct()
        query = query.where(self.runs.c.source_name == self.source_name)
        with self.engine.connect() as conn:
            return sorted(conn.scalars(query))

    def _rows(self, systems: list[str], low: int, high: int | None) -> Iterable[dict[str, Any]]:
        r = self.records.c
        columns = [r[name] for name in SCHEMA.names] + [r.resource_type]
        query = sa.select(*columns).where(
            r.source_system.in_(systems), r.source_name == self.source_name, r.ingest_id >= low
        )
        if high is not None:
            query = query.where(r.ingest_id <= high)
        query = query.order_by(r.ingest_id)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=self.row_group_rows)
            for row in result.execute(query).mappings():
                yield dict(row)

    # -- part files -------------------------------------------------------------------------

    def _add(self, row: dict[str, Any]) -> None:
        fetched = row["fetched_at_utc"]
        key = (safe_component(row.pop("resource_type")), fetched.date().isoformat())
        part = self._parts.get(key) or self._open(key)
        part.buffer.append(row)
        size = sum(len(v) for v in row.values() if isinstance(v, str)) + 100
        part.buffered += size
        self._buffered += size
        if len(part.buffer) >= self.row_group_rows:
            self._flush_or_roll(part)
        while self._buffered > self.buffer_bytes:  # many partitions at once: the biggest first
            self._flush_or_roll(max(self._parts.values(), key=lambda p: p.buffered))

    def _flush_or_roll(self, part: _Part) -> None:
        self._flush(part)
        if part.sink.tell() >= self.target_file_bytes:
            self._close(part)

    def _open(self, key: tuple[str, str]) -> _Part:
        resource_type, fetch_date = key
        directory = self.root / f"resource_type={resource_type}" / f"fetch_date={fetch_date}"
        directory.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        name = f"part-{self.export_id}-{self._sequence:05d}.parquet"
        temp = directory / f"{TEMP_PREFIX}{name}.tmp"
        sink = pa.OSFile(str(temp), "wb")
        writer = pq.ParquetWriter(sink, SCHEMA, compression="zstd")
        part = _Part(temp, directory / name, sink, writer)
        self._parts[key] = part
        return part

    def _flush(self, part: _Part) -> None:
        if part.buffer:
            part.writer.write_table(pa.Table.from_pylist(part.buffer, schema=SCHEMA))
            part.buffer.clear()
            self._buffered -= part.buffered
            part.buffered = 0

    def _close(self, part: _Part) -> None:
        self._flush(part)
        part.writer.close()
        part.sink.close()
        with part.temp.open("rb") as f:
            os.fsync(f.fileno())
        self._parts = {k: p for k, p in self._parts.items() if p is not part}
        self._done.append(part)

    # -- state, commit and recovery ---------------------------------------------------------

    def _commit(self, result: ExportResult, gaps: list[tuple[int, int]]) -> None:
        renames = [
            [str(part.temp.relative_to(self.root)), str(part.final.relative_to(self.root))]
            for part in self._done
        ]
        state = {
            "watermark": result.watermark,
            "gaps": gaps,
            "last_export": {
                "id": self.export_id,
                "finished_at_utc": datetime.now(UTC).isoformat(),
                "rows": result.rows,
                "files": result.files,
            },
            "pending_renames": renames,
        }
        write_state(self.root, state)
        self._finish_renames(state)

    def _finish_renames(self, state: dict[str, Any]) -> None:
        finish_renames(self.root, state)
