"""Audit a source's lake and state database: the invariants the crawl promises (README,
"Guarantees"), checked from what is stored, read-only.

:func:`verify` reads ``IngestRecords`` and ``work_items`` with plain SELECTs (SQLAlchemy Core, any
dialect) and walks ``LAKE/*/{source_name}/*/``. Every problem class below is counted, with a few
examples; :class:`Report` prints one line per class and a summary.

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

import hashlib
import json
import os
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa

from holocron_scrapy.lake.files import PENDING_DIR, TEMP_PREFIX, record_filename, safe_component
from holocron_scrapy.mediawiki.listings import RESOURCE_LISTING
from holocron_scrapy.model import Status
from holocron_scrapy.store.state_store import utcnow

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator
    from datetime import datetime
    from pathlib import Path

    from sqlalchemy.engine import URL, Engine

    from holocron_scrapy.store.schema import Tables

    Add = Callable[[str, str], None]  # report one problem: (class, example)

#: Problem classes, in report order, with what they mean.
PROBLEMS: dict[str, str] = {
    "row_without_file": "IngestRecords rows without their lake file",
    "file_hash_mismatch": "lake files whose payload does not hash to their row's hash_sha256",
    "row_hash_mismatch": "IngestRecords rows whose payload does not hash to their hash_sha256",
    "file_without_row": "lake files without an IngestRecords row",
    "duplicate_rows": "resources with several IngestRecords rows of the same content",
    "stuck_in_progress": "work items in_progress without a live lease",
    "completed_without_record": "completed work items whose content_hash is not their latest row's",
    "ground_truth_missing": "expected resources not completed",
    "ground_truth_unexpected": "completed resources not in the ground truth",
}
DEFAULT_EXAMPLES = 5
# The lake file ends with the payload exactly as hashed (items.ResourceRecord.lake_document).
_PAYLOAD_MARK = b',\n "payload": '
_DOCUMENT_END = b"\n}\n"
_STREAM_ROWS = 1000
_RUNNING = "running"  # runs.status of a run under way


@dataclass
class Finding:
    """How many times one problem class occurred, and the first examples."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, example: str, limit: int) -> None:
        self.count += 1
        if len(self.examples) < limit:
            self.examples.append(example)


@dataclass
class Report:
    source_name: str
    findings: dict[str, Finding] = field(
        default_factory=lambda: {name: Finding() for name in PROBLEMS}
    )
    temp_files: Finding = field(default_factory=Finding)
    pending_files: Finding = field(default_factory=Finding)
    totals: dict[str, int] = field(default_factory=dict)
    checked_ground_truth: bool = False

    @property
    def problems(self) -> int:
        return sum(finding.count for finding in self.findings.values())

    @property
    def ok(self) -> bool:
        return self.problems == 0

    def lines(self) -> list[str]:
        """One line per problem class (``OK`` or its count and examples), then a summary."""
        out = []
        for name, description in PROBLEMS.items():
            if name.startswith("ground_truth") and not self.checked_ground_truth:
                continue
            finding = self.findings[name]
            status = "OK" if not finding.count else f"{finding.count} PROBLEMS"
            line = f"{name}: {status} ({description})"
            if finding.examples:
                line += ", e.g. " + "; ".join(finding.examples)
            out.append(line)
        if self.temp_files.count:
            out.append(
                f"warning: {self.temp_files.count} leftover temporary files (not records), "
                "e.g. " + "; ".join(self.temp_files.examples)
            )
        if self.pending_files.count:
            out.append(
                f"warning: {self.pending_files.count} pending lake files (not records until "
                "the next run settles them), e.g. " + "; ".join(self.pending_files.examples)
            )
        totals = ", ".join(f"{key}={value}" for key, value in self.totals.items())
        verdict = "OK" if self.ok else f"{self.problems} problems"
        out.append(f"ingest_verify {self.source_name}: {verdict} ({totals})")
        return out


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
) -> Report:
    """Check every invariant for ``source_name`` (all source systems); see the module docstring.

    ``ground_truth`` is compared with the completed items of ``resource_type`` (default: every
    type but listings). ``now`` (naive UTC, as stored) decides which leases are live.
    """
    safe_component(source_name)
    report = Report(source_name, checked_ground_truth=ground_truth is not None)
    now = now or utcnow()

    def add(name: str, example: str) -> None:
        report.findings[name].add(example, examples)

    with engine.connect() as conn:
        expected_files, latest, by_item = _check_rows(conn, tables, lake_root, source_name, add)
        report.totals["records"] = sum(seen_count for _, seen_count in latest.values())
        _check_work_items(
            conn,
            tables,
            source_name,
            latest=latest,
            by_item=by_item,
            now=now,
            add=add,
            totals=report.totals,
        )
        if ground_truth is not None:
            completed = _completed_ids(conn, tables, source_name, resource_type)
            for missing in sorted(set(ground_truth) - completed):
                add("ground_truth_missing", repr(missing))
            for extra in sorted(completed - set(ground_truth)):
                add("ground_truth_unexpected", repr(extra))
    files = _check_files(
        lake_root,
        source_name,
        expected=expected_files,
        add=add,
        temp_files=report.temp_files,
        pending_files=report.pending_files,
        examples=examples,
    )
    report.totals["lake_files"] = files
    return report


# -- IngestRecords and their files -------------------------------------------------------------


def _check_rows(
    conn: sa.Connection, tables: Tables, lake_root: Path, source_name: str, add: Add
) -> tuple[set[Path], dict[tuple[str, str, str], tuple[str, int]], dict[int, str]]:
    """Each row: its payload's hash, its file and the file's hash. Returns the files the rows
    account for, per resource its latest row's hash and its number of rows, and per work item
    its latest row's hash."""
    ir = tables.ingest_records
    stmt = (
        sa.select(
            ir.c.ingest_id,
            ir.c.source_system,
            ir.c.resource_type,
            ir.c.resource_id,
            ir.c.hash_sha256,
            ir.c.payload,
            ir.c.work_item_id,
        )
        .where(ir.c.source_name == source_name)
        .order_by(ir.c.ingest_id)
        .execution_options(yield_per=_STREAM_ROWS)
    )
    expected: set[Path] = set()
    latest: dict[tuple[str, str, str], tuple[str, int]] = {}
    by_item: dict[int, str] = {}  # work_item_id -> the hash of its latest row
    seen = Counter[tuple[str, str, str, str]]()
    for row in conn.execute(stmt):
        label = f"row {row.ingest_id} {row.resource_type} {row.resource_id!r}"
        if _sha256(row.payload.encode("utf-8", "surrogatepass")) != row.hash_sha256:
            add("row_hash_mismatch", label)
        key = (row.source_system, row.resource_type, row.resource_id)
        latest[key] = (row.hash_sha256, latest.get(key, ("", 0))[1] + 1)
        if row.work_item_id is not None:
            by_item[int(row.work_item_id)] = row.hash_sha256
        seen[(*key, row.hash_sha256)] += 1
        if seen[(*key, row.hash_sha256)] == 2:
            add("duplicate_rows", f"{label} hash {row.hash_sha256[:16]}")
        try:
            path = (
                lake_root
                / safe_component(row.source_system)
                / source_name
                / safe_component(row.resource_type)
                / record_filename(row.resource_id, row.hash_sha256)
            )
        except ValueError as exc:
            add("row_without_file", f"{label}: no lake path ({exc})")
            continue
        if path in expected:  # a duplicate row: same file, already checked
            continue
        expected.add(path)
        problem = _file_problem(path, row.resource_id, row.hash_sha256)
        if problem == "missing":
            add("row_without_file", f"{label}: {path.relative_to(lake_root)}")
        elif problem:
            add("file_hash_mismatch", f"{path.relative_to(lake_root)}: {problem}")
    return expected, latest, by_item


def _file_problem(path: Path, resource_id: str, hash_sha256: str) -> str | None:
    """What is wrong with a record's lake file (``"missing"``), or None."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    mark = data.find(_PAYLOAD_MARK)
    if mark < 0 or not data.endswith(_DOCUMENT_END):
        return "not a lake document (no payload at its end)"
    payload = data[mark + len(_PAYLOAD_MARK) : -len(_DOCUMENT_END)]
    digest = _sha256(payload)
    if digest != hash_sha256:
        return f"payload hashes to {digest[:16]}, row says {hash_sha256[:16]}"
    try:
        meta = json.loads(data[:mark] + b"\n}")
    except ValueError:
        return "metadata is not JSON"
    if meta.get("hash_sha256") != hash_sha256 or meta.get("resource_id") != resource_id:
        return "metadata names another resource or hash"
    return None


def _check_files(
    lake_root: Path,
    source_name: str,
    *,
    expected: set[Path],
    add: Add,
    temp_files: Finding,
    pending_files: Finding,
    examples: int,
) -> int:
    """Files under ``LAKE/*/source_name/`` that no row accounts for; returns the file count."""
    count = 0
    for path in _lake_files(lake_root, source_name):
        if path.name.startswith(TEMP_PREFIX):
            temp_files.add(str(path.relative_to(lake_root)), examples)
            continue
        if path.parent.name == PENDING_DIR:
            pending_files.add(str(path.relative_to(lake_root)), examples)
            continue
        count += 1
        if path not in expected:
            add("file_without_row", str(path.relative_to(lake_root)))
    return count


def _lake_files(lake_root: Path, source_name: str) -> Iterator[Path]:
    """Every file under ``LAKE/<any system>/source_name/``."""
    if lake_root.is_dir():
        for source_dir in sorted(lake_root.glob(f"*/{source_name}")):
            yield from sorted(path for path in source_dir.rglob("*") if path.is_file())


# -- work items ---------------------------------------------------------------------------------


def _check_work_items(
    conn: sa.Connection,
    tables: Tables,
    source_name: str,
    *,
    latest: dict[tuple[str, str, str], tuple[str, int]],
    by_item: dict[int, str],
    now: datetime,
    add: Add,
    totals: dict[str, int],
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
    stmt = (
        sa.select(
            wi.c.id,
            wi.c.source_system,
            wi.c.resource_type,
            wi.c.resource_id,
            wi.c.status,
            wi.c.run_id,
            wi.c.lease_owner,
            wi.c.lease_expires_at,
            wi.c.content_hash,
        )
        .where(wi.c.source_name == source_name)
        .order_by(wi.c.id)
        .execution_options(yield_per=_STREAM_ROWS)
    )
    statuses = Counter[str]()
    for item in conn.execute(stmt):
        statuses[item.status] += 1
        label = f"work item {item.id} {item.resource_type} {item.resource_id!r}"
        if item.status == Status.IN_PROGRESS.value:
            problem = _lease_problem(
                item.lease_owner, item.lease_expires_at, item.run_id, now=now, ended=ended
            )
            if problem:
                add("stuck_in_progress", f"{label}: {problem}")
        elif item.status == Status.COMPLETED.value and item.resource_type != RESOURCE_LISTING:
            key = (item.source_system, item.resource_type, item.resource_id)
            last = by_item.get(item.id) or latest.get(key, ("", 0))[0] or None
            if last is None:
                add("completed_without_record", f"{label}: no IngestRecords row")
            elif item.content_hash != last:
                add(
                    "completed_without_record",
                    f"{label}: content_hash {str(item.content_hash)[:16]}, latest row {last[:16]}",
                )
    totals["work_items"] = sum(statuses.values())
    for status in Status:
        totals[status.value] = statuses[status.value]


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


def _completed_ids(
    conn: sa.Connection, tables: Tables, source_name: str, resource_type: str | None
) -> set[str]:
    wi = tables.work_items
    type_filter = (
        wi.c.resource_type == resource_type
        if resource_type is not None
        else wi.c.resource_type != RESOURCE_LISTING
    )
    stmt = sa.select(wi.c.resource_id).where(
        wi.c.source_name == source_name, wi.c.status == Status.COMPLETED.value, type_filter
    )
    return set(conn.scalars(stmt))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
