"""Audit a source's lake and state database: the invariants the crawl promises (README,
"Guarantees"), checked from what is stored, read-only.

:func:`verify` reads ``IngestRecords`` and ``work_items`` with plain SELECTs (SQLAlchemy Core, any
dialect) in keyset pages and walks ``LAKE/*/{source_name}/``, in bounded memory whatever their
size: the rows' files are sorted (on disk beyond a chunk) and merged with a sorted walk of the
lake (:mod:`holocron_scrapy.audit.lake_files`); a completed work item's latest row is looked up
per page of items (``work_item_id`` index); duplicates are a ``GROUP BY`` of the database. Only
a ground truth is held in memory (it is read whole). Every problem class below is counted, with
a few examples; :class:`Report` prints one line per class and a summary; ``progress`` gets a
line every few seconds.

* ``row_without_file`` — an ``IngestRecords`` row whose lake file is not there;
* ``file_hash_mismatch`` — a lake file whose embedded payload (the exact bytes the lake pipeline
  wrote, :meth:`holocron_scrapy.items.ResourceRecord.lake_document`) does not hash to its row's
  ``hash_sha256``, or whose metadata names another resource or hash, or that cannot be read;
* ``row_hash_mismatch`` — a row whose ``payload`` column does not hash to its ``hash_sha256``;
* ``file_without_row`` — a file in the lake that no row accounts for;
* ``duplicate_rows`` — one resource with several rows of the same content hash;
* ``stuck_in_progress`` — an ``in_progress`` work item without a live lease: no owner, its
  lease expired (a crash nobody has resumed), or the run that claimed it has ended (``runs``)
  without releasing it;
* ``completed_without_record`` — a completed work item (other than a listing, which completes
  without a record) whose ``content_hash`` is not the hash of its latest row (rows and work
  items are joined by ``work_item_id``: an HTTP record may be named by a field of its payload,
  ``resource_id: id``, and its work item by its URL);
* with a ground truth (expected resource ids): ``ground_truth_missing`` (expected, not
  completed) and ``ground_truth_unexpected`` (completed, not expected).

Leftover temporary files (``.tmp-*``, a write cut short by a crash) and pending files
(``.pending/``: written, their row not committed, or committed and not yet renamed; the next
run's start settles them) are not records: they are reported as a warning, not a problem.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from typing import TYPE_CHECKING

import sqlalchemy as sa

from holocron_scrapy.audit.lake_files import Expected, ExpectedFiles, merge_files, path_key, sha256
from holocron_scrapy.audit.paging import PROGRESS_SECONDS, Progress, pages
from holocron_scrapy.audit.report import DEFAULT_EXAMPLES, PROBLEMS, Finding, Report
from holocron_scrapy.audit.work_items import check_work_items, compare_ground_truth
from holocron_scrapy.lake.paths import legacy_parts, record_parts, safe_component
from holocron_scrapy.store.state_store import utcnow

if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from datetime import datetime
    from pathlib import Path

    from sqlalchemy.engine import URL, Engine

    from holocron_scrapy.store.schema import Tables

    Add = Callable[[str, str], None]  # report one problem: (class, example)

__all__ = [
    "DEFAULT_EXAMPLES",
    "PROBLEMS",
    "PROGRESS_SECONDS",
    "Finding",
    "Report",
    "load_ground_truth",
    "read_only_engine",
    "verify",
]


def read_only_engine(url: URL) -> Engine:
    """An engine that cannot change the database (SQLite: opened ``mode=ro``; the file must
    exist; PostgreSQL: read-only transactions). Elsewhere the audit only ever SELECTs."""
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if not database or database == ":memory:" or not os.path.isfile(database):
            raise FileNotFoundError(f"no SQLite state database at {database or '(none)'}")
        location = urllib.parse.quote(os.path.abspath(database))
        read_only = url.set(database=f"file:{location}", query={"mode": "ro", "uri": "true"})
        return sa.create_engine(read_only, poolclass=sa.NullPool)
    if url.get_backend_name() == "postgresql":
        options = {"options": "-c default_transaction_read_only=on"}
        return sa.create_engine(url, poolclass=sa.NullPool, connect_args=options)
    return sa.create_engine(url, poolclass=sa.NullPool)


def load_ground_truth(path: Path) -> set[str]:
    """Expected resource ids: a JSON list of strings, or one id per line (blank lines skipped)."""
    text = path.read_text("utf-8")
    try:
        document = json.loads(text)
    except ValueError:
        return {line for line in text.splitlines() if line.strip()}
    if not isinstance(document, list) or not all(isinstance(v, str) for v in document):
        raise ValueError(f"{path}: a JSON ground truth must be a list of strings")
    return set(document)


def verify(
    engine: Engine,
    tables: Tables,
    lake_root: Path,
    source_name: str,
    *,
    ground_truth: Collection[str] | None = None,
    resource_type: str | None = None,
    examples: int = DEFAULT_EXAMPLES,
    now: datetime | None = None,
    progress: Callable[[str], None] | None = None,
    progress_seconds: float = PROGRESS_SECONDS,
) -> Report:
    """Check every invariant for ``source_name`` (all source systems); see the module docstring.

    ``ground_truth`` is compared with the completed items of ``resource_type`` (default: every
    type but listings). ``now`` (naive UTC, as stored) decides which leases are live.
    ``progress`` is called with a progress line every ``progress_seconds``.
    """
    safe_component(source_name)
    report = Report(source_name, checked_ground_truth=ground_truth is not None)
    now = now or utcnow()
    meter = Progress(source_name, progress, progress_seconds)

    def add(name: str, example: str) -> None:
        report.findings[name].add(example, examples)

    files = ExpectedFiles()
    try:
        with engine.connect() as conn:
            report.totals["records"] = _check_rows(
                conn, tables, lake_root, source_name, add, files, meter
            )
            _duplicates(conn, tables, source_name, add)
            check_work_items(
                conn,
                tables,
                source_name,
                now=now,
                add=add,
                totals=report.totals,
                tick=meter.item,
            )
            if ground_truth is not None:
                compare_ground_truth(
                    conn, tables, source_name, resource_type, ground_truth, report, examples
                )
        report.totals["lake_files"] = merge_files(
            lake_root,
            source_name,
            files.sorted(),
            add=add,
            temp_files=report.temp_files,
            pending_files=report.pending_files,
            examples=examples,
            tick=meter.file,
        )
    finally:
        files.close()
    return report


# -- IngestRecords and their files -------------------------------------------------------------


def _check_rows(  # noqa: PLR0917
    conn: sa.Connection,
    tables: Tables,
    lake_root: Path,
    source_name: str,
    add: Add,
    files: ExpectedFiles,
    meter: Progress,
) -> int:
    """Each row: its payload's hash, and where its file is (added to ``files``, checked in the
    merge). Returns the number of rows."""
    ir = tables.ingest_records
    stmt = sa.select(
        ir.c.ingest_id,
        ir.c.source_system,
        ir.c.resource_type,
        ir.c.resource_id,
        ir.c.hash_sha256,
        ir.c.payload,
    ).where(ir.c.source_name == source_name)
    count = 0
    root = str(lake_root)
    for row in pages(conn, stmt, ir.c.ingest_id):
        count += 1
        meter.row()
        label = f"row {row.ingest_id} {row.resource_type} {row.resource_id!r}"
        if sha256(row.payload.encode("utf-8", "surrogatepass")) != row.hash_sha256:
            add("row_hash_mismatch", label)
        try:
            parts = record_parts(
                row.source_system, source_name, row.resource_type, row.resource_id, row.hash_sha256
            )
        except ValueError as exc:
            add("row_without_file", f"{label}: no lake path ({exc})")
            continue
        found = next(
            (p for p in (parts, legacy_parts(parts)) if os.path.isfile(os.path.join(root, *p))),
            None,
        )
        if found is None:
            add("row_without_file", f"{label}: {'/'.join(parts)}")
            continue
        key = path_key(found)
        files.add(Expected(key, label, row.resource_id, row.hash_sha256))
    return count


def _duplicates(conn: sa.Connection, tables: Tables, source_name: str, add: Add) -> None:
    """Resources with several rows of one content (the database groups them)."""
    ir = tables.ingest_records
    group = (ir.c.source_system, ir.c.resource_type, ir.c.resource_id, ir.c.hash_sha256)
    stmt = (
        sa.select(*group, sa.func.max(ir.c.ingest_id).label("last"))
        .where(ir.c.source_name == source_name)
        .group_by(*group)
        .having(sa.func.count() > 1)
        .order_by(sa.func.max(ir.c.ingest_id))
    )
    for row in conn.execute(stmt):
        label = f"row {row.last} {row.resource_type} {row.resource_id!r}"
        add("duplicate_rows", f"{label} hash {row.hash_sha256[:16]}")
    conn.rollback()
